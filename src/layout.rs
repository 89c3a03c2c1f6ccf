//! The Redis key layout of the shared tier (L2).
//!
//! Every process that shares a Redis database (a JS `TieredCache` in Node,
//! a browser, a JS Worker, and the Rust Workers binding) must name the same
//! logical entry with the same Redis key, so the layout is written once,
//! here, and the JS package reaches it through wasm. It is specified in
//! `docs/REDIS.md`; the tests below pin it byte for byte.
//!
//! ```text
//! <prefix> ":" <kind> ":" <space> <key>
//!   prefix = 1..=64 of [A-Za-z0-9_.-]     (no ':', so it ends at the first ':')
//!   kind   = "v"  a signed value (an envelope, docs/ENVELOPE.md)
//!          | "n"  a counter: a plain Redis integer, unsigned
//!          | "g"  a tag's version: a plain Redis integer (INCR), the key
//!                 being the tag (see `tags.rs`); never a cache entry
//!   space  = "r|"                         the root keyspace
//!          | Scope::encode()              e.g. "t4:acme|", "b4:acme2:42|"
//! ```
//!
//! The layout is injective: the prefix ends at its first `:`, the kind is
//! one character, and the space is self-delimiting (`r|`, or a scope tag
//! `t`/`u`/`b` followed by length-prefixed parts and `|`), so no choice of
//! prefix, scope or key makes two different entries share a Redis key. In
//! particular a root key can never look like a scoped one, and tenant `a`
//! can never reach tenant `ab`'s keys.
//!
//! Tag keys (`g`) are the cache's but hold no entry: [`Layout::parse`]
//! does not read them back (so nothing that deletes the cache's entries,
//! `clear` or a pattern delete, takes them for one), and the patterns
//! ([`Layout::pattern`], [`Layout::everything`]) match `[vn]` only, so a
//! `clear` never resets a tag's version. [`Layout::parse_tag`] reads them.
//!
//! Patterns ([`Layout::pattern`]) escape every glob character of the fixed
//! part, so the caller's glob applies to the caller's keys only: a tenant
//! named `a*` matches nothing of tenant `ab`.

use crate::error::{Error, Result};
use crate::scope::Scope;

/// The longest prefix, in bytes.
pub const MAX_PREFIX_LEN: usize = 64;

/// What a Redis key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A signed envelope.
    Value,
    /// A counter: a plain integer that Redis `INCRBY` updates.
    Counter,
    /// A tag's version: a plain integer that Redis `INCR` raises when the
    /// tag is invalidated (missing: version 0). The key's last part is the
    /// tag, not a cache key.
    Tag,
}

impl Kind {
    fn tag(self) -> char {
        match self {
            Kind::Value => 'v',
            Kind::Counter => 'n',
            Kind::Tag => 'g',
        }
    }
}

/// The key layout of one cache (one prefix).
///
/// ```
/// use edgecache::{Kind, Layout, Scope};
/// let l = Layout::new("app").unwrap();
/// assert_eq!(l.key(Kind::Value, None, "user:1"), "app:v:r|user:1");
/// let acme = Scope::tenant("acme").unwrap();
/// assert_eq!(l.key(Kind::Counter, Some(&acme), "hits"), "app:n:t4:acme|hits");
/// assert_eq!(l.pattern(Some(&acme), "user:*"), "app:[vn]:t4:acme|user:*");
/// assert_eq!(l.key(Kind::Tag, Some(&acme), "product:7"), "app:g:t4:acme|product:7");
/// assert!(Layout::new("a:b").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// A layout under `prefix`: 1 to 64 characters of `A-Z a-z 0-9 _ . -`.
    pub fn new(prefix: &str) -> Result<Self> {
        let ok = !prefix.is_empty()
            && prefix.len() <= MAX_PREFIX_LEN
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !ok {
            return Err(Error::InvalidOption {
                name: "prefix",
                reason: format!(
                    "{prefix:?} must be 1 to {MAX_PREFIX_LEN} characters of A-Z a-z 0-9 _ . - (it ends at the first ':' of every Redis key)"
                ),
            });
        }
        Ok(Layout {
            prefix: prefix.to_owned(),
        })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of `key` in `scope` (`None`: the root keyspace).
    pub fn key(&self, kind: Kind, scope: Option<&Scope>, key: &str) -> String {
        let mut out = self.space(kind, scope);
        out.push_str(key);
        out
    }

    /// What every Redis key of `kind` in `scope` starts with: the key is
    /// this followed by the cache key.
    pub fn space(&self, kind: Kind, scope: Option<&Scope>) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 16);
        out.push_str(&self.prefix);
        out.push(':');
        out.push(kind.tag());
        out.push(':');
        match scope {
            None => out.push_str("r|"),
            Some(s) => out.push_str(&s.encode()),
        }
        out
    }

    /// A `SCAN MATCH` pattern for the keys of both kinds in `scope` whose
    /// cache key matches `glob`. The fixed part is escaped; `glob` is used
    /// as given, so it means exactly what it means to `MemoryCache.keys`.
    pub fn pattern(&self, scope: Option<&Scope>, glob: &str) -> String {
        let space = self.space(Kind::Value, scope);
        // "<prefix>:" + "[vn]" + the rest of the space after "v"
        let (head, tail) = space.split_at(self.prefix.len() + 1);
        let mut out = escape_glob(head);
        out.push_str("[vn]");
        out.push_str(&escape_glob(&tail[1..]));
        out.push_str(glob);
        out
    }

    /// A `SCAN MATCH` pattern for the keys of this cache: both kinds, the
    /// root and every scope. It is narrower than `<prefix>:*`, so other
    /// programs' keys such as `<prefix>:sessions:42` are not even scanned;
    /// what it finds, [`Layout::parse`] tells apart exactly.
    pub fn everything(&self) -> String {
        let mut out = escape_glob(&self.prefix);
        out.push_str(":[vn]:[rtub]*");
        out
    }

    /// Reads a Redis key of an entry of this layout back: its kind
    /// ([`Kind::Value`] or [`Kind::Counter`]), its scope (`None`: the
    /// root) and the cache key. `None` for any key this cache cannot have
    /// written (another prefix, another program's key under the same
    /// prefix, a malformed space), so a `clear` deletes exactly the
    /// cache's keys; `None` too for a tag's key ([`Kind::Tag`], read by
    /// [`parse_tag`](Self::parse_tag)), which is no entry.
    ///
    /// ```
    /// use edgecache::{Kind, Layout, Scope};
    /// let l = Layout::new("app").unwrap();
    /// let acme = Scope::tenant("acme").unwrap();
    /// let rk = l.key(Kind::Counter, Some(&acme), "hits");
    /// assert_eq!(l.parse(&rk), Some((Kind::Counter, Some(acme), "hits")));
    /// assert_eq!(l.parse("app:sessions:42"), None);
    /// assert_eq!(l.parse("app:v:t9:acme|x"), None); // the length is wrong
    /// assert_eq!(l.parse("app:g:r|product:7"), None); // a tag, no entry
    /// ```
    pub fn parse<'k>(&self, redis_key: &'k str) -> Option<(Kind, Option<Scope>, &'k str)> {
        match self.parse_any(redis_key)? {
            (Kind::Tag, ..) => None,
            entry => Some(entry),
        }
    }

    /// Reads the Redis key of a tag's version ([`Kind::Tag`]) back: its
    /// scope (`None`: the root) and the tag. `None` for any other key.
    ///
    /// ```
    /// use edgecache::{Kind, Layout, Scope};
    /// let l = Layout::new("app").unwrap();
    /// let acme = Scope::tenant("acme").unwrap();
    /// let rk = l.key(Kind::Tag, Some(&acme), "product:7");
    /// assert_eq!(l.parse_tag(&rk), Some((Some(acme), "product:7")));
    /// assert_eq!(l.parse_tag("app:v:r|product:7"), None);
    /// ```
    pub fn parse_tag<'k>(&self, redis_key: &'k str) -> Option<(Option<Scope>, &'k str)> {
        match self.parse_any(redis_key)? {
            (Kind::Tag, scope, tag) => Some((scope, tag)),
            _ => None,
        }
    }

    /// Any key of the layout read back, tags' keys included.
    fn parse_any<'k>(&self, redis_key: &'k str) -> Option<(Kind, Option<Scope>, &'k str)> {
        let rest = redis_key
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(':')?;
        let kind = match rest.as_bytes() {
            [b'v', b':', ..] => Kind::Value,
            [b'n', b':', ..] => Kind::Counter,
            [b'g', b':', ..] => Kind::Tag,
            _ => return None,
        };
        let rest = &rest[2..];
        if let Some(key) = rest.strip_prefix("r|") {
            return Some((kind, None, key));
        }
        let (scope, used) = Scope::decode_prefix(rest)?;
        Some((kind, Some(scope), &rest[used..]))
    }
}

/// What a glob made by [`Layout::pattern`] or [`Layout::everything`]
/// covers, read back by [`Layout::parse_pattern`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternScope<'g> {
    /// Every key of the cache ([`Layout::everything`]).
    Everything,
    /// The keys of both kinds in one scope (`None`: the root) whose cache
    /// key matches the glob.
    Scoped(Option<Scope>, &'g str),
}

impl Layout {
    /// Reads a glob made by [`Layout::pattern`] or [`Layout::everything`]
    /// back (what an invalidation log entry of a pattern delete or a clear
    /// carries), so that a reader drops the same entries from its L1; `None`
    /// for any other glob (the reader then drops everything).
    ///
    /// ```
    /// use edgecache::{Layout, PatternScope, Scope};
    /// let l = Layout::new("app").unwrap();
    /// let acme = Scope::tenant("a*me").unwrap();
    /// let glob = l.pattern(Some(&acme), "user:*");
    /// assert_eq!(l.parse_pattern(&glob), Some(PatternScope::Scoped(Some(acme), "user:*")));
    /// assert_eq!(l.parse_pattern(&l.pattern(None, "*")), Some(PatternScope::Scoped(None, "*")));
    /// assert_eq!(l.parse_pattern(&l.everything()), Some(PatternScope::Everything));
    /// assert_eq!(l.parse_pattern("app:*"), None);
    /// ```
    pub fn parse_pattern<'g>(&self, glob: &'g str) -> Option<PatternScope<'g>> {
        if glob == self.everything() {
            return Some(PatternScope::Everything);
        }
        let head = escape_glob(&self.prefix);
        let rest = glob.strip_prefix(head.as_str())?.strip_prefix(":[vn]:")?;
        // Unescape the rest, remembering where each plain byte ends in it:
        // the scope's encoding is self-delimiting, so decoding it from the
        // plain text tells how much of the escaped text it took.
        let mut plain = String::with_capacity(rest.len());
        let mut ends = Vec::with_capacity(rest.len());
        let mut chars = rest.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            let c = match c {
                '\\' => chars.next().map_or('\\', |(_, n)| n),
                c => c,
            };
            let end = chars.peek().map_or(rest.len(), |&(i, _)| i);
            plain.push(c);
            ends.resize(plain.len(), end);
        }
        let (scope, used) = match plain.strip_prefix("r|") {
            Some(_) => (None, 2),
            None => {
                let (s, used) = Scope::decode_prefix(&plain)?;
                (Some(s), used)
            }
        };
        let key_glob = &rest[*ends.get(used - 1)?..];
        // Only what `pattern` would have made: anything else is foreign.
        (self.pattern(scope.as_ref(), key_glob) == glob)
            .then_some(PatternScope::Scoped(scope, key_glob))
    }
}

/// Escapes the glob characters of `literal` (`*`, `?`, `[`, `]`, `\`) so
/// that Redis matches it literally.
///
/// ```
/// use edgecache::{escape_glob, Glob};
/// assert_eq!(escape_glob("a*[b]"), r"a\*\[b\]");
/// assert!(Glob::new(&escape_glob("t2:a*|")).matches("t2:a*|"));
/// assert!(!Glob::new(&escape_glob("t2:a*|")).matches("t2:ab|"));
/// ```
pub fn escape_glob(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len() + 4);
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glob::Glob;
    use proptest::prelude::*;

    #[test]
    fn pinned_layout() {
        let l = Layout::new("ec").unwrap();
        let both = Scope::new(Some("acme"), Some("42")).unwrap();
        assert_eq!(l.key(Kind::Value, None, "k"), "ec:v:r|k");
        assert_eq!(l.key(Kind::Value, Some(&both), "k"), "ec:v:b4:acme2:42|k");
        assert_eq!(
            l.key(Kind::Counter, Some(&Scope::user("Zoë").unwrap()), ""),
            "ec:n:u4:Zoë|"
        );
        assert_eq!(l.everything(), "ec:[vn]:[rtub]*");
        assert_eq!(l.key(Kind::Tag, None, "product:7"), "ec:g:r|product:7");
        assert_eq!(l.key(Kind::Tag, Some(&both), "p"), "ec:g:b4:acme2:42|p");
        assert_eq!(l.space(Kind::Tag, None), "ec:g:r|");
        assert_eq!(
            Layout::new("a.b-c_9").unwrap().everything(),
            "a.b-c_9:[vn]:[rtub]*"
        );
    }

    #[test]
    fn bad_prefixes() {
        for p in ["", "a:b", "a*", "a b", "é", &"x".repeat(65)] {
            let e = Layout::new(p).unwrap_err();
            assert_eq!(e.code(), "INVALID_OPTION", "{p:?}");
        }
        assert!(Layout::new(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn glob_tenants_are_escaped() {
        let l = Layout::new("p").unwrap();
        let star = Scope::tenant("a*").unwrap();
        let ab = Scope::tenant("ab").unwrap();
        let pat = Glob::new(&l.pattern(Some(&star), "*"));
        assert!(pat.matches(&l.key(Kind::Value, Some(&star), "x")));
        assert!(pat.matches(&l.key(Kind::Counter, Some(&star), "x")));
        assert!(!pat.matches(&l.key(Kind::Value, Some(&ab), "x")));
        let root = Glob::new(&l.pattern(None, "*"));
        assert!(!root.matches(&l.key(Kind::Value, Some(&ab), "x")));
        assert!(root.matches(&l.key(Kind::Value, None, "t2:ab|x")));
    }

    fn scope() -> impl Strategy<Value = Option<Scope>> {
        let part = proptest::option::of("[a-c:|*?\\[\\]\\\\0-9]{1,4}");
        proptest::option::of(
            (part.clone(), part)
                .prop_filter("needs a part", |(t, u)| t.is_some() || u.is_some())
                .prop_map(|(t, u)| Scope::new(t.as_deref(), u.as_deref()).unwrap()),
        )
    }
    fn kind() -> impl Strategy<Value = Kind> {
        prop_oneof![Just(Kind::Value), Just(Kind::Counter)]
    }
    /// Entries' kinds and tags'.
    fn any_kind() -> impl Strategy<Value = Kind> {
        prop_oneof![Just(Kind::Value), Just(Kind::Counter), Just(Kind::Tag)]
    }
    const KEY: &str = "[a-c:|rvn*?\\[\\]0-9]{0,5}";

    proptest! {
        /// Two entries share a Redis key only if they are the same entry.
        #[test]
        fn injective(p1 in "[ab]{1,3}", k1 in any_kind(), s1 in scope(), key1 in KEY,
                     p2 in "[ab]{1,3}", k2 in any_kind(), s2 in scope(), key2 in KEY) {
            let a = Layout::new(&p1).unwrap().key(k1, s1.as_ref(), &key1);
            let b = Layout::new(&p2).unwrap().key(k2, s2.as_ref(), &key2);
            prop_assert_eq!(a == b, (p1, k1, s1, key1) == (p2, k2, s2, key2));
        }

        /// A scope's pattern matches a key exactly when the key is in that
        /// scope under that prefix and its cache key matches the glob.
        #[test]
        fn patterns_match_only_their_space(s1 in scope(), s2 in scope(), k in kind(),
                                           key in KEY, glob in "[a-c*?]{0,4}") {
            let l = Layout::new("p").unwrap();
            let redis_key = l.key(k, s2.as_ref(), &key);
            let hit = Glob::new(&l.pattern(s1.as_ref(), &glob)).matches(&redis_key);
            // The glob is matched as the tail of a longer string, where
            // Redis lets a trailing `*` match nothing (so `*` finds the
            // empty key, as `MemoryCache.keys('*')` does).
            let tail = crate::glob::glob_match(format!("x{glob}").as_bytes(), format!("x{key}").as_bytes());
            prop_assert_eq!(hit, s1 == s2 && tail);
        }

        /// Every glob `pattern` makes reads back to its scope and glob
        /// (whatever the scope's names and the glob hold), and nothing
        /// else `pattern` could not have made is read as one.
        #[test]
        fn patterns_parse_back(s in scope(), glob in "[a-c:|rvn*?\\[\\]\\\\0-9]{0,6}",
                               noise in "[a-c:|*?\\[\\]\\\\0-9]{0,12}") {
            let l = Layout::new("p.q").unwrap();
            let made = l.pattern(s.as_ref(), &glob);
            prop_assert_eq!(l.parse_pattern(&made), Some(PatternScope::Scoped(s, glob.as_str())));
            let other = format!("p.q:[vn]:{noise}");
            if let Some(PatternScope::Scoped(s2, g2)) = l.parse_pattern(&other) {
                prop_assert_eq!(l.pattern(s2.as_ref(), g2), other);
            }
            let foreign = format!("p.r:[vn]:r|{glob}");
            prop_assert_eq!(l.parse_pattern(&foreign), None);
        }

        /// Every key of the layout parses back to what made it, and is
        /// found by `everything()`.
        #[test]
        fn parse_inverts_key(k in kind(), s in scope(), key in KEY) {
            let l = Layout::new("p").unwrap();
            let rk = l.key(k, s.as_ref(), &key);
            prop_assert_eq!(l.parse(&rk), Some((k, s, key.as_str())));
            prop_assert!(Glob::new(&l.everything()).matches(&rk));
        }

        /// Whatever parses is the key of what it parsed to (no other
        /// string is taken for one of the cache's keys).
        #[test]
        fn parse_accepts_only_layout_keys(tail in "[a-c:|rtubvng0-9]{0,12}", p in "(p|q)(:[vng]:)?") {
            let l = Layout::new("p").unwrap();
            let candidate = format!("{p}{tail}");
            if let Some((k, s, key)) = l.parse(&candidate) {
                prop_assert_ne!(k, Kind::Tag);
                prop_assert_eq!(l.key(k, s.as_ref(), key), candidate.clone());
            }
            if let Some((s, tag)) = l.parse_tag(&candidate) {
                prop_assert_eq!(l.key(Kind::Tag, s.as_ref(), tag), candidate);
            }
        }

        /// A tag's key is read back by `parse_tag` only: `parse` (what
        /// `clear` and the log's entry keys go through) does not take it
        /// for an entry, and neither `everything()` nor any scope's
        /// pattern matches it, so clear and deletePattern never delete it.
        #[test]
        fn tag_keys_are_no_entries(s in scope(), s2 in scope(), tag in KEY, glob in "[a-c*?]{0,4}") {
            let l = Layout::new("p").unwrap();
            let rk = l.key(Kind::Tag, s.as_ref(), &tag);
            prop_assert_eq!(l.parse(&rk), None);
            prop_assert_eq!(l.parse_tag(&rk), Some((s.clone(), tag.as_str())));
            prop_assert!(!Glob::new(&l.everything()).matches(&rk));
            prop_assert!(!Glob::new(&l.pattern(s2.as_ref(), &glob)).matches(&rk));
            prop_assert!(!Glob::new(&l.pattern(s.as_ref(), "*")).matches(&rk));
            // And no entry's key is read as a tag's.
            for k in [Kind::Value, Kind::Counter] {
                let entry = l.key(k, s.as_ref(), &tag);
                prop_assert_eq!(l.parse_tag(&entry), None);
            }
        }
    }

    #[test]
    fn others_keys_are_not_ours() {
        let l = Layout::new("app").unwrap();
        for k in [
            "app:sessions:42",
            "app:v:",
            "app:v:x|k",
            "app:x:r|k",
            "apps:v:r|k",
            "app:v:t0:|k",
            "app:v:t04:acme|k",
            "app:v:b4:acme|k",
            "app:v:t4:acme",
        ] {
            assert_eq!(l.parse(k), None, "{k}");
        }
        assert!(!Glob::new(&l.everything()).matches("app:sessions:42"));
    }
}
