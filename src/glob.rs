//! Glob patterns for `matches` rules and `allowed_origins`: `*` any run of characters, `?` one
//! character, `[abc]`, `[a-z]`, `[!a-z]` one character of (or not of) a set, `\x` a literal x.
//! Compiled once at config time; matching is a linear-time backtracking walk over chars, with
//! no regex engine in the wasm.

/// Why a pattern is not a glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// `[` without its `]`.
    #[error("unclosed '[' in glob")]
    UnclosedClass,
    /// A `\` at the very end escapes nothing.
    #[error("glob ends with a lone '\\'")]
    TrailingEscape,
    /// `[]` or `[!]` matches nothing.
    #[error("empty character class in glob")]
    EmptyClass,
    /// A range such as `z-a`.
    #[error("reversed range {0}-{1} in glob")]
    ReversedRange(char, char),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Literal(char),
    AnyChar,
    AnyRun,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled glob.
#[derive(Debug, Clone, PartialEq)]
pub struct Glob {
    tokens: Vec<Token>,
    source: String,
    /// The text it matches, when that is all it matches (no `*`, `?` or class): an origin
    /// such as `https://app.example.com` is then one string comparison.
    literal: Option<String>,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        Glob::from_parts([GlobPart::Pattern(pattern)])
    }

    /// A glob made of pattern text and literal text, as a `matches` rule with `{param}`
    /// placeholders is: a parameter's value is matched as plain text, never read as glob
    /// syntax, and each pattern piece must be a whole glob on its own (a class or an escape
    /// cannot reach into a placeholder).
    pub fn from_parts<'a>(
        parts: impl IntoIterator<Item = GlobPart<'a>>,
    ) -> Result<Glob, GlobError> {
        let mut tokens = Vec::new();
        let mut source = String::new();
        for part in parts {
            match part {
                GlobPart::Pattern(pattern) => {
                    source.push_str(pattern);
                    tokenize(pattern, &mut tokens)?;
                }
                GlobPart::Literal(text) => {
                    source.push_str(text);
                    tokens.extend(text.chars().map(Token::Literal));
                }
            }
        }
        let literal = tokens
            .iter()
            .map(|token| match token {
                Token::Literal(c) => Some(*c),
                _ => None,
            })
            .collect();
        Ok(Glob {
            tokens,
            source,
            literal,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Does the whole of `text` match?
    pub fn is_match(&self, text: &str) -> bool {
        if let Some(literal) = &self.literal {
            return text == literal;
        }
        // Byte positions that always sit on char boundaries: no allocation per match.
        let (mut t, mut p) = (0usize, 0usize);
        // Where the last `*` was and the text position it is currently standing for.
        let mut star: Option<(usize, usize)> = None;
        while let Some(c) = text[t..].chars().next() {
            match self.tokens.get(p) {
                Some(Token::AnyRun) => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                Some(token) if token_matches(token, c) => {
                    t += c.len_utf8();
                    p += 1;
                    continue;
                }
                _ => {}
            }
            match star {
                Some((sp, st)) => {
                    // Let the last `*` swallow one more character and retry after it.
                    let swallowed = text[st..].chars().next().map_or(1, char::len_utf8);
                    star = Some((sp, st + swallowed));
                    p = sp + 1;
                    t = st + swallowed;
                }
                None => return false,
            }
        }
        self.tokens[p..].iter().all(|token| *token == Token::AnyRun)
    }
}

/// A piece of a glob: pattern syntax, or text matched literally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobPart<'a> {
    Pattern(&'a str),
    Literal(&'a str),
}

fn tokenize(pattern: &str, tokens: &mut Vec<Token>) -> Result<(), GlobError> {
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        let token = match c {
            '*' => {
                // `**` is the same as `*`; keep one so matching stays linear.
                if tokens.last() == Some(&Token::AnyRun) {
                    continue;
                }
                Token::AnyRun
            }
            '?' => Token::AnyChar,
            '\\' => Token::Literal(chars.next().ok_or(GlobError::TrailingEscape)?),
            '[' => {
                let negated = chars.next_if_eq(&'!').is_some();
                let mut ranges = Vec::new();
                loop {
                    let start = match chars.next().ok_or(GlobError::UnclosedClass)? {
                        ']' => break,
                        '\\' => chars.next().ok_or(GlobError::TrailingEscape)?,
                        other => other,
                    };
                    let end = if chars.peek() == Some(&'-') {
                        let mut ahead = chars.clone();
                        ahead.next();
                        match ahead.peek() {
                            Some(']') | None => start,
                            Some(_) => {
                                chars.next();
                                let end = chars.next().ok_or(GlobError::UnclosedClass)?;
                                if end < start {
                                    return Err(GlobError::ReversedRange(start, end));
                                }
                                end
                            }
                        }
                    } else {
                        start
                    };
                    ranges.push((start, end));
                }
                if ranges.is_empty() {
                    return Err(GlobError::EmptyClass);
                }
                Token::Class { negated, ranges }
            }
            other => Token::Literal(other),
        };
        tokens.push(token);
    }
    Ok(())
}

fn token_matches(token: &Token, c: char) -> bool {
    match token {
        Token::Literal(l) => *l == c,
        Token::AnyChar => true,
        Token::AnyRun => false,
        Token::Class { negated, ranges } => {
            ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Glob::new(p).unwrap().is_match(t)
    }

    #[test]
    fn basics() {
        assert!(m("public-*", "public-lobby"));
        assert!(m("public-*", "public-"));
        assert!(!m("public-*", "private-lobby"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*", ""));
        assert!(m("", ""));
        assert!(!m("", "x"));
        assert!(m("https://*.example.com", "https://app.example.com"));
        assert!(!m("https://*.example.com", "https://example.com"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c*", "xxaxxcxxbxx"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m("room-[0-9]", "room-7"));
        assert!(!m("room-[0-9]", "room-x"));
        assert!(m("room-[!0-9]", "room-x"));
        assert!(m("[a-]", "-"));
        assert!(m(r"\*", "*"));
        assert!(!m(r"\*", "x"));
        assert!(m("☃?", "☃é"));
    }

    #[test]
    fn bad_globs() {
        assert_eq!(Glob::new("[abc"), Err(GlobError::UnclosedClass));
        assert_eq!(Glob::new("abc\\"), Err(GlobError::TrailingEscape));
        assert_eq!(Glob::new("[]"), Err(GlobError::EmptyClass));
        assert_eq!(Glob::new("[z-a]"), Err(GlobError::ReversedRange('z', 'a')));
    }

    #[test]
    fn literal_parts_are_never_glob_syntax() {
        let g = Glob::from_parts([GlobPart::Literal("*"), GlobPart::Pattern("-?")]).unwrap();
        assert!(g.is_match("*-x"));
        assert!(!g.is_match("a-x"));
        let class = [
            GlobPart::Pattern("["),
            GlobPart::Literal("a-z"),
            GlobPart::Pattern("]"),
        ];
        assert_eq!(Glob::from_parts(class), Err(GlobError::UnclosedClass));
        let escape = [GlobPart::Pattern("\\"), GlobPart::Literal("*")];
        assert_eq!(Glob::from_parts(escape), Err(GlobError::TrailingEscape));
    }

    #[test]
    fn many_stars_stay_fast() {
        let g = Glob::new(&"*a".repeat(50)).unwrap();
        assert!(!g.is_match(&"a".repeat(49)));
        assert!(g.is_match(&"a".repeat(5000)));
    }
}
