//! Redis-style glob patterns, with exactly the semantics of `KEYS`.
//!
//! This is a port of Redis's `stringmatchlen` (util.c): it matches bytes (a
//! key's UTF-8 encoding), so `?` matches one byte, as in Redis. Supported:
//!
//! | pattern | matches |
//! |---|---|
//! | `*` | any run of bytes, including none |
//! | `?` | exactly one byte |
//! | `[abc]` | one of the listed bytes |
//! | `[^a]` | any byte but the listed ones |
//! | `[a-z]` | a byte in the range (either order: `[z-a]` is the same; bounds compare as signed C `char`s, as in Redis) |
//! | `\x` | the byte `x` itself, also inside `[...]` |
//!
//! An unterminated `[` class runs to the end of the pattern, and a trailing
//! `\` matches a literal `\`, both as in Redis. `tests/glob_redis.rs` checks
//! this module against a real `redis-server` on random patterns.

/// A compiled pattern. Compiling only copies the bytes; [`Glob::matches`]
/// does the work.
///
/// ```
/// use edgecache::Glob;
/// let g = Glob::new("user:[0-9]*:profile");
/// assert!(g.matches("user:42:profile"));
/// assert!(!g.matches("user:x:profile"));
/// assert!(Glob::new(r"a\*b").matches("a*b"));
/// assert!(!Glob::new(r"a\*b").matches("axb"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    pattern: Box<[u8]>,
    match_all: bool,
}

impl Glob {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Self {
        let pattern: Box<[u8]> = pattern.as_bytes().into();
        // Redis's KEYS special-cases exactly "*" (its matcher alone would
        // not match the empty key); "**" goes through the matcher.
        let match_all = &*pattern == b"*";
        Glob { pattern, match_all }
    }

    /// Compiles a pattern given as bytes. The JS package passes the WTF-8
    /// form of a string with lone surrogates here, so that such a pattern
    /// matches exactly the keys it names (UTF-8 would turn every lone
    /// surrogate into U+FFFD, and `id:\u{D800}` would also match `id:\u{DFFF}`).
    ///
    /// ```
    /// use edgecache::Glob;
    /// // WTF-8 of "id:" + U+D800 (a lone surrogate) and of "id:" + U+DFFF.
    /// let d800 = b"id:\xED\xA0\x80";
    /// let dfff = b"id:\xED\xBF\xBF";
    /// assert!(Glob::from_bytes(d800).matches_bytes(d800));
    /// assert!(!Glob::from_bytes(d800).matches_bytes(dfff));
    /// assert!(!Glob::from_bytes(d800).matches("id:\u{FFFD}"));
    /// ```
    pub fn from_bytes(pattern: &[u8]) -> Self {
        let pattern: Box<[u8]> = pattern.into();
        let match_all = &*pattern == b"*";
        Glob { pattern, match_all }
    }

    /// Whether a key given as bytes matches (see [`Glob::from_bytes`]).
    pub fn matches_bytes(&self, key: &[u8]) -> bool {
        self.match_all || glob_match(&self.pattern, key)
    }

    /// Whether the pattern is `*`, which matches every key.
    pub fn matches_all(&self) -> bool {
        self.match_all
    }

    /// Whether `key` matches.
    pub fn matches(&self, key: &str) -> bool {
        self.match_all || glob_match(&self.pattern, key.as_bytes())
    }
}

/// Whether `string` matches `pattern`, byte for byte as Redis does.
///
/// ```
/// assert!(edgecache::glob_match(b"h[^e]llo", b"hallo"));
/// assert!(!edgecache::glob_match(b"h[^e]llo", b"hello"));
/// ```
pub fn glob_match(pattern: &[u8], string: &[u8]) -> bool {
    let mut skip_longer = false;
    matchlen(pattern, string, &mut skip_longer, 0)
}

/// Byte at `i`, or 0 past the end (Redis reads the NUL terminator there).
#[inline]
fn at(p: &[u8], i: usize) -> u8 {
    p.get(i).copied().unwrap_or(0)
}

fn matchlen(pat: &[u8], s: &[u8], skip_longer: &mut bool, nesting: u32) -> bool {
    // Protection against abusive patterns, as in Redis.
    if nesting > 1000 {
        return false;
    }
    let (mut p, mut si) = (0usize, 0usize);
    while p < pat.len() && si < s.len() {
        match pat[p] {
            b'*' => {
                while p + 1 < pat.len() && pat[p + 1] == b'*' {
                    p += 1;
                }
                if p + 1 == pat.len() {
                    return true;
                }
                while si < s.len() {
                    if matchlen(&pat[p + 1..], &s[si..], skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    si += 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => si += 1,
            b'[' => {
                p += 1;
                let not = at(pat, p) == b'^';
                if not {
                    p += 1;
                }
                let mut matched = false;
                let c = s[si];
                loop {
                    let left = pat.len().saturating_sub(p);
                    if at(pat, p) == b'\\' && left >= 2 {
                        p += 1;
                        if pat[p] == c {
                            matched = true;
                        }
                    } else if at(pat, p) == b']' {
                        break;
                    } else if left == 0 {
                        // Unterminated class: step back so the shared
                        // `p += 1` below lands on the end again.
                        p -= 1;
                        break;
                    } else if left >= 3 && pat[p + 1] == b'-' {
                        // Redis compares range bounds as C `char`, which is
                        // signed on the platforms it runs on: bytes >= 0x80
                        // sort below ASCII ("[b-\xc3]" spans 0xc3..=b'b').
                        let (mut lo, mut hi) = (pat[p] as i8, pat[p + 2] as i8);
                        if lo > hi {
                            core::mem::swap(&mut lo, &mut hi);
                        }
                        p += 2;
                        if (lo..=hi).contains(&(c as i8)) {
                            matched = true;
                        }
                    } else if pat[p] == c {
                        matched = true;
                    }
                    p += 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                si += 1;
            }
            b'\\' => {
                if pat.len() - p >= 2 {
                    p += 1;
                }
                if pat[p] != s[si] {
                    return false;
                }
                si += 1;
            }
            b => {
                if b != s[si] {
                    return false;
                }
                si += 1;
            }
        }
        p += 1;
        if si == s.len() {
            while at(pat, p) == b'*' {
                p += 1;
            }
            break;
        }
    }
    p >= pat.len() && si == s.len()
}

#[cfg(test)]
mod tests {
    use super::glob_match as m;

    #[test]
    fn redis_documented_examples() {
        for k in ["hello", "hallo", "hxllo"] {
            assert!(m(b"h?llo", k.as_bytes()));
        }
        for k in ["hllo", "heeeello"] {
            assert!(m(b"h*llo", k.as_bytes()));
        }
        assert!(m(b"h[ae]llo", b"hello") && m(b"h[ae]llo", b"hallo"));
        assert!(!m(b"h[ae]llo", b"hillo"));
        assert!(m(b"h[^e]llo", b"hallo") && !m(b"h[^e]llo", b"hello"));
        assert!(m(b"h[a-b]llo", b"hallo") && m(b"h[a-b]llo", b"hbllo"));
        assert!(!m(b"h[a-b]llo", b"hcllo"));
    }

    #[test]
    fn edges() {
        assert!(m(b"", b""));
        assert!(!m(b"", b"a"));
        assert!(!m(b"*", b""), "the matcher itself, as in Redis");
        assert!(super::Glob::new("*").matches(""), "KEYS * special case");
        assert!(!super::Glob::new("**").matches(""));
        assert!(m(b"a*", b"a"));
        assert!(!m(b"?", b""));
        assert!(m(b"[z-a]", b"m"), "reversed range");
        assert!(
            m("[b-é]".as_bytes(), b"a"),
            "signed char range, found against redis-server"
        );
        assert!(m(b"[\\]]", b"]"), "escaped bracket in class");
        assert!(m(b"a\\", b"a\\"), "trailing backslash is literal");
        assert!(m(b"[abc", b"c"), "unterminated class");
        assert!(!m(b"[abc", b"cx"));
        assert!(m(b"*a*b*c*", b"xxaxxbxxc"));
        assert!(!m(b"*a*b*c*d", b"xxaxxbxxc"));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let pat = b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let s = [b'a'; 4000];
        assert!(!m(pat, &s));
    }
}
