//! Route patterns (`/ws/rooms/:room`, `/ws/files/*`) and room templates (`"{room}"`).
//!
//! `:name` captures exactly one non-empty segment; a final `*` captures the rest of the path
//! (at least one character) as the parameter `*`. Captured segments are percent-decoded, as
//! Express decodes `req.params`; a segment that does not decode makes the route not match.

use std::borrow::Cow;

use crate::glob::{Glob, GlobError, GlobPart};

/// Why a path pattern or a template is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("path must start with '/'")]
    MustStartWithSlash,
    #[error("path has an empty segment ('//')")]
    EmptySegment,
    #[error("bad parameter name {0:?} (letters, digits and '_', not first a digit)")]
    BadParamName(String),
    #[error("parameter {0:?} appears twice")]
    DuplicateParam(String),
    #[error("'*' may only be the last segment")]
    StarNotLast,
    #[error("'{{' without its '}}'")]
    UnclosedPlaceholder,
    #[error("bad placeholder {{{0}}}")]
    BadPlaceholder(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segments: Vec<Segment>,
    rest: bool,
    source: String,
}

/// The parameter name a trailing `*` captures into.
pub const REST_PARAM: &str = "*";

/// How many parameters a match keeps inline; routes rarely capture more, and those that do
/// keep the rest on the heap.
const INLINE_PARAMS: usize = 2;

/// A captured parameter: its name and its (decoded) value.
type Param<'c, 'p> = (&'c str, Cow<'p, str>);

/// Parameters captured by a match, in pattern order. Names borrow from the compiled config,
/// values from the request path unless they needed percent-decoding. The first few are kept
/// inline, so a match allocates nothing for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params<'c, 'p> {
    /// Filled in order: a `None` is never followed by a `Some`.
    first: [Option<Param<'c, 'p>>; INLINE_PARAMS],
    more: Vec<Param<'c, 'p>>,
}

impl<'a> Params<'a, 'a> {
    /// Parameters kept from an earlier match (a socket's attachment).
    pub fn from_pairs(pairs: &'a [(String, String)]) -> Params<'a, 'a> {
        let mut params = Params::default();
        for (n, v) in pairs {
            params.push((n.as_str(), Cow::Borrowed(v.as_str())));
        }
        params
    }
}

impl<'c, 'p> Params<'c, 'p> {
    fn push(&mut self, param: Param<'c, 'p>) {
        match self.first.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some(param),
            None => self.more.push(param),
        }
    }

    fn pairs(&self) -> impl Iterator<Item = &Param<'c, 'p>> {
        self.first.iter().flatten().chain(&self.more)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_ref())
    }

    /// The value of `name` as captured: borrowed from the path unless it was decoded.
    pub(crate) fn get_captured(&self, name: &str) -> Option<&Cow<'p, str>> {
        self.pairs().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs().map(|(n, v)| (*n, v.as_ref()))
    }

    /// The parameters as owned pairs (what a socket keeps).
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl PathPattern {
    pub fn new(pattern: &str) -> Result<PathPattern, PatternError> {
        let body = pattern
            .strip_prefix('/')
            .ok_or(PatternError::MustStartWithSlash)?;
        let mut segments = Vec::new();
        let mut rest = false;
        let parts: Vec<&str> = body.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            if rest {
                return Err(PatternError::StarNotLast);
            }
            if part.is_empty() {
                // "/" alone is the root pattern: no segments.
                if parts.len() == 1 {
                    break;
                }
                return Err(PatternError::EmptySegment);
            }
            if *part == "*" {
                if i + 1 != parts.len() {
                    return Err(PatternError::StarNotLast);
                }
                rest = true;
            } else if let Some(name) = part.strip_prefix(':') {
                if !valid_name(name) {
                    return Err(PatternError::BadParamName(name.to_owned()));
                }
                if segments.contains(&Segment::Param(name.to_owned())) {
                    return Err(PatternError::DuplicateParam(name.to_owned()));
                }
                segments.push(Segment::Param(name.to_owned()));
            } else {
                segments.push(Segment::Literal((*part).to_owned()));
            }
        }
        Ok(PathPattern {
            segments,
            rest,
            source: pattern.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The pattern with parameter names erased: two patterns with the same shape match the
    /// same paths, so the second could never be reached.
    pub fn shape(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            out.push('/');
            match segment {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param(_) => out.push(':'),
            }
        }
        if self.rest {
            out.push_str("/*");
        }
        out
    }

    /// The names this pattern captures (`*` for a trailing star).
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(n) => Some(n.as_str()),
                Segment::Literal(_) => None,
            })
            .chain(self.rest.then_some(REST_PARAM))
    }

    /// Match a request path (without its query string).
    pub fn match_path<'c, 'p>(&'c self, path: &'p str) -> Option<Params<'c, 'p>> {
        let mut remaining = path.strip_prefix('/')?;
        let mut params = Params::default();
        let count = self.segments.len();
        for (i, segment) in self.segments.iter().enumerate() {
            // The next `/` found as a byte (a `char` pattern costs more than these few bytes).
            let slash = crate::cookie::find_either::<b'/', b'/'>(remaining.as_bytes(), 0);
            let (part, after) = match remaining.get(slash + 1..) {
                Some(after) => (&remaining[..slash], Some(after)),
                None => (remaining, None),
            };
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(_) if part.is_empty() => return None,
                Segment::Param(name) => params.push((name.as_str(), decode_segment(part)?)),
            }
            let last = i + 1 == count;
            match after {
                // The path ended: a match only if the pattern ends here too.
                None => return (last && !self.rest).then_some(params),
                // More path after the pattern's last segment: only a `*` takes it.
                Some(_) if last && !self.rest => return None,
                Some(after) => remaining = after,
            }
        }
        if !self.rest {
            // Only the root pattern "/" gets here: it matches "/" alone.
            return remaining.is_empty().then_some(params);
        }
        if remaining.is_empty() {
            return None;
        }
        params.push((REST_PARAM, decode_segment(remaining)?));
        Some(params)
    }
}

fn decode_segment(raw: &str) -> Option<Cow<'_, str>> {
    if raw.as_bytes().contains(&b'%') {
        crate::cookie::percent_decode(raw).map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(raw))
    }
}

/// A string with `{param}` placeholders, such as a room template or a rule value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<TemplatePart>,
    source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplatePart {
    Literal(String),
    Param(String),
}

impl Template {
    /// `{name}` is a placeholder when name is a parameter name or `*`; `{{` and `}}` are
    /// literal braces.
    pub fn new(text: &str) -> Result<Template, PatternError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.next_if(|&(_, c)| c == '{').is_some() => literal.push('{'),
                '}' if chars.next_if(|&(_, c)| c == '}').is_some() => literal.push('}'),
                '{' => {
                    let close = text[i..]
                        .find('}')
                        .ok_or(PatternError::UnclosedPlaceholder)?;
                    let name = &text[i + 1..i + close];
                    if name != REST_PARAM && !valid_name(name) {
                        return Err(PatternError::BadPlaceholder(name.to_owned()));
                    }
                    if !literal.is_empty() {
                        parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(TemplatePart::Param(name.to_owned()));
                    while chars.next_if(|&(j, _)| j <= i + close).is_some() {}
                }
                other => literal.push(other),
            }
        }
        if !literal.is_empty() {
            parts.push(TemplatePart::Literal(literal));
        }
        Ok(Template {
            parts,
            source: text.to_owned(),
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The placeholders used.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            TemplatePart::Param(n) => Some(n.as_str()),
            TemplatePart::Literal(_) => None,
        })
    }

    pub fn has_placeholders(&self) -> bool {
        self.placeholders().next().is_some()
    }

    /// The text with each placeholder replaced by its parameter; `None` if a parameter is
    /// missing (config validation makes that impossible for a matched route).
    pub fn render<'t>(&'t self, params: &Params<'_, '_>) -> Option<Cow<'t, str>> {
        if let [TemplatePart::Literal(only)] = self.parts.as_slice() {
            return Some(Cow::Borrowed(only));
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Literal(l) => out.push_str(l),
                TemplatePart::Param(name) => out.push_str(params.get(name)?),
            }
        }
        Some(Cow::Owned(out))
    }

    /// [`Template::render`] for what outlives `params`: the template's own text, or the
    /// value of its only placeholder when that is a slice of the path, are borrowed; anything
    /// else is built.
    pub fn render_kept<'a>(&'a self, params: &Params<'a, 'a>) -> Option<Cow<'a, str>> {
        if let [TemplatePart::Param(name)] = self.parts.as_slice() {
            if let Some(Cow::Borrowed(value)) = params.get_captured(name) {
                return Some(Cow::Borrowed(value));
            }
        }
        self.render(params)
    }

    /// The template as a glob: its text is glob syntax and each placeholder's value is matched
    /// as plain text, so a parameter can never widen the pattern.
    pub fn to_glob(&self, params: &Params<'_, '_>) -> Option<Result<Glob, GlobError>> {
        let mut parts = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            parts.push(match part {
                TemplatePart::Literal(l) => GlobPart::Pattern(l),
                TemplatePart::Param(name) => GlobPart::Literal(params.get(name)?),
            });
        }
        Some(Glob::from_parts(parts))
    }

    /// Checks the template's glob syntax with every placeholder standing for plain text: a
    /// class or an escape that reaches into a placeholder is an error.
    pub fn check_glob(&self) -> Result<(), GlobError> {
        let parts = self.parts.iter().map(|part| match part {
            TemplatePart::Literal(l) => GlobPart::Pattern(l),
            TemplatePart::Param(_) => GlobPart::Literal("x"),
        });
        Glob::from_parts(parts).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params_of(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        let p = PathPattern::new(pattern).unwrap();
        p.match_path(path).map(|ps| {
            ps.iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect()
        })
    }

    fn pairs(list: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            list.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    #[test]
    fn named_segments() {
        assert_eq!(
            params_of("/ws/rooms/:room", "/ws/rooms/lobby"),
            pairs(&[("room", "lobby")])
        );
        assert_eq!(params_of("/ws/rooms/:room", "/ws/rooms/"), None);
        assert_eq!(params_of("/ws/rooms/:room", "/ws/rooms"), None);
        assert_eq!(params_of("/ws/rooms/:room", "/ws/rooms/a/b"), None);
        assert_eq!(params_of("/ws/rooms/:room", "/ws/rooms/lobby/"), None);
        assert_eq!(params_of("/ws/rooms/:room", "/ws/other/lobby"), None);
        assert_eq!(
            params_of("/ws/:org/:room", "/ws/acme/x%20y"),
            pairs(&[("org", "acme"), ("room", "x y")])
        );
        assert_eq!(params_of("/ws/:room", "/ws/%zz"), None);
    }

    #[test]
    fn literal_and_root() {
        assert_eq!(params_of("/ws", "/ws"), pairs(&[]));
        assert_eq!(params_of("/ws", "/ws/"), None);
        assert_eq!(params_of("/ws", "/wsx"), None);
        assert_eq!(params_of("/", "/"), pairs(&[]));
        assert_eq!(params_of("/", "/x"), None);
    }

    #[test]
    fn trailing_star() {
        assert_eq!(params_of("/ws/*", "/ws/a/b"), pairs(&[("*", "a/b")]));
        assert_eq!(params_of("/ws/*", "/ws/"), None);
        assert_eq!(params_of("/ws/*", "/ws"), None);
        assert_eq!(
            params_of("/ws/:a/*", "/ws/x/y"),
            pairs(&[("a", "x"), ("*", "y")])
        );
    }

    #[test]
    fn bad_patterns() {
        assert_eq!(
            PathPattern::new("ws"),
            Err(PatternError::MustStartWithSlash)
        );
        assert_eq!(PathPattern::new("/ws//x"), Err(PatternError::EmptySegment));
        assert_eq!(PathPattern::new("/ws/*/x"), Err(PatternError::StarNotLast));
        assert_eq!(
            PathPattern::new("/:1a"),
            Err(PatternError::BadParamName("1a".into()))
        );
        assert_eq!(
            PathPattern::new("/:a/:a"),
            Err(PatternError::DuplicateParam("a".into()))
        );
    }

    #[test]
    fn shapes_ignore_param_names() {
        let a = PathPattern::new("/ws/:a").unwrap();
        let b = PathPattern::new("/ws/:b").unwrap();
        assert_eq!(a.shape(), b.shape());
    }

    #[test]
    fn templates() {
        let p = PathPattern::new("/ws/:org/:room").unwrap();
        let params = p.match_path("/ws/acme/lobby").unwrap();
        let t = Template::new("{org}:{room}").unwrap();
        assert_eq!(t.render(&params).as_deref(), Some("acme:lobby"));
        assert_eq!(
            Template::new("{{x}}").unwrap().render(&params).as_deref(),
            Some("{x}")
        );
        assert_eq!(Template::new("{nope}").unwrap().render(&params), None);
        assert_eq!(
            Template::new("{room"),
            Err(PatternError::UnclosedPlaceholder)
        );
        assert_eq!(
            Template::new("{a b}"),
            Err(PatternError::BadPlaceholder("a b".into()))
        );
        assert_eq!(
            Template::new("é{room}ü")
                .unwrap()
                .render(&params)
                .as_deref(),
            Some("élobbyü")
        );
    }
}
