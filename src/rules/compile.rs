//! Compiling one condition from its config table (`{ session = "user.role", equals = "admin" }`).
//!
//! Each problem is a [`RuleError`] at a key below the condition's own, which the config
//! checker prefixes with the condition's key path (`routes[1].require[0].session`).

use serde_json::{Map, Value};

use super::names::{suggestion, OperatorName, SubjectName};
use super::{Condition, Expected, Operator, Subject};
use crate::glob::{Glob, GlobError};
use crate::route::{PatternError, Template};
use crate::session_view::PathSet;

/// Why a condition (or a template in the config) does not compile.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleError {
    /// The condition is not a table.
    NotATable {
        found: &'static str,
    },
    /// A key that is neither a subject nor an operator, taken for a misspelled subject when it
    /// is close to one and the condition has none.
    UnknownSubject {
        key: String,
    },
    UnknownOperator {
        key: String,
    },
    NoSubject,
    NoOperator,
    /// More than one subject key.
    Subjects(usize),
    /// More than one operator key.
    Operators(usize),
    /// A value of the wrong JSON kind.
    Expected {
        expected: &'static str,
        found: &'static str,
    },
    /// A session path with an empty segment.
    BadDotPath(String),
    /// A `param` subject that the route's path does not capture.
    NoSuchParam {
        name: String,
        params: Vec<String>,
    },
    /// A `{placeholder}` that the route's path does not capture.
    UnknownPlaceholder {
        name: String,
        params: Vec<String>,
    },
    BadTemplate {
        text: String,
        error: PatternError,
    },
    BadGlob {
        pattern: String,
        error: GlobError,
    },
    /// `null` as a value to compare with, which no present value equals.
    Null,
}

/// A [`RuleError`] and the key it is at, below the condition: `""` for the condition itself,
/// `"session"`, `"in[2]"`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleErrorAt {
    pub at: String,
    pub error: RuleError,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleError::NotATable { found } => write!(
                f,
                "expected a table like {{ session = \"passport.user\", exists = true }}, found {found}"
            ),
            RuleError::UnknownSubject { key } => {
                unknown(f, "subject", key, SubjectName::names().collect())
            }
            RuleError::UnknownOperator { key } => {
                unknown(f, "operator", key, OperatorName::names().collect())
            }
            RuleError::NoSubject => write!(
                f,
                "needs exactly one subject: {}",
                one_of(SubjectName::names().collect())
            ),
            RuleError::NoOperator => write!(
                f,
                "needs exactly one operator: {}",
                one_of(OperatorName::names().collect())
            ),
            RuleError::Subjects(n) => {
                write!(f, "has {n} subjects; each condition checks exactly one")
            }
            RuleError::Operators(n) => {
                write!(f, "has {n} operators; write one condition per operator")
            }
            RuleError::Expected { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            RuleError::BadDotPath(path) => write!(f, "bad dot path {path:?}"),
            RuleError::NoSuchParam { name, params } => write!(
                f,
                "no path parameter {name:?} (route has: {})",
                list_or_none(params)
            ),
            RuleError::UnknownPlaceholder { name, params } => write!(
                f,
                "placeholder {{{name}}} names no path parameter (route has: {})",
                list_or_none(params)
            ),
            RuleError::BadTemplate { text, error } => write!(f, "{error} in {text:?}"),
            RuleError::BadGlob { pattern, error } => write!(f, "bad glob {pattern:?}: {error}"),
            RuleError::Null => write!(
                f,
                "null is not a value to compare with (use exists = false)"
            ),
        }
    }
}

impl std::error::Error for RuleError {}

/// `unknown operator "eq" (did you mean "equals"?; operators: exists, equals, ...)`.
fn unknown(
    f: &mut std::fmt::Formatter<'_>,
    what: &str,
    key: &str,
    known: Vec<&str>,
) -> std::fmt::Result {
    write!(f, "unknown {what} \"{key}\" (")?;
    if let Some(s) = suggestion(key, known.iter().copied()) {
        write!(f, "did you mean \"{s}\"?; ")?;
    }
    write!(f, "{what}s: {})", known.join(", "))
}

/// `a, b or c`.
fn one_of(names: Vec<&str>) -> String {
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

fn list_or_none(params: &[String]) -> String {
    if params.is_empty() {
        "none".to_owned()
    } else {
        params.join(", ")
    }
}

impl Condition {
    /// Compiles a condition table. `params` are the path parameters it may name (as a `param`
    /// subject or a `{placeholder}`): the route's, or for global rules those of every route.
    /// A `session` subject's path is added to `session_paths`, the paths the handshake decodes,
    /// and the condition reads its value by the id it gets there.
    pub fn compile(
        item: &Value,
        params: &[&str],
        session_paths: &mut PathSet,
    ) -> Result<Condition, Vec<RuleErrorAt>> {
        let Value::Object(map) = item else {
            let found = json_kind(item);
            return Err(located("", vec![RuleError::NotATable { found }]));
        };
        let (subject_name, operator_name) = keys(map).map_err(|e| located("", e))?;
        let subject_raw = &map[subject_name.as_str()];
        let subject = subject(subject_name, subject_raw, params, session_paths)
            .map_err(|e| located(subject_name.as_str(), vec![e]))?;
        let raw = &map[operator_name.as_str()];
        let operator = operator(operator_name, raw, params)?;
        let text = format!("{subject} {} {raw}", operator_name.as_str());
        Ok(Condition {
            subject,
            operator,
            text,
        })
    }
}

/// The one subject and the one operator of a condition table, or every problem with its keys.
fn keys(map: &Map<String, Value>) -> Result<(SubjectName, OperatorName), Vec<RuleError>> {
    let subjects: Vec<SubjectName> = map
        .keys()
        .filter_map(|k| SubjectName::from_name(k))
        .collect();
    let operators: Vec<OperatorName> = map
        .keys()
        .filter_map(|k| OperatorName::from_name(k))
        .collect();
    let mut errors = Vec::new();
    for key in map.keys() {
        if SubjectName::from_name(key).is_some() || OperatorName::from_name(key).is_some() {
            continue;
        }
        let key = key.clone();
        errors.push(
            if subjects.is_empty() && suggestion(&key, SubjectName::names()).is_some() {
                RuleError::UnknownSubject { key }
            } else {
                RuleError::UnknownOperator { key }
            },
        );
    }
    match subjects.len() {
        0 => errors.push(RuleError::NoSubject),
        1 => {}
        n => errors.push(RuleError::Subjects(n)),
    }
    match operators.len() {
        // A misspelled operator or a missing subject says enough already.
        0 if errors.is_empty() => errors.push(RuleError::NoOperator),
        0 | 1 => {}
        n => errors.push(RuleError::Operators(n)),
    }
    match (subjects.as_slice(), operators.as_slice()) {
        ([subject], [operator]) if errors.is_empty() => Ok((*subject, *operator)),
        _ => Err(errors),
    }
}

fn subject(
    name: SubjectName,
    raw: &Value,
    params: &[&str],
    session_paths: &mut PathSet,
) -> Result<Subject, RuleError> {
    let text = match raw {
        Value::String(s) if !s.is_empty() => s.clone(),
        other => return Err(expected("a non-empty string", other)),
    };
    Ok(match name {
        SubjectName::Session => {
            if text.split('.').any(str::is_empty) {
                return Err(RuleError::BadDotPath(text));
            }
            let id = session_paths.insert(&text);
            Subject::Session(text, id)
        }
        SubjectName::Param => {
            if !params.contains(&text.as_str()) {
                return Err(RuleError::NoSuchParam {
                    name: text,
                    params: owned(params),
                });
            }
            Subject::Param(text)
        }
        SubjectName::Query => Subject::Query(text),
        SubjectName::Header => Subject::Header(text.to_ascii_lowercase()),
    })
}

/// The operator's value compiled; its problems are at the operator's key (`in[i]` for a value of
/// `in`).
fn operator(
    name: OperatorName,
    raw: &Value,
    params: &[&str],
) -> Result<Operator, Vec<RuleErrorAt>> {
    let here = |errors| located(name.as_str(), errors);
    Ok(match name {
        OperatorName::Exists => match raw {
            Value::Bool(b) => Operator::Exists(*b),
            other => return Err(here(vec![expected("true or false", other)])),
        },
        OperatorName::Equals => Operator::Equals(value(raw, params).map_err(here)?),
        OperatorName::NotEquals => Operator::NotEquals(value(raw, params).map_err(here)?),
        OperatorName::In => Operator::In(list(name, raw, params)?),
        OperatorName::Contains => Operator::Contains(value(raw, params).map_err(here)?),
        OperatorName::Matches => glob(raw, params).map_err(here)?,
        OperatorName::Gt => Operator::Gt(number(raw).map_err(here)?),
        OperatorName::Gte => Operator::Gte(number(raw).map_err(here)?),
        OperatorName::Lt => Operator::Lt(number(raw).map_err(here)?),
        OperatorName::Lte => Operator::Lte(number(raw).map_err(here)?),
    })
}

/// A value to compare with: JSON, or a string with `{param}` placeholders.
fn value(raw: &Value, params: &[&str]) -> Result<Expected, Vec<RuleError>> {
    match raw {
        Value::String(s) => {
            let template = template(s, params)?;
            Ok(if template.has_placeholders() {
                Expected::Template(template)
            } else {
                // `{{` and `}}` mean literal braces here as next to a placeholder.
                Expected::Json(Value::String(literal_text(&template)))
            })
        }
        Value::Null => Err(vec![RuleError::Null]),
        other => Ok(Expected::Json(other.clone())),
    }
}

/// The values of `in`; the first one that does not compile is reported at `in[i]`.
fn list(
    name: OperatorName,
    raw: &Value,
    params: &[&str],
) -> Result<Vec<Expected>, Vec<RuleErrorAt>> {
    let items = match raw {
        Value::Array(items) if !items.is_empty() => items,
        other => {
            let error = expected("a non-empty array", other);
            return Err(located(name.as_str(), vec![error]));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            value(item, params).map_err(|e| located(&format!("{}[{i}]", name.as_str()), e))
        })
        .collect()
}

/// A glob, compiled now when it has no placeholders.
fn glob(raw: &Value, params: &[&str]) -> Result<Operator, Vec<RuleError>> {
    let Value::String(pattern) = raw else {
        return Err(vec![expected("a glob string", raw)]);
    };
    let template = template(pattern, params)?;
    let compiled = if template.has_placeholders() {
        template
            .check_glob()
            .map(|()| Operator::MatchesTemplate(template))
    } else {
        Glob::new(&literal_text(&template)).map(Operator::Matches)
    };
    compiled.map_err(|error| {
        vec![RuleError::BadGlob {
            pattern: pattern.clone(),
            error,
        }]
    })
}

fn number(raw: &Value) -> Result<f64, Vec<RuleError>> {
    match raw.as_f64() {
        Some(n) if n.is_finite() => Ok(n),
        _ => Err(vec![expected("a number", raw)]),
    }
}

/// A string with `{param}` placeholders, each naming one of `params` (a rule value, or a
/// route's room name).
pub(crate) fn template(text: &str, params: &[&str]) -> Result<Template, Vec<RuleError>> {
    let template = Template::new(text).map_err(|error| {
        vec![RuleError::BadTemplate {
            text: text.to_owned(),
            error,
        }]
    })?;
    let unknown: Vec<RuleError> = template
        .placeholders()
        .filter(|name| !params.contains(name))
        .map(|name| RuleError::UnknownPlaceholder {
            name: name.to_owned(),
            params: owned(params),
        })
        .collect();
    if unknown.is_empty() {
        Ok(template)
    } else {
        Err(unknown)
    }
}

/// The text of a template without placeholders (its `{{` and `}}` unescaped).
fn literal_text(template: &Template) -> String {
    template
        .render(&crate::route::Params::default())
        .map(|t| t.into_owned())
        .unwrap_or_default()
}

fn expected(expected: &'static str, found: &Value) -> RuleError {
    RuleError::Expected {
        expected,
        found: json_kind(found),
    }
}

fn located(at: &str, errors: Vec<RuleError>) -> Vec<RuleErrorAt> {
    errors
        .into_iter()
        .map(|error| RuleErrorAt {
            at: at.to_owned(),
            error,
        })
        .collect()
}

fn owned(params: &[&str]) -> Vec<String> {
    params.iter().map(|p| (*p).to_owned()).collect()
}

/// How an error message names a JSON value's kind (`found a string`).
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}
