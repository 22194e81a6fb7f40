//! The handshake's view of a stored session: only the values at the dot paths the config
//! reads, borrowed from the record's JSON text.
//!
//! A config reads a few paths of a session: `cookie.expires`, its rules' `session` subjects,
//! `expose` and `revoke_by`. [`PathSet`] compiles them once into a tree and gives each path a
//! [`PathId`]. [`SessionView::decode`] reads a record once, front to back: it checks that the
//! whole text is JSON, descends only into the members on those paths, and keeps the value at
//! each path as a slice of the text (a [`JsonRef`]), in a vector indexed by [`PathId`]. Nothing
//! else is built: no map, no `String` for a key or a value, nothing for the members skipped.
//! A kept value is decoded further only when something asks: a string unescaped (borrowed when
//! it has no escapes), a number parsed, a `serde_json::Value` built for what peers see.
//!
//! What it accepts is exactly what the serde_json decode it replaces accepted (serde_json's
//! `Value` for the wanted members, `IgnoredAny` for the rest), and what it reads at a path is
//! what [`Session::from_json`](crate::session::Session::from_json) reads there:
//!
//! * the text is one JSON object, with only JSON whitespace around it;
//! * a member no path goes through is checked as syntax only, as `IgnoredAny` checks it: a
//!   `\u` escape there may be a lone surrogate, a number may be beyond f64, nesting is not
//!   limited (and so, unlike the full decode, such a record is accepted);
//! * what a path goes through or keeps is checked as serde_json's `Value` decode checks it:
//!   every key and string has no lone surrogate escape, every number is within f64 (serde_json
//!   parses each kept number itself), and at most 127 arrays and objects nest;
//! * of duplicate keys the last wins, as in `serde_json::Map`;
//! * a path segment indexes an array when it parses as a `usize` (`user.roles.0`), as
//!   [`crate::session::lookup`] does.
//!
//! `tests/session_paths.rs` and the `session_paths` fuzz target hold it to the full decode.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

use crate::session::SessionError;

/// One path of a [`PathSet`]: the index of its value in a [`SessionView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PathId(usize);

impl PathId {
    /// `cookie.expires`, which every [`PathSet`] holds first: every check reads it.
    pub const EXPIRES: PathId = PathId(0);
}

/// The session paths a config reads, compiled: a tree of path segments, and every path with
/// where its value is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathSet {
    /// The record's top level.
    root: Node,
    /// By [`PathId`]: each path's text and where its value is.
    paths: Vec<Path>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    /// The key this node is under in its parent object (empty at the root).
    name: String,
    /// The same segment as an array index, where the parent's value is an array.
    index: Option<usize>,
    /// Set when a path ends here: its whole value is kept, and nothing below needs a node.
    whole: Option<PathId>,
    children: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Path {
    text: String,
    /// Where the value is: at the path's own node, or inside the value kept for a shorter path
    /// (`user.name` when `user` is kept whole), then looked up by the segments left.
    within: Option<(PathId, String)>,
}

impl Default for PathSet {
    fn default() -> Self {
        let mut set = PathSet {
            root: Node::new(String::new()),
            paths: Vec::new(),
        };
        set.insert("cookie.expires");
        set
    }
}

impl PathSet {
    /// Adds a dot path (or finds it) and says its id. Ids never change as paths are added.
    pub fn insert(&mut self, path: &str) -> PathId {
        if let Some(id) = self.id(path) {
            return id;
        }
        let id = PathId(self.paths.len());
        self.paths.push(Path {
            text: path.to_owned(),
            within: None,
        });
        let mut node = &mut self.root;
        for segment in path.split('.') {
            if node.whole.is_some() {
                break;
            }
            let i = match node.children.iter().position(|c| c.name == segment) {
                Some(i) => i,
                None => {
                    node.children.push(Node::new(segment.to_owned()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[i];
        }
        if node.whole.is_none() {
            node.whole = Some(id);
            // Longer paths below are read from this value now.
            node.children.clear();
        }
        self.locate_all();
        id
    }

    /// The id of a path inserted before.
    pub fn id(&self, path: &str) -> Option<PathId> {
        self.paths.iter().position(|p| p.text == path).map(PathId)
    }

    /// The text of a path.
    pub fn text(&self, id: PathId) -> &str {
        &self.paths[id.0].text
    }

    /// How many paths there are.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Never: `cookie.expires` is always there.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Works out again where each path's value is, after the tree changed.
    fn locate_all(&mut self) {
        for i in 0..self.paths.len() {
            let text = &self.paths[i].text;
            let mut node = &self.root;
            let mut within = None;
            let mut segments = text.split('.');
            while let Some(segment) = segments.next() {
                match node.children.iter().find(|c| c.name == segment) {
                    Some(child) => node = child,
                    None => break,
                }
                if let Some(kept) = node.whole {
                    if kept.0 != i {
                        let rest: Vec<&str> = segments.collect();
                        within = Some((kept, rest.join(".")));
                    }
                    break;
                }
            }
            self.paths[i].within = within;
        }
    }
}

impl Node {
    fn new(name: String) -> Node {
        Node {
            index: name.parse::<usize>().ok(),
            name,
            whole: None,
            children: Vec::new(),
        }
    }

    /// The child under this (raw, possibly escaped) object key, and its position.
    fn child(&self, key: RawStr<'_>) -> Option<(usize, &Node)> {
        if key.escaped {
            self.children
                .iter()
                .enumerate()
                .find(|(_, c)| key.equals(&c.name))
        } else {
            self.children
                .iter()
                .enumerate()
                .find(|(_, c)| short_eq(c.name.as_bytes(), key.bytes))
        }
    }

    /// Forgets every value kept at or below this node: a duplicate key replaces the value.
    fn clear<'a>(&self, values: &mut [Option<JsonRef<'a>>]) {
        if let Some(id) = self.whole {
            values[id.0] = None;
        }
        for child in &self.children {
            child.clear(values);
        }
    }
}

/// A stored session as the config sees it: the value at each of its paths.
#[derive(Debug, Clone)]
pub struct SessionView<'a> {
    paths: &'a PathSet,
    /// By [`PathId`]; only the paths that have a node of their own are filled in.
    values: Slots<'a>,
    /// `cookie.expires` in Unix ms, or `None` for a browser-session cookie.
    expires_at_ms: Option<i64>,
}

impl<'a> SessionView<'a> {
    /// Reads the values at `paths` from a stored session, and its expiry.
    pub fn decode(json: &'a str, paths: &'a PathSet) -> Result<SessionView<'a>, SessionError> {
        let mut values = Slots::new(paths.len());
        let mut reader = Reader::new(json);
        let read = match reader.peek_token() {
            Some(b'{') => reader.pick(&paths.root, &mut values),
            _ => Err(Invalid),
        };
        if read.is_err() || reader.peek_token().is_some() {
            return Err(SessionError::NotAnObject);
        }
        let mut view = SessionView {
            paths,
            values,
            expires_at_ms: None,
        };
        view.expires_at_ms = match view.get(PathId::EXPIRES) {
            None => None,
            Some(expires) if expires.is_null() => None,
            Some(expires) => {
                let iso = expires.as_str().ok_or(SessionError::BadExpires)?;
                Some(crate::time::parse_rfc3339_ms(&iso).ok_or(SessionError::BadExpires)?)
            }
        };
        Ok(view)
    }

    /// The value at a path of the set it was decoded with.
    pub fn get(&self, id: PathId) -> Option<JsonRef<'a>> {
        match &self.paths.paths[id.0].within {
            None => self.values[id.0],
            Some((kept, rest)) => self.values[kept.0]?.lookup(rest),
        }
    }

    /// When the session's cookie expires (Unix ms); see
    /// [`Session::expires_at_ms`](crate::session::Session::expires_at_ms).
    pub fn expires_at_ms(&self) -> Option<i64> {
        self.expires_at_ms
    }

    /// Expired at `now_ms`? Checked on every read, since a KV entry can outlive its session.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }

    /// Only the values at `ids`, nested as in the session: what the Room and its peers see.
    /// Paths that are absent are left out. The same value as
    /// [`Session::project`](crate::session::Session::project) with the paths' texts.
    pub fn project(&self, ids: &[PathId]) -> Value {
        let mut out = Map::new();
        for &id in ids {
            if let Some(value) = self.get(id) {
                crate::session::insert_path(&mut out, self.paths.text(id), value.to_value());
            }
        }
        Value::Object(out)
    }
}

/// How many paths' values a view keeps inline: a config reads a few (`cookie.expires`, its
/// rules' subjects, `expose`, `revoke_by`); more go to the heap.
const INLINE_SLOTS: usize = 8;

/// A view's values, by [`PathId`]: inline up to [`INLINE_SLOTS`], so that decoding a session
/// allocates nothing.
#[derive(Debug, Clone)]
enum Slots<'a> {
    Inline([Option<JsonRef<'a>>; INLINE_SLOTS], usize),
    Heap(Vec<Option<JsonRef<'a>>>),
}

impl<'a> Slots<'a> {
    fn new(len: usize) -> Slots<'a> {
        if len <= INLINE_SLOTS {
            Slots::Inline([None; INLINE_SLOTS], len)
        } else {
            Slots::Heap(vec![None; len])
        }
    }
}

impl<'a> std::ops::Deref for Slots<'a> {
    type Target = [Option<JsonRef<'a>>];

    fn deref(&self) -> &Self::Target {
        match self {
            Slots::Inline(slots, len) => &slots[..*len],
            Slots::Heap(slots) => slots,
        }
    }
}

impl std::ops::DerefMut for Slots<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            Slots::Inline(slots, len) => &mut slots[..*len],
            Slots::Heap(slots) => slots,
        }
    }
}

/// A JSON value kept from a session record: its text, already checked as serde_json's
/// `Value` decode checks it, so reading it further cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonRef<'a>(&'a str);

impl<'a> JsonRef<'a> {
    /// The value's JSON text, as it is in the record.
    pub fn text(self) -> &'a str {
        self.0
    }

    pub fn is_null(self) -> bool {
        self.0 == "null"
    }

    pub fn is_number(self) -> bool {
        matches!(self.0.as_bytes()[0], b'-' | b'0'..=b'9')
    }

    pub fn is_array(self) -> bool {
        self.0.as_bytes()[0] == b'['
    }

    pub fn as_bool(self) -> Option<bool> {
        match self.0 {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    /// A string's text, unescaped: borrowed from the record unless it has escapes.
    pub fn as_str(self) -> Option<Cow<'a, str>> {
        // Bytes compared in place (a `char` pattern goes through memcmp); a kept string is
        // at least its two quotes.
        if self.0.as_bytes()[0] != b'"' {
            return None;
        }
        let inner = &self.0[1..self.0.len() - 1];
        Some(if inner.as_bytes().contains(&b'\\') {
            Cow::Owned(unescape(inner))
        } else {
            Cow::Borrowed(inner)
        })
    }

    /// A number as serde_json reads it (the same `Number` a `Value` would hold).
    pub fn as_number(self) -> Option<Number> {
        if !self.is_number() {
            return None;
        }
        serde_json::from_str(self.0).ok()
    }

    pub fn as_f64(self) -> Option<f64> {
        self.as_number()?.as_f64()
    }

    /// An array's elements, in order (`None` if this is not an array).
    pub fn items(self) -> Option<impl Iterator<Item = JsonRef<'a>>> {
        self.is_array()
            .then(|| Entries::new(self.0).map(|(_, value)| value))
    }

    /// The member `segment` of an object (the last, if the key repeats), or the element at
    /// index `segment` of an array.
    pub fn child(self, segment: &str) -> Option<JsonRef<'a>> {
        match self.0.as_bytes()[0] {
            b'{' => Entries::new(self.0)
                .filter(|(key, _)| key.is_some_and(|k| k.equals(segment)))
                .last()
                .map(|(_, value)| value),
            b'[' => {
                let index = segment.parse::<usize>().ok()?;
                Entries::new(self.0).nth(index).map(|(_, value)| value)
            }
            _ => None,
        }
    }

    /// The value at a dot path below this one (an empty path is this value).
    pub fn lookup(self, path: &str) -> Option<JsonRef<'a>> {
        if path.is_empty() {
            return Some(self);
        }
        path.split('.').try_fold(self, JsonRef::child)
    }

    /// The value as a `serde_json::Value`: what the projection and a revocation key hold.
    pub fn to_value(self) -> Value {
        // Strings, booleans and null directly (a revocation key is usually a string); numbers
        // and containers through serde_json, so they are exactly the `Value` it would build.
        if let Some(text) = self.as_str() {
            return Value::String(text.into_owned());
        }
        if let Some(b) = self.as_bool() {
            return Value::Bool(b);
        }
        // The text was checked as serde_json's Value decode checks it, with less nesting
        // budget left than a fresh decode has, so this never fails.
        serde_json::from_str(self.0).unwrap_or(Value::Null)
    }
}

/// The text between a string's quotes, raw (UTF-8, since it is part of a `str`), and whether
/// it holds escapes.
#[derive(Debug, Clone, Copy)]
struct RawStr<'a> {
    bytes: &'a [u8],
    escaped: bool,
}

impl RawStr<'_> {
    fn equals(self, other: &str) -> bool {
        if self.escaped {
            std::str::from_utf8(self.bytes).is_ok_and(|text| unescape(text) == other)
        } else {
            self.bytes == other.as_bytes()
        }
    }
}

/// The text is not what serde_json would accept; why does not matter.
#[derive(Debug)]
struct Invalid;

type Step<T> = Result<T, Invalid>;

/// Deepest nesting of kept arrays and objects, counting the record itself: serde_json's
/// recursion limit (128 levels would be an error).
const MAX_KEPT_DEPTH: u8 = 127;

/// A cursor over a record's text. Every position it stops at is an ASCII byte or the end, so
/// every slice it takes falls on char boundaries.
struct Reader<'a> {
    text: &'a str,
    pos: usize,
    /// Kept arrays and objects open around the cursor.
    kept_depth: u8,
    /// Arrays and objects open while skipping a member, innermost last.
    skipped: OpenContainers,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Reader<'a> {
        Reader {
            text,
            pos: 0,
            kept_depth: 0,
            skipped: OpenContainers::default(),
        }
    }

    #[inline(always)]
    fn byte(&self, at: usize) -> Option<u8> {
        self.text.as_bytes().get(at).copied()
    }

    /// Skips JSON whitespace and says what comes next.
    #[inline(always)]
    fn peek_token(&mut self) -> Option<u8> {
        loop {
            match self.byte(self.pos) {
                Some(b' ' | b'\n' | b'\t' | b'\r') => self.pos += 1,
                next => return next,
            }
        }
    }

    #[inline]
    fn expect(&mut self, token: u8) -> Step<()> {
        if self.peek_token() != Some(token) {
            return Err(Invalid);
        }
        self.pos += 1;
        Ok(())
    }

    /// The value at a node of the path tree that is not kept whole: an object's members on the
    /// paths are followed and the rest skipped; an array's elements are kept (and followed
    /// where a path indexes them), since serde_json kept such an array whole.
    /// Values are only ever added below `node` here: a caller that reads a node's value a
    /// second time (a duplicate key) clears what the first left.
    fn pick(&mut self, node: &Node, values: &mut [Option<JsonRef<'a>>]) -> Step<()> {
        match self.peek_token() {
            Some(b'{') => {
                // Which children this object named already (all, past 64: clearing is safe).
                let mut named = 0u64;
                self.object(|reader, key| match node.child(key) {
                    Some((i, child)) => {
                        let bit = 1u64.checked_shl(i as u32).unwrap_or(0);
                        if bit == 0 || named & bit != 0 {
                            child.clear(values);
                        }
                        named |= bit;
                        reader.wanted(child, values)
                    }
                    None => reader.skip_value(),
                })
            }
            Some(b'[') => self.array(|reader, index| {
                let start = reader.pos;
                let mut followed = false;
                // Two segments may name one index ("1" and "01"): each reads the element.
                for child in node.children.iter().filter(|c| c.index == Some(index)) {
                    reader.pos = start;
                    reader.wanted(child, values)?;
                    followed = true;
                }
                if followed {
                    Ok(())
                } else {
                    reader.kept_value()
                }
            }),
            _ => self.kept_value(),
        }
    }

    /// The value at a node: kept whole where a path ends, followed further otherwise.
    fn wanted(&mut self, node: &Node, values: &mut [Option<JsonRef<'a>>]) -> Step<()> {
        let Some(id) = node.whole else {
            return self.pick(node, values);
        };
        self.peek_token();
        let start = self.pos;
        self.kept_value()?;
        values[id.0] = Some(JsonRef(&self.text[start..self.pos]));
        Ok(())
    }

    /// A value checked as serde_json's `Value` decode checks it.
    fn kept_value(&mut self) -> Step<()> {
        match self.peek_token().ok_or(Invalid)? {
            b'{' => self.object(|reader, _| reader.kept_value()),
            b'[' => self.array(|reader, _| reader.kept_value()),
            b'"' => self.skip_string(true).map(drop),
            b'-' | b'0'..=b'9' => {
                let number = self.number()?;
                // serde_json parses it, so what it refuses (beyond f64) is refused here too.
                serde_json::from_str::<Number>(number)
                    .map(drop)
                    .map_err(|_| Invalid)
            }
            _ => self.literal(),
        }
    }

    /// A kept object, `member` reading each value after its key. Keys are checked strictly,
    /// as serde_json reads them to match them.
    fn object(&mut self, mut member: impl FnMut(&mut Self, RawStr<'a>) -> Step<()>) -> Step<()> {
        self.open_kept()?;
        if self.peek_token() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                if self.peek_token() != Some(b'"') {
                    return Err(Invalid);
                }
                let key = self.string(true)?;
                self.expect(b':')?;
                member(self, key)?;
                match self.peek_token() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(Invalid),
                }
            }
        }
        self.kept_depth -= 1;
        Ok(())
    }

    /// A kept array, `element` reading each element (the cursor on its first byte).
    fn array(&mut self, mut element: impl FnMut(&mut Self, usize) -> Step<()>) -> Step<()> {
        self.open_kept()?;
        if self.peek_token() == Some(b']') {
            self.pos += 1;
        } else {
            for index in 0.. {
                self.peek_token();
                element(self, index)?;
                match self.peek_token() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(Invalid),
                }
            }
        }
        self.kept_depth -= 1;
        Ok(())
    }

    /// Steps into a kept `{` or `[` (the cursor on it).
    fn open_kept(&mut self) -> Step<()> {
        self.kept_depth += 1;
        if self.kept_depth > MAX_KEPT_DEPTH {
            return Err(Invalid);
        }
        self.pos += 1;
        Ok(())
    }

    /// A value nothing reads, checked as serde_json's `IgnoredAny` checks it: syntax only,
    /// without recursion, so nesting depth is not limited.
    fn skip_value(&mut self) -> Step<()> {
        // Most skipped members are strings: straight to them.
        if self.peek_token() == Some(b'"') {
            return self.skip_string(false).map(drop);
        }
        let outer = self.skipped.len();
        loop {
            // One value, or the start of a container.
            match self.peek_token().ok_or(Invalid)? {
                open @ (b'{' | b'[') => {
                    self.pos += 1;
                    let close = if open == b'{' { b'}' } else { b']' };
                    if self.peek_token() == Some(close) {
                        self.pos += 1;
                    } else {
                        self.skipped.push(open == b'{');
                        if open == b'{' {
                            self.skipped_key()?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.skip_string(false)?;
                }
                b'-' | b'0'..=b'9' => {
                    self.number()?;
                }
                _ => self.literal()?,
            }
            // After a value: close what ends here, then on to the next value, if any.
            loop {
                if self.skipped.len() == outer {
                    return Ok(());
                }
                let in_object = self.skipped.innermost_is_object();
                match self.peek_token() {
                    Some(b',') => {
                        self.pos += 1;
                        if in_object {
                            self.skipped_key()?;
                        }
                        break;
                    }
                    Some(b'}') if in_object => {}
                    Some(b']') if !in_object => {}
                    _ => return Err(Invalid),
                }
                self.pos += 1;
                self.skipped.pop();
            }
        }
    }

    /// A key and its `:` in a skipped object.
    fn skipped_key(&mut self) -> Step<()> {
        if self.peek_token() != Some(b'"') {
            return Err(Invalid);
        }
        self.skip_string(false)?;
        self.expect(b':')
    }

    /// A string (the cursor on its opening quote): the text between its quotes.
    #[inline(always)]
    fn string(&mut self, strict: bool) -> Step<RawStr<'a>> {
        let start = self.pos + 1;
        let escaped = self.skip_string(strict)?;
        Ok(RawStr {
            bytes: &self.text.as_bytes()[start..self.pos - 1],
            escaped,
        })
    }

    /// Steps over a string (the cursor on its opening quote) and says whether it holds
    /// escapes. `strict` also refuses a `\u` escape that is a lone surrogate, as serde_json
    /// does where it decodes the string; where it skips one, any four hex digits do.
    /// ([`Reader::string`] slices the text itself: a flag comes back in a register, where a
    /// slice and a flag would go through memory and stall the load that reads them back.)
    ///
    /// A string without escapes (most of them) is stepped over here, in line; the rest is
    /// [`Reader::skip_string_from`]'s.
    #[inline(always)]
    fn skip_string(&mut self, strict: bool) -> Step<bool> {
        let bytes = self.text.as_bytes();
        let at = special_byte(bytes, self.pos + 1);
        if bytes.get(at) == Some(&b'"') {
            self.pos = at + 1;
            return Ok(false);
        }
        self.skip_string_from(at, strict)
    }

    /// The rest of a string from its first backslash or control character (or the end).
    fn skip_string_from(&mut self, mut at: usize, strict: bool) -> Step<bool> {
        let bytes = self.text.as_bytes();
        let mut escaped = false;
        loop {
            match *bytes.get(at).ok_or(Invalid)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    at = escape_end(bytes, at + 1, strict).ok_or(Invalid)?;
                }
                // Control characters must be escaped.
                _ => return Err(Invalid),
            }
            at = special_byte(bytes, at);
        }
        self.pos = at + 1;
        Ok(escaped)
    }

    /// A number's text, by JSON's grammar (the cursor on its first byte).
    fn number(&mut self) -> Step<&'a str> {
        let start = self.pos;
        let digits = |reader: &mut Self| {
            let first = reader.pos;
            while let Some(b'0'..=b'9') = reader.byte(reader.pos) {
                reader.pos += 1;
            }
            reader.pos > first
        };
        if self.byte(self.pos) == Some(b'-') {
            self.pos += 1;
        }
        match self.byte(self.pos) {
            // One leading zero, and no digit after it.
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.byte(self.pos) {
                    return Err(Invalid);
                }
            }
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(Invalid),
        }
        if self.byte(self.pos) == Some(b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err(Invalid);
            }
        }
        if let Some(b'e' | b'E') = self.byte(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.byte(self.pos) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(Invalid);
            }
        }
        Ok(&self.text[start..self.pos])
    }

    /// `true`, `false` or `null`.
    fn literal(&mut self) -> Step<()> {
        let rest = &self.text.as_bytes()[self.pos..];
        // Matched byte by byte in place, not through memcmp.
        self.pos += match rest {
            [b't', b'r', b'u', b'e', ..] => 4,
            [b'f', b'a', b'l', b's', b'e', ..] => 5,
            [b'n', b'u', b'l', b'l', ..] => 4,
            _ => return Err(Invalid),
        };
        Ok(())
    }
}

/// `a == b` for the short strings keys are: lengths, then the bytes' differences folded
/// together in place. The slice comparison calls memcmp, which costs more than these few bytes
/// (a loop that stops at the first difference is turned into that call too, so this one
/// does not stop).
#[inline(always)]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Bytes that end a run of plain string text: `"`, `\\` and the control characters.
const STRING_SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// The first `"`, `\\` or control character at or after `from` (or the end): eight bytes
/// at a time with serde_json's test for "some byte of this word is one of them", the last few
/// by table.
#[inline(always)]
fn special_byte(bytes: &[u8], from: usize) -> usize {
    crate::scan::first_hit::<StringSpecial>(bytes, from)
}

struct StringSpecial;

impl crate::scan::Needles for StringSpecial {
    #[inline(always)]
    fn word_hits(word: u64) -> u64 {
        use crate::scan::{bytes_equal, ONES};
        (word.wrapping_sub(ONES * 0x20) & !word)
            | bytes_equal(word, b'"')
            | bytes_equal(word, b'\\')
    }
    #[inline(always)]
    fn is_hit(byte: u8) -> bool {
        STRING_SPECIAL[usize::from(byte)]
    }
}

/// Where an escape ends (the index after it), given the index of the byte after its `\`; `None`
/// if it is not a JSON escape (or, `strict`, a lone surrogate).
fn escape_end(bytes: &[u8], at: usize, strict: bool) -> Option<usize> {
    match *bytes.get(at)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(at + 1),
        b'u' => {
            let unit = hex4(bytes, at + 1)?;
            if !strict {
                return Some(at + 5);
            }
            match unit {
                0xDC00..=0xDFFF => None,
                0xD800..=0xDBFF => {
                    // A leading surrogate must be followed by an escaped trailing one.
                    if bytes.get(at + 5..at + 7)? != b"\\u" {
                        return None;
                    }
                    matches!(hex4(bytes, at + 7)?, 0xDC00..=0xDFFF).then_some(at + 11)
                }
                _ => Some(at + 5),
            }
        }
        _ => None,
    }
}

/// Four hex digits at `at`, as a UTF-16 code unit.
fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
    let digits = bytes.get(at..at + 4)?;
    let text = std::str::from_utf8(digits).ok()?;
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(text, 16).ok()
}

/// The text of a string checked strictly (between its quotes), escapes decoded.
fn unescape(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(backslash) = rest.find('\\') {
        out.push_str(&rest[..backslash]);
        let at = raw.len() - rest.len() + backslash + 1;
        let (ch, next) = match bytes[at] {
            b'b' => ('\u{8}', at + 1),
            b'f' => ('\u{c}', at + 1),
            b'n' => ('\n', at + 1),
            b'r' => ('\r', at + 1),
            b't' => ('\t', at + 1),
            b'u' => {
                let unit = u32::from(hex4(bytes, at + 1).unwrap_or(0xFFFD));
                if (0xD800..=0xDBFF).contains(&unit) {
                    // Checked strictly: a trailing surrogate follows.
                    let low = u32::from(hex4(bytes, at + 7).unwrap_or(0xDC00));
                    let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                    (char::from_u32(code).unwrap_or('\u{FFFD}'), at + 11)
                } else {
                    (char::from_u32(unit).unwrap_or('\u{FFFD}'), at + 5)
                }
            }
            // `"`, `\` and `/` stand for themselves.
            other => (char::from(other), at + 1),
        };
        out.push(ch);
        rest = &raw[next..];
    }
    out.push_str(rest);
    out
}

/// Which arrays and objects are open while skipping a member: one bit each, so skipping needs
/// no allocation up to 128 levels.
#[derive(Default)]
struct OpenContainers {
    /// Bit `i` set: the container at depth `i` (of the first 128) is an object.
    shallow: u128,
    deeper: Vec<bool>,
    len: usize,
}

impl OpenContainers {
    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, is_object: bool) {
        if self.len < 128 {
            self.shallow &= !(1 << self.len);
            self.shallow |= u128::from(is_object) << self.len;
        } else {
            self.deeper.push(is_object);
        }
        self.len += 1;
    }

    fn pop(&mut self) {
        self.len -= 1;
        if self.len >= 128 {
            self.deeper.pop();
        }
    }

    fn innermost_is_object(&self) -> bool {
        let top = self.len - 1;
        if top < 128 {
            self.shallow & (1 << top) != 0
        } else {
            self.deeper.last().copied().unwrap_or(false)
        }
    }
}

/// The members of a checked object (with their keys) or the elements of a checked array.
struct Entries<'a> {
    reader: Reader<'a>,
    is_object: bool,
    first: bool,
    done: bool,
}

impl<'a> Entries<'a> {
    fn new(container: &'a str) -> Entries<'a> {
        let mut reader = Reader::new(container);
        let is_object = reader.peek_token() == Some(b'{');
        reader.pos += 1;
        Entries {
            reader,
            is_object,
            first: true,
            done: false,
        }
    }

    fn next_entry(&mut self) -> Step<Option<(Option<RawStr<'a>>, JsonRef<'a>)>> {
        let close = if self.is_object { b'}' } else { b']' };
        match self.reader.peek_token() {
            Some(token) if token == close => return Ok(None),
            Some(b',') if !self.first => self.reader.pos += 1,
            _ if self.first => {}
            _ => return Err(Invalid),
        }
        self.first = false;
        let key = if self.is_object {
            self.reader.peek_token();
            let key = self.reader.string(false)?;
            self.reader.expect(b':')?;
            Some(key)
        } else {
            None
        };
        self.reader.peek_token();
        let start = self.reader.pos;
        self.reader.skip_value()?;
        let value = JsonRef(&self.reader.text[start..self.reader.pos]);
        Ok(Some((key, value)))
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = (Option<RawStr<'a>>, JsonRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let entry = self.next_entry().ok().flatten();
        self.done = entry.is_none();
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Session;
    use serde_json::json;

    const STORED: &str = r#"{"cookie":{"originalMaxAge":3600000,"expires":"2026-11-26T12:00:00.000Z","httpOnly":true,"path":"/"},"passport":{"user":"u-42"},"user":{"name":"Ada","roles":["chat","admin"],"secret":"x"},"extra":[1,{"a":2}]}"#;

    fn set(paths: &[&str]) -> PathSet {
        let mut set = PathSet::default();
        for path in paths {
            set.insert(path);
        }
        set
    }

    /// The value at `path` as the view and as the full decode read it.
    fn both(json: &str, paths: &PathSet, path: &str) -> (Option<Value>, Option<Value>) {
        let view = SessionView::decode(json, paths).unwrap();
        let full = Session::from_json(json).unwrap();
        let id = paths.id(path).unwrap();
        (view.get(id).map(JsonRef::to_value), full.get(path).cloned())
    }

    #[test]
    fn keeps_exactly_the_wanted_paths() {
        let paths = set(&["passport.user", "user.roles.1", "extra", "user.roles.7"]);
        let view = SessionView::decode(STORED, &paths).unwrap();
        let full = Session::from_json(STORED).unwrap();
        for path in ["passport.user", "user.roles.1", "extra", "cookie.expires"] {
            let id = paths.id(path).unwrap();
            assert_eq!(view.get(id).map(JsonRef::to_value).as_ref(), full.get(path));
        }
        assert_eq!(view.get(paths.id("user.roles.7").unwrap()), None);
        assert_eq!(view.expires_at_ms(), full.expires_at_ms());
        // Borrowed from the text: nothing was unescaped or copied.
        let user = view.get(paths.id("passport.user").unwrap()).unwrap();
        assert!(matches!(user.as_str(), Some(Cow::Borrowed("u-42"))));
    }

    #[test]
    fn a_path_below_a_kept_value_reads_inside_it() {
        let mut paths = set(&["user.name", "extra.1.a"]);
        paths.insert("user");
        paths.insert("extra");
        for path in ["user.name", "user", "extra.1.a", "extra"] {
            let (view, full) = both(STORED, &paths, path);
            assert_eq!(view, full, "{path}");
            assert!(view.is_some(), "{path}");
        }
        // A path added after a shorter one is read inside it too.
        paths.insert("user.roles.0");
        assert_eq!(both(STORED, &paths, "user.roles.0").0, Some(json!("chat")));
    }

    #[test]
    fn the_last_duplicate_key_wins_whole() {
        let paths = set(&["user.name", "user.roles", "a"]);
        let json = r#"{"user":{"name":"x","roles":[1]},"a":1,"user":{"name":"y"},"a":2}"#;
        for path in ["user.name", "user.roles", "a"] {
            let (view, full) = both(json, &paths, path);
            assert_eq!(view, full, "{path}");
        }
        let json = r#"{"user":{"name":"x"},"user":"flat"}"#;
        assert_eq!(both(json, &paths, "user.name"), (None, None));
    }

    #[test]
    fn escaped_keys_and_strings_are_decoded() {
        let paths = set(&["passport.user", "ü.x"]);
        let json =
            r#"{"pass\u0070ort":{"user":"a\"b\\c\/\u00e9\ud83d\ude00\n"},"\u00fc":{"x":"\t"}}"#;
        for path in ["passport.user", "ü.x"] {
            let (view, full) = both(json, &paths, path);
            assert_eq!(view, full, "{path}");
        }
        let view = SessionView::decode(json, &paths).unwrap();
        let user = view.get(paths.id("passport.user").unwrap()).unwrap();
        assert_eq!(user.as_str().unwrap(), "a\"b\\c/é😀\n");
    }

    #[test]
    fn arrays_are_indexed_as_the_full_decode_indexes_them() {
        let paths = set(&["r.1", "r.01", "r.+1", "r.x", "r.2.k"]);
        let json = r#"{"r":["a","b",{"k":[true]}]}"#;
        for path in ["r.1", "r.01", "r.+1", "r.x", "r.2.k"] {
            let (view, full) = both(json, &paths, path);
            assert_eq!(view, full, "{path}");
        }
    }

    #[test]
    fn refuses_what_serde_json_refused() {
        let paths = set(&["passport.user", "kept"]);
        for bad in [
            "",
            "[]",
            "nope",
            "\"1\"",
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{"skipped":[1,}"#,
            r#"{"skipped":{"x":1,}}"#,
            r#"{"skipped":[1 2]}"#,
            r#"{"skipped":{"x" 1}}"#,
            r#"{"skipped":[}"#,
            r#"{"skipped":01}"#,
            r#"{"skipped":1.}"#,
            r#"{"skipped":1e}"#,
            r#"{"skipped":-}"#,
            r#"{"skipped":tru}"#,
            r#"{"skipped":"\x"}"#,
            r#"{"skipped":"\u12"}"#,
            "{\"skipped\":\"\u{1}\"}",
            r#"{"a":1} trailing"#,
            r#"{"a":1}}"#,
            // Kept values and keys on a path are checked as a Value decode checks them.
            r#"{"kept":1e400}"#,
            r#"{"kept":"\ud800"}"#,
            r#"{"kept":"\udc00"}"#,
            r#"{"kept":"\ud800\n"}"#,
            r#"{"kept":"\ud800\u0041"}"#,
            r#"{"\ud800":1}"#,
            r#"{"passport":{"\udc00":1}}"#,
            r#"{"passport":[1e999]}"#,
        ] {
            assert_eq!(
                SessionView::decode(bad, &paths).map(|_| ()),
                Err(SessionError::NotAnObject),
                "{bad}"
            );
        }
        assert_eq!(
            SessionView::decode(r#"{"cookie":{"expires":"soon"}}"#, &paths).map(|_| ()),
            Err(SessionError::BadExpires)
        );
        assert_eq!(
            SessionView::decode(r#"{"cookie":{"expires":12}}"#, &paths).map(|_| ()),
            Err(SessionError::BadExpires)
        );
    }

    #[test]
    fn skipped_members_are_checked_as_syntax_only() {
        let paths = set(&["passport.user"]);
        for ok in [
            r#"{"skipped":1e400}"#,
            r#"{"skipped":"\ud800"}"#,
            r#"{"skipped":{"\udc00":[{"a":[]},{}]}}"#,
            " {\"a\" : [ 1 , -0.5e+3 , true , null , { } , [ ] ] }\n",
        ] {
            assert!(SessionView::decode(ok, &paths).is_ok(), "{ok}");
        }
        // Nesting is limited where values are kept, not where they are skipped.
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let skipped = format!(r#"{{"skipped":{}}}"#, deep(100_000));
        assert!(SessionView::decode(&skipped, &paths).is_ok());
        let kept = set(&["kept"]);
        for (n, ok) in [(126, true), (127, false)] {
            let json = format!(r#"{{"kept":{}}}"#, deep(n));
            assert_eq!(SessionView::decode(&json, &kept).is_ok(), ok, "{n}");
            assert_eq!(Session::from_json(&json).is_ok(), ok, "{n}");
        }
    }

    #[test]
    fn projection_matches_the_full_decode() {
        let paths = set(&[
            "passport.user",
            "user.name",
            "user.roles",
            "missing.path",
            "extra.1",
        ]);
        let exposed = [
            "passport.user",
            "user.name",
            "user.roles",
            "missing.path",
            "extra.1",
        ];
        let ids: Vec<PathId> = exposed.iter().map(|p| paths.id(p).unwrap()).collect();
        let view = SessionView::decode(STORED, &paths).unwrap();
        let full = Session::from_json(STORED).unwrap();
        assert_eq!(view.project(&ids), full.project(&exposed));
        assert_eq!(
            view.project(&ids).to_string(),
            full.project(&exposed).to_string()
        );
    }

    #[test]
    fn special_bytes_are_found_at_every_offset() {
        for special in [b'"', b'\\', 0x00, 0x1f] {
            for filler in [b'a', 0x20, 0x7f, 0xc3] {
                for len in 0..20 {
                    for at in 0..=len {
                        let mut bytes = vec![filler; len];
                        if at < len {
                            bytes[at] = special;
                        }
                        for from in 0..=at {
                            assert_eq!(special_byte(&bytes, from), at, "{bytes:?} from {from}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn ids_stay_put_as_paths_are_added() {
        let mut paths = PathSet::default();
        assert_eq!(paths.id("cookie.expires"), Some(PathId::EXPIRES));
        let a = paths.insert("user.name");
        let b = paths.insert("user");
        assert_eq!(paths.insert("user.name"), a);
        assert_eq!(paths.id("user"), Some(b));
        assert_eq!(paths.text(a), "user.name");
        // `cookie` kept whole still answers `cookie.expires`.
        paths.insert("cookie");
        let view = SessionView::decode(STORED, &paths).unwrap();
        assert_eq!(
            view.expires_at_ms(),
            Session::from_json(STORED).unwrap().expires_at_ms()
        );
    }
}
