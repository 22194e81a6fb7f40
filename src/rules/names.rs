//! The names a config writes in a condition: one table for subjects, one for operators.
//!
//! Each table declares its enum, so a name cannot be listed without a variant or a variant
//! exist without a name; compiling a condition then matches on the enum with no wildcard arm,
//! so the compiler refuses a listed name that compiles to nothing. Error messages list the
//! tables, and a misspelled name gets the "did you mean" every config key gets.

/// Declares a name enum and its table from one list.
macro_rules! name_table {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every name with its config spelling, in the order error messages list them.
            pub const ALL: &'static [($name, &'static str)] = &[$(($name::$variant, $text),)+];

            /// The config spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The name a config key spells, if it is one.
            pub fn from_name(text: &str) -> Option<$name> {
                Self::ALL.iter().find(|(_, t)| *t == text).map(|(n, _)| *n)
            }

            /// The config spellings, in table order.
            pub fn names() -> impl Iterator<Item = &'static str> {
                Self::ALL.iter().map(|(_, t)| *t)
            }
        }
    };
}

name_table! {
    /// What a condition looks at: the key of its subject.
    SubjectName {
        /// A dot path into the session record.
        Session = "session",
        /// A path parameter of the matched route.
        Param = "param",
        /// A query-string parameter.
        Query = "query",
        /// A request header.
        Header = "header",
    }
}

name_table! {
    /// What a condition checks: the key of its operator.
    OperatorName {
        Exists = "exists",
        Equals = "equals",
        NotEquals = "not_equals",
        In = "in",
        Contains = "contains",
        Matches = "matches",
        Gt = "gt",
        Gte = "gte",
        Lt = "lt",
        Lte = "lte",
    }
}

/// The known name closest to a misspelled one: one it abbreviates, or one at most two edits
/// away.
pub(crate) fn suggestion<'k>(
    key: &str,
    known: impl IntoIterator<Item = &'k str>,
) -> Option<&'k str> {
    // An abbreviation ("eq" for "equals") beats any typo; otherwise the nearest typo.
    let score = |k: &str| {
        if key.len() >= 2 && k.starts_with(key) {
            Some(0)
        } else {
            Some(edit_distance(key, k)).filter(|d| *d <= 2)
        }
    };
    known
        .into_iter()
        .filter_map(|k| score(k).map(|s| (s, k)))
        .min_by_key(|(s, _)| *s)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            row.push((prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}
