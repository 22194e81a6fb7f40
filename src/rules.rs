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

use std::borrow::Cow;

use serde_json::Value;

use crate::glob::Glob;
use crate::route::{Params, Template};
use crate::session::Session;

/// Request headers, looked up by lower-case name.
pub trait HeaderLookup {
    fn header(&self, lower_case_name: &str) -> Option<Cow<'_, str>>;
}

/// A list of `(name, value)` pairs, as tests and the CLI hold headers.
impl HeaderLookup for [(String, String)] {
    fn header(&self, lower_case_name: &str) -> Option<Cow<'_, str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(lower_case_name))
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
    /// A dot path into the session record.
    Session(String),
    /// A path parameter of the matched route.
    Param(String),
    /// A query-string parameter (first occurrence).
    Query(String),
    /// A request header (lower-cased name).
    Header(String),
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Session(p) => write!(f, "session {p}"),
            Subject::Param(p) => write!(f, "param {p}"),
            Subject::Query(p) => write!(f, "query {p}"),
            Subject::Header(p) => write!(f, "header {p}"),
        }
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
    /// A glob, compiled once; with placeholders, compiled per check with the parameters'
    /// values as literal text.
    Matches(Glob),
    MatchesTemplate(Template),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
}

/// One condition, with the text it was written as for logs and traces.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub subject: Subject,
    pub operator: Operator,
    pub text: String,
}

/// Everything a condition may look at.
pub struct RuleContext<'a> {
    pub session: &'a Session,
    pub params: &'a Params<'a, 'a>,
    pub query: &'a str,
    pub headers: &'a dyn HeaderLookup,
}

/// A subject's value: JSON from the session, text from the request.
enum Actual<'a> {
    Json(&'a Value),
    Text(Cow<'a, str>),
}

impl Actual<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Actual::Json(Value::String(s)) => Some(s),
            Actual::Json(_) => None,
            Actual::Text(t) => Some(t),
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Actual::Json(Value::Number(n)) => n.as_f64(),
            Actual::Json(_) => None,
            Actual::Text(t) => t.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        }
    }
}

impl Condition {
    /// Does the condition hold for this request?
    pub fn holds(&self, ctx: &RuleContext<'_>) -> bool {
        let actual = match &self.subject {
            Subject::Session(path) => ctx.session.get(path).map(Actual::Json),
            Subject::Param(name) => ctx.params.get(name).map(|v| Actual::Text(Cow::Borrowed(v))),
            Subject::Query(name) => query_param(ctx.query, name).map(Actual::Text),
            Subject::Header(name) => ctx.headers.header(name).map(Actual::Text),
        };
        let actual = actual.filter(|a| !matches!(a, Actual::Json(Value::Null)));
        let Some(actual) = actual else {
            return matches!(self.operator, Operator::Exists(false));
        };
        match &self.operator {
            Operator::Exists(wanted) => *wanted,
            Operator::Equals(expected) => equals(&actual, expected, ctx.params),
            Operator::NotEquals(expected) => !equals(&actual, expected, ctx.params),
            Operator::In(list) => list.iter().any(|e| equals(&actual, e, ctx.params)),
            Operator::Contains(expected) => contains(&actual, expected, ctx.params),
            Operator::Matches(glob) => actual.as_str().is_some_and(|s| glob.is_match(s)),
            Operator::MatchesTemplate(template) => {
                let Some(text) = actual.as_str() else {
                    return false;
                };
                matches!(template.to_glob(ctx.params), Some(Ok(glob)) if glob.is_match(text))
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
            Actual::Json(a) => json_equals(a, e),
            Actual::Text(t) => scalar_text(e).is_some_and(|et| et == t.as_ref()),
        },
    }
}

/// Equality with a string: a JSON string equal to it, or a number/boolean whose JSON text it is.
fn text_equals(actual: &Actual<'_>, text: &str) -> bool {
    match actual {
        Actual::Text(t) => t == text,
        Actual::Json(Value::String(s)) => s == text,
        Actual::Json(other) => scalar_text(other).is_some_and(|at| at == text),
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

fn json_equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        // 1 and 1.0 are the same number in JSON's model (and in JavaScript).
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(s), other) | (other, Value::String(s)) => {
            scalar_text(other).is_some_and(|t| t == *s)
        }
        _ => a == b,
    }
}

fn contains(actual: &Actual<'_>, expected: &Expected, params: &Params<'_, '_>) -> bool {
    match actual {
        Actual::Json(Value::Array(items)) => items
            .iter()
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

/// Why a rule set refused: the condition that decided it (for `include`, the first one, since
/// none held). `index` is None when an include list had no condition that held.
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
    /// Checks the set, reporting every evaluated condition to `observe`. Stops at the first
    /// condition that decides a denial.
    pub fn check<'c>(
        &'c self,
        ctx: &RuleContext<'_>,
        mut observe: impl FnMut(RuleOutcome<'c>),
    ) -> Result<(), RuleFailure> {
        for (index, c) in self.require.iter().enumerate() {
            let held = c.holds(ctx);
            observe(RuleOutcome {
                kind: RuleKind::Require,
                index,
                text: &c.text,
                held,
            });
            if !held {
                return Err(failure(RuleKind::Require, index, c));
            }
        }
        for (index, c) in self.exclude.iter().enumerate() {
            let held = c.holds(ctx);
            observe(RuleOutcome {
                kind: RuleKind::Exclude,
                index,
                text: &c.text,
                held,
            });
            if held {
                return Err(failure(RuleKind::Exclude, index, c));
            }
        }
        if let Some(first) = self.include.first() {
            let mut any = false;
            for (index, c) in self.include.iter().enumerate() {
                let held = c.holds(ctx);
                observe(RuleOutcome {
                    kind: RuleKind::Include,
                    index,
                    text: &c.text,
                    held,
                });
                if held {
                    any = true;
                    break;
                }
            }
            if !any {
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
