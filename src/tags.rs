//! Tags: the rule of a tag string, and the rule that decides whether a
//! tagged entry is still valid (issue 15, `docs/REDIS.md`).
//!
//! A tag is 1 to [`MAX_TAG_LEN`] bytes of UTF-8 (well-formed: a Rust `str`
//! always is; the JS side refuses lone surrogates before it gets here),
//! without control characters (U+0000 to U+001F, U+007F) and without a
//! comma, so that a `Cache-Tag: a,b` header round-trips and a list of tags
//! joined with commas splits back exactly. An entry carries at most
//! [`MAX_TAGS`] tags; a list is deduplicated (the first occurrence kept,
//! the order kept), and an empty list is the same as none.
//!
//! Each tag has a **version**, a non-negative integer per (cache, scope,
//! tag), raised by one when the tag is invalidated. An entry records, for
//! each of its tags, the version it was written under, and is valid iff
//! every recorded version is at least the tag's current one
//! ([`tags_valid`]). Invalidation is then O(1) whatever the number of
//! entries that carry the tag: nothing is scanned, entries are checked
//! when read. [`TagVersions`] is that table for one keyspace.

use hashbrown::HashMap;

use crate::error::{Error, Result};

/// The longest tag, in UTF-8 bytes.
pub const MAX_TAG_LEN: usize = 256;

/// The most tags one entry carries.
pub const MAX_TAGS: usize = 64;

/// How much of a tag an error message shows, in bytes (less, to end on a
/// character).
const SHOWN: usize = 40;

/// The tag quoted for a message, truncated.
fn shown(tag: &str) -> String {
    let mut end = tag.len().min(SHOWN);
    while !tag.is_char_boundary(end) {
        end -= 1;
    }
    let more = if end < tag.len() { "..." } else { "" };
    format!("\"{}{more}\"", &tag[..end])
}

/// Checks one tag against the rule (module docs): `INVALID_TAG`, naming
/// the tag (truncated) and the rule it breaks.
///
/// ```
/// use edgecache::check_tag;
/// assert!(check_tag("product:7").is_ok());
/// assert_eq!(check_tag("").unwrap_err().code(), "INVALID_TAG");
/// assert_eq!(check_tag("a,b").unwrap_err().code(), "INVALID_TAG");
/// assert_eq!(check_tag("a\nb").unwrap_err().code(), "INVALID_TAG");
/// ```
#[inline(never)]
pub fn check_tag(tag: &str) -> Result<()> {
    // Bytes below 0x80 are ASCII characters in UTF-8, so the bytes tell.
    let why = if tag.is_empty() {
        "a tag is 1 to 256 bytes of UTF-8, not empty"
    } else if tag.len() > MAX_TAG_LEN {
        "a tag is at most 256 bytes of UTF-8"
    } else if tag.bytes().any(|b| b == b',') {
        "a tag has no comma (a Cache-Tag header separates tags with commas)"
    } else if tag.bytes().any(|b| b < 0x20 || b == 0x7f) {
        "a tag has no control character (U+0000 to U+001F, U+007F)"
    } else {
        return Ok(());
    };
    Err(Error::InvalidTag(format!("{}: {why}", shown(tag))))
}

/// Checks an entry's tags and returns them deduplicated (the first
/// occurrence kept, in order): `INVALID_TAG` for a tag that breaks the rule
/// or more than [`MAX_TAGS`] distinct tags. An empty list is valid (no
/// tags).
///
/// ```
/// use edgecache::check_tags;
/// assert_eq!(check_tags(&["b", "a", "b"]).unwrap(), ["b", "a"]);
/// assert!(check_tags(&[]).unwrap().is_empty());
/// let many: Vec<String> = (0..65).map(|i| i.to_string()).collect();
/// let many: Vec<&str> = many.iter().map(String::as_str).collect();
/// assert_eq!(check_tags(&many).unwrap_err().code(), "INVALID_TAG");
/// ```
pub fn check_tags(tags: &[&str]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len().min(MAX_TAGS));
    for &tag in tags {
        check_tag(tag)?;
        if out.iter().any(|t| t == tag) {
            continue;
        }
        if out.len() == MAX_TAGS {
            return Err(Error::InvalidTag(format!(
                "an entry carries at most {MAX_TAGS} tags, got more"
            )));
        }
        out.push(tag.to_owned());
    }
    Ok(out)
}

/// Whether an entry is valid: for every tag, the version it recorded is at
/// least the tag's current version (equal: written after the last
/// invalidation; lower: invalidated since). An entry without tags is
/// always valid.
///
/// ```
/// use edgecache::tags_valid;
/// let current = |t: &str| if t == "a" { 2 } else { 0 };
/// assert!(tags_valid([("a", 2), ("b", 0)], current));
/// assert!(!tags_valid([("a", 1), ("b", 0)], current));
/// assert!(tags_valid(std::iter::empty::<(&str, u64)>(), current));
/// ```
pub fn tags_valid<T>(
    recorded: impl IntoIterator<Item = (T, u64)>,
    mut current: impl FnMut(T) -> u64,
) -> bool {
    recorded.into_iter().all(|(tag, v)| v >= current(tag))
}

/// The versions of the tags of one keyspace (a cache's scope), in memory:
/// every tag starts at version 0 and [`invalidate`](Self::invalidate)
/// raises it by one. What an L1 alone (`MemoryCache`) needs; a shared tier
/// keeps the versions in Redis instead.
///
/// ```
/// use edgecache::TagVersions;
/// let mut t = TagVersions::new();
/// let written = t.record(&["a", "b"]);
/// assert!(t.valid(&written));
/// t.invalidate(&["a"]);
/// assert!(!t.valid(&written));
/// assert!(t.valid(&t.record(&["a", "b"])));
/// ```
#[derive(Clone, Debug, Default)]
pub struct TagVersions {
    versions: HashMap<String, u64>,
}

impl TagVersions {
    /// A table where every tag is at version 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current version of `tag` (0 if never invalidated).
    pub fn version(&self, tag: &str) -> u64 {
        self.versions.get(tag).copied().unwrap_or(0)
    }

    /// Raises the version of each tag by one (saturating at `u64::MAX`).
    pub fn invalidate<S: AsRef<str>>(&mut self, tags: &[S]) {
        for t in tags {
            let v = self.versions.entry_ref(t.as_ref()).or_insert(0);
            *v = v.saturating_add(1);
        }
    }

    /// What an entry written now with `tags` records: each tag with its
    /// current version.
    pub fn record<S: AsRef<str>>(&self, tags: &[S]) -> Vec<(String, u64)> {
        tags.iter()
            .map(|t| (t.as_ref().to_owned(), self.version(t.as_ref())))
            .collect()
    }

    /// Whether an entry that recorded `recorded` is valid now ([`tags_valid`]).
    pub fn valid<S: AsRef<str>>(&self, recorded: &[(S, u64)]) -> bool {
        tags_valid(recorded.iter().map(|(t, v)| (t.as_ref(), *v)), |t| {
            self.version(t)
        })
    }

    /// How many tags have been invalidated at least once.
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// Whether no tag has been invalidated.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        for ok in [
            "a",
            "product:7",
            "Zoë",
            "🦀",
            " spaced ",
            &"x".repeat(256),
            &"é".repeat(128),
        ] {
            assert!(check_tag(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            ",",
            "a,b",
            "\0",
            "a\tb",
            "\u{1f}",
            "\u{7f}",
            &"x".repeat(257),
            &"é".repeat(129),
        ] {
            let e = check_tag(bad).unwrap_err();
            assert_eq!(e.code(), "INVALID_TAG", "{bad:?}");
        }
        // U+0080 and beyond are not controls for this rule.
        assert!(check_tag("\u{80}\u{a0}").is_ok());
    }

    #[test]
    fn messages_name_the_tag_truncated_and_the_rule() {
        let long = "y".repeat(300);
        let m = check_tag(&long).unwrap_err().to_string();
        assert!(
            m.contains(&"y".repeat(40)) && !m.contains(&"y".repeat(41)),
            "{m}"
        );
        assert!(m.contains("256 bytes"), "{m}");
        let m = check_tag("a,b").unwrap_err().to_string();
        assert!(m.contains("\"a,b\"") && m.contains("comma"), "{m}");
    }

    #[test]
    fn lists_are_deduplicated_in_order_and_bounded() {
        assert_eq!(
            check_tags(&["x", "y", "x", "z", "y"]).unwrap(),
            ["x", "y", "z"]
        );
        let tags: Vec<String> = (0..64).map(|i| format!("t{i}")).collect();
        let mut refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        // 64 distinct tags, with duplicates: fine.
        refs.extend(["t0", "t63"]);
        assert_eq!(check_tags(&refs).unwrap().len(), 64);
        refs.push("t64");
        assert_eq!(check_tags(&refs).unwrap_err().code(), "INVALID_TAG");
        // A bad tag anywhere refuses the list.
        assert!(check_tags(&["ok", ""]).is_err());
    }
}
