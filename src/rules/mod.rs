//! Rule conditions: a subject (`session`, `param`, `query`, `header`) and one operator.
//!
//! `require`: every condition must hold. `include`: when there are any, at least one must hold.
//! `exclude`: none may hold. This is Cloudflare Access's policy model.
//!
//! A condition on a value that is absent (or JSON `null`) does not hold, except
//! `exists = false`. So a `require` on a missing field denies, and an `exclude` on a missing
//! field does not exclude (`exclude = [{ session = "user.banned", equals = true }]` lets in users
//! with no `banned` flag).
//!
//! Values are compared as JSON. A string equals a number or boolean when it is that value's
//! JSON text, because path parameters, query strings and headers are always strings.
//!
//! This file says what a condition means. `names.rs` holds the subject and operator tables,
//! and `compile.rs` turns a condition's config table into a [`Condition`]: adding an operator
//! is a line in [`OperatorName`]'s table, an [`Operator`] variant, and the arms the compiler
//! then asks for in `compile.rs` and in [`Condition::holds`].

mod compile;
mod names;
#[cfg(test)]
mod tests;

pub(crate) use compile::{json_kind, template};
pub use compile::{RuleError, RuleErrorAt};
pub(crate) use names::suggestion;
pub use names::{OperatorName, SubjectName};

use std::borrow::Cow;

use serde_json::Value;

use crate::glob::Glob;
use crate::route::{Params, Template};
use crate::session_view::{JsonRef, PathId, SessionView};

/// Request headers, looked up by lower-case name.
pub trait HeaderLookup {
    fn header(&self, lower_case_name: &str) -> Option<Cow<'_, str>>;
}

/// A list of `(name, value)` pairs: how the CLI, the tests and a socket's attachment (which the
/// Room re-checks the rules with) hold headers.
impl HeaderLookup for [(String, String)] {
    fn header(&self, lower_case_name: &str) -> Option<Cow<'_, str>> {
        // Lengths first, then the first byte: most names differ there. Names are usually
        // lower-case already, and an exact comparison is cheaper than a case-blind one.
        let first = lower_case_name
            .as_bytes()
            .first()
            .map(u8::to_ascii_lowercase);
        self.iter()
            .find(|(n, _)| {
                n.len() == lower_case_name.len()
                    && n.as_bytes().first().map(u8::to_ascii_lowercase) == first
                    && (n == lower_case_name || n.eq_ignore_ascii_case(lower_case_name))
            })
            .map(|(_, v)| Cow::Borrowed(v.as_str()))
    }
}

impl HeaderLookup for Vec<(String, String)> {
    fn header(&self, lower_case_name: &str) -> Option<Cow<'_, str>> {
        self.as_slice().header(lower_case_name)
    }
}

/// What a condition looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    /// A dot path into the session record, with its id in the config's
    /// [`PathSet`](crate::session_view::PathSet).
    Session(String, PathId),
    /// A path parameter of the matched route.
    Param(String),
    /// A query-string parameter (first occurrence).
    Query(String),
    /// A request header (lower-cased name).
    Header(String),
}

impl Subject {
    /// The key it is written with.
    pub fn name(&self) -> SubjectName {
        match self {
            Subject::Session(..) => SubjectName::Session,
            Subject::Param(_) => SubjectName::Param,
            Subject::Query(_) => SubjectName::Query,
            Subject::Header(_) => SubjectName::Header,
        }
    }

    /// The path, parameter, query parameter or header name it looks at.
    pub fn key(&self) -> &str {
        match self {
            Subject::Session(k, _) | Subject::Param(k) | Subject::Query(k) | Subject::Header(k) => {
                k
            }
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name().as_str(), self.key())
    }
}

/// A value in a rule: JSON, or a string with `{param}` placeholders.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    Json(Value),
    Template(Template),
}

/// What a condition checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    Exists(bool),
    Equals(Expected),
    NotEquals(Expected),
    In(Vec<Expected>),
    Contains(Expected),
    /// A glob without placeholders, compiled once.
    Matches(Glob),
    /// A glob with `{param}` placeholders, compiled per check with the parameters' values as
    /// literal text.
    MatchesTemplate(Template),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
}

impl Operator {
    /// The key it is written with.
    pub fn name(&self) -> OperatorName {
        match self {
            Operator::Exists(_) => OperatorName::Exists,
            Operator::Equals(_) => OperatorName::Equals,
            Operator::NotEquals(_) => OperatorName::NotEquals,
            Operator::In(_) => OperatorName::In,
            Operator::Contains(_) => OperatorName::Contains,
            Operator::Matches(_) | Operator::MatchesTemplate(_) => OperatorName::Matches,
            Operator::Gt(_) => OperatorName::Gt,
            Operator::Gte(_) => OperatorName::Gte,
            Operator::Lt(_) => OperatorName::Lt,
            Operator::Lte(_) => OperatorName::Lte,
        }
    }
}

/// One condition, with a text for logs and traces: subject, operator and the value as JSON
/// (`session user.role equals "admin"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub subject: Subject,
    pub operator: Operator,
    pub text: String,
}

/// Everything a condition may look at.
pub struct RuleContext<'a> {
    /// The values at the config's session paths.
    pub session: &'a SessionView<'a>,
    pub params: &'a Params<'a, 'a>,
    pub query: &'a str,
    pub headers: &'a dyn HeaderLookup,
}

/// A subject's value: JSON from the session (borrowed from the record), text from the request.
enum Actual<'a> {
    Json(JsonRef<'a>),
    Text(Cow<'a, str>),
}

impl Actual<'_> {
    /// The text of a request value or of a JSON string.
    fn as_str(&self) -> Option<Cow<'_, str>> {
        match self {
            Actual::Json(json) => json.as_str(),
            Actual::Text(t) => Some(Cow::Borrowed(t)),
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Actual::Json(json) => json.as_f64(),
            Actual::Text(t) => t.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        }
    }
}

impl Condition {
    /// Does the condition hold for this request?
    pub fn holds(&self, ctx: &RuleContext<'_>) -> bool {
        let actual = match &self.subject {
            Subject::Session(_, id) => ctx.session.get(*id).map(Actual::Json),
            Subject::Param(name) => ctx.params.get(name).map(|v| Actual::Text(Cow::Borrowed(v))),
            Subject::Query(name) => query_param(ctx.query, name).map(Actual::Text),
            Subject::Header(name) => ctx.headers.header(name).map(Actual::Text),
        };
        let actual = actual.filter(|a| !matches!(a, Actual::Json(json) if json.is_null()));
        let Some(actual) = actual else {
            return matches!(self.operator, Operator::Exists(false));
        };
        match &self.operator {
            Operator::Exists(wanted) => *wanted,
            Operator::Equals(expected) => equals(&actual, expected, ctx.params),
            Operator::NotEquals(expected) => !equals(&actual, expected, ctx.params),
            Operator::In(list) => list.iter().any(|e| equals(&actual, e, ctx.params)),
            Operator::Contains(expected) => contains(&actual, expected, ctx.params),
            Operator::Matches(glob) => actual.as_str().is_some_and(|s| glob.is_match(&s)),
            Operator::MatchesTemplate(template) => {
                let Some(text) = actual.as_str() else {
                    return false;
                };
                matches!(template.to_glob(ctx.params), Some(Ok(glob)) if glob.is_match(&text))
            }
            Operator::Gt(n) => actual.as_f64().is_some_and(|a| a > *n),
            Operator::Gte(n) => actual.as_f64().is_some_and(|a| a >= *n),
            Operator::Lt(n) => actual.as_f64().is_some_and(|a| a < *n),
            Operator::Lte(n) => actual.as_f64().is_some_and(|a| a <= *n),
        }
    }
}

fn equals(actual: &Actual<'_>, expected: &Expected, params: &Params<'_, '_>) -> bool {
    match expected {
        Expected::Template(t) => match t.render(params) {
            Some(text) => text_equals(actual, &text),
            None => false,
        },
        Expected::Json(Value::String(s)) => text_equals(actual, s),
        Expected::Json(e) => match actual {
            Actual::Json(a) => json_equals(*a, e),
            Actual::Text(t) => scalar_text(e).is_some_and(|et| et == t.as_ref()),
        },
    }
}

/// Equality with a string: a JSON string equal to it, or a number/boolean whose JSON text it is.
fn text_equals(actual: &Actual<'_>, text: &str) -> bool {
    match actual {
        Actual::Text(t) => t == text,
        Actual::Json(json) => match json.as_str() {
            Some(s) => s == text,
            None => json_scalar_text(*json).is_some_and(|at| at == text),
        },
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

/// The JSON text of a session number or boolean, as serde_json writes its `Value`.
fn json_scalar_text(json: JsonRef<'_>) -> Option<String> {
    (json.is_number() || json.as_bool().is_some()).then(|| json.to_value().to_string())
}

fn json_equals(a: JsonRef<'_>, b: &Value) -> bool {
    // 1 and 1.0 are the same number in JSON's model (and in JavaScript).
    if let (Some(x), Value::Number(y)) = (a.as_number(), b) {
        return x.as_f64() == y.as_f64();
    }
    if let Some(s) = a.as_str() {
        return scalar_text(b).is_some_and(|t| t == s);
    }
    if let Value::String(s) = b {
        return json_scalar_text(a).is_some_and(|t| t == *s);
    }
    // Arrays, objects, booleans and null compare as serde_json's `Value` compares them.
    a.to_value() == *b
}

fn contains(actual: &Actual<'_>, expected: &Expected, params: &Params<'_, '_>) -> bool {
    match actual {
        Actual::Json(json) if json.is_array() => json
            .items()
            .into_iter()
            .flatten()
            .any(|item| equals(&Actual::Json(item), expected, params)),
        _ => {
            let Some(haystack) = actual.as_str() else {
                return false;
            };
            match expected {
                Expected::Json(Value::String(needle)) => haystack.contains(needle.as_str()),
                Expected::Template(t) => t.render(params).is_some_and(|n| haystack.contains(&*n)),
                Expected::Json(other) => {
                    scalar_text(other).is_some_and(|n| haystack.contains(n.as_str()))
                }
            }
        }
    }
}

/// The first value of `name` in a query string, exactly as WHATWG `URLSearchParams.get` reads
/// it: pairs split on `&`, `+` is a space, percent escapes decode to bytes (a broken escape
/// stays as it is), and bytes that are not UTF-8 become U+FFFD.
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    let query = query.strip_prefix('?').unwrap_or(query);
    form_urlencoded::parse(query.as_bytes()).find_map(|(key, value)| (key == name).then_some(value))
}

/// Which list a condition sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Require,
    Include,
    Exclude,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Require => "require",
            RuleKind::Include => "include",
            RuleKind::Exclude => "exclude",
        }
    }
}

/// `require`, `include` and `exclude` of one scope (global or a route).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    pub require: Vec<Condition>,
    pub include: Vec<Condition>,
    pub exclude: Vec<Condition>,
}

/// Why a rule set refused: the condition that decided it. When no `include` condition held,
/// `index` is 0 and `text` counts them and quotes the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFailure {
    pub kind: RuleKind,
    pub index: usize,
    pub text: String,
}

/// One evaluated condition, for traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOutcome<'c> {
    pub kind: RuleKind,
    pub index: usize,
    pub text: &'c str,
    pub held: bool,
}

impl RuleSet {
    /// Every condition with its list and its index there: `require`, then `include`, then
    /// `exclude`. For what reads the conditions without checking them (which session paths,
    /// headers and query the rules need).
    pub fn conditions(&self) -> impl Iterator<Item = (RuleKind, usize, &Condition)> {
        [
            (RuleKind::Require, &self.require),
            (RuleKind::Include, &self.include),
            (RuleKind::Exclude, &self.exclude),
        ]
        .into_iter()
        .flat_map(|(kind, list)| list.iter().enumerate().map(move |(i, c)| (kind, i, c)))
    }

    /// Checks the set, reporting every evaluated condition to `observe`. Stops at the first
    /// condition that decides a denial.
    pub fn check<'c>(
        &'c self,
        ctx: &RuleContext<'_>,
        mut observe: impl FnMut(RuleOutcome<'c>),
    ) -> Result<(), RuleFailure> {
        let mut evaluate = |kind, index, c: &'c Condition| {
            let held = c.holds(ctx);
            observe(RuleOutcome {
                kind,
                index,
                text: &c.text,
                held,
            });
            held
        };
        for (index, c) in self.require.iter().enumerate() {
            if !evaluate(RuleKind::Require, index, c) {
                return Err(failure(RuleKind::Require, index, c));
            }
        }
        for (index, c) in self.exclude.iter().enumerate() {
            if evaluate(RuleKind::Exclude, index, c) {
                return Err(failure(RuleKind::Exclude, index, c));
            }
        }
        if let Some(first) = self.include.first() {
            // `any` stops at the first that holds: the trace shows no condition after it.
            let mut include = self.include.iter().enumerate();
            if !include.any(|(index, c)| evaluate(RuleKind::Include, index, c)) {
                return Err(RuleFailure {
                    kind: RuleKind::Include,
                    index: 0,
                    text: format!(
                        "none of {} include conditions held (first: {})",
                        self.include.len(),
                        first.text
                    ),
                });
            }
        }
        Ok(())
    }
}

fn failure(kind: RuleKind, index: usize, c: &Condition) -> RuleFailure {
    RuleFailure {
        kind,
        index,
        text: c.text.clone(),
    }
}
