//! What an envelope's tag binds besides the envelope's own bytes: the
//! [`Context`] it was sealed for, its scope and its cache key
//! (`docs/ENVELOPE.md`, "The tag").
//!
//! None of them is stored in the envelope: a reader gives what it expects,
//! and the tag matches only if every one is what the writer gave. So a value
//! copied to another cache's prefix, another tenant or user, or another key
//! does not open, even when every cache shares one signing secret.
//!
//! Format version 2 writes, after the body: the context (a marker byte, then
//! its name, length-prefixed), the scope (a marker byte, then its encoding,
//! length-prefixed) and the key (length-prefixed). Every field is
//! self-delimiting, so the bytes determine the (context, scope, key) triple:
//! no two different triples feed the MAC the same bytes. The property test
//! below checks that on the bytes themselves, through the same [`Sink`] code
//! that feeds the MAC. Version 1 wrote the scope and key only; it is read
//! (and only read) under [`Signer::set_accept_v1`](super::Signer::set_accept_v1).

use crate::layout::{Kind, Layout};

/// What an envelope is for, besides its scope and key: bound by its tag,
/// never stored. A reader opens with the context the writer sealed with,
/// or the envelope is refused (`BAD_SIGNATURE`).
///
/// ```
/// use edgecache::{Context, Kind, Layout, Payload, Signer};
/// let signer = Signer::new("k1", &(1..=32).collect::<Vec<u8>>()).unwrap();
/// let (admin, shop) = (Layout::new("admin").unwrap(), Layout::new("shop").unwrap());
///
/// // One secret, two caches: a value of `admin` does not open as `shop`'s.
/// let sealed = signer
///     .seal_in(Context::tier(&admin, Kind::Value), None, "flags", Payload::Json("1"), 0)
///     .unwrap();
/// assert!(signer.open_in(Context::tier(&admin, Kind::Value), None, "flags", &sealed, 0).is_ok());
/// let e = signer.open_in(Context::tier(&shop, Kind::Value), None, "flags", &sealed, 0).unwrap_err();
/// assert_eq!(e.code(), "BAD_SIGNATURE");
/// // Nor as a value sealed by the signer on its own.
/// assert!(signer.open(None, "flags", &sealed, 0).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Context<'a> {
    /// A signer used on its own (values for KV, a cookie, a queue...), in
    /// a namespace of the application's choosing; [`Signer::seal`] and
    /// [`Signer::open`] use `App("")`, the default.
    ///
    /// [`Signer::seal`]: super::Signer::seal
    /// [`Signer::open`]: super::Signer::open
    App(&'a str),
    /// What a cache keeps in its shared tier (Redis) under `prefix`: its
    /// values are [`Kind::Value`]. The JS `TieredCache` and the Rust
    /// Workers binding seal and open with this.
    Tier {
        /// The cache's prefix ([`Layout::prefix`]).
        prefix: &'a str,
        /// What the Redis key holds.
        kind: Kind,
    },
}

impl Default for Context<'_> {
    fn default() -> Self {
        Context::DEFAULT
    }
}

impl<'a> Context<'a> {
    /// The context of a signer used on its own: `App("")`.
    pub const DEFAULT: Context<'static> = Context::App("");

    /// The context of what `layout`'s cache keeps under `kind`.
    pub fn tier(layout: &'a Layout, kind: Kind) -> Self {
        Context::Tier {
            prefix: layout.prefix(),
            kind,
        }
    }

    /// The marker byte: 0 for an application's namespace, else the key
    /// layout's character for the kind. Written out here rather than taken
    /// from `layout.rs`, so that the envelope format cannot change by an
    /// edit there; a unit test checks that the two agree.
    pub(super) fn marker(self) -> u8 {
        match self {
            Context::App(_) => 0x00,
            Context::Tier {
                kind: Kind::Value, ..
            } => b'v',
            Context::Tier {
                kind: Kind::Counter,
                ..
            } => b'n',
            // Nothing seals a tag's version (a plain integer); the marker
            // is ready should something be.
            Context::Tier {
                kind: Kind::Tag, ..
            } => b'g',
        }
    }

    /// The name: the namespace, or the prefix.
    pub(super) fn name(self) -> &'a str {
        match self {
            Context::App(name) => name,
            Context::Tier { prefix, .. } => prefix,
        }
    }
}

/// Where the bound fields go: the MAC, or (in tests) a byte vector.
pub(super) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for super::HmacSha256 {
    // One copy of the MAC's update for every field (a smaller wasm; the
    // call costs nothing next to SHA-256).
    #[inline(never)]
    fn put(&mut self, bytes: &[u8]) {
        hmac::Mac::update(self, bytes);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// `u64(len) || bytes`.
fn field(out: &mut impl Sink, bytes: &[u8]) {
    out.put(&(bytes.len() as u64).to_be_bytes());
    out.put(bytes);
}

/// The bound fields of format version 2: context, scope (`None`: the root
/// keyspace; else [`Scope::encode`](crate::Scope::encode)), key.
pub(super) fn bind(out: &mut impl Sink, context: Context<'_>, scope: Option<&str>, key: &str) {
    out.put(&[context.marker()]);
    field(out, context.name().as_bytes());
    bind_v1(out, scope, key);
}

/// The bound fields of format version 1: scope and key, no context.
pub(super) fn bind_v1(out: &mut impl Sink, scope: Option<&str>, key: &str) {
    match scope {
        None => out.put(&[0]),
        Some(enc) => {
            out.put(&[1]);
            field(out, enc.as_bytes());
        }
    }
    field(out, key.as_bytes());
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::Scope;

    fn bytes(context: Context<'_>, scope: Option<&Scope>, key: &str) -> Vec<u8> {
        let mut out = Vec::new();
        bind(&mut out, context, scope.map(Scope::encode).as_deref(), key);
        out
    }

    #[test]
    fn markers_are_the_layouts_kind_characters() {
        let l = Layout::new("p").unwrap();
        for kind in [Kind::Value, Kind::Counter, Kind::Tag] {
            let space = l.space(kind, None);
            assert_eq!(
                space.as_bytes()[2],
                Context::tier(&l, kind).marker(),
                "{space}"
            );
        }
        assert_eq!(Context::default(), Context::App(""));
    }

    #[test]
    fn the_documented_bytes() {
        let l = Layout::new("app").unwrap();
        let acme = Scope::tenant("acme").unwrap();
        // 'v', u64(3) "app", scope 0x01 u64(8) "t4:acme|", u64(1) "k".
        assert_eq!(
            bytes(Context::tier(&l, Kind::Value), Some(&acme), "k"),
            b"v\0\0\0\0\0\0\0\x03app\x01\0\0\0\0\0\0\0\x08t4:acme|\0\0\0\0\0\0\0\x01k"
        );
        // The default context: 0x00, u64(0); the root: 0x00.
        assert_eq!(
            bytes(Context::DEFAULT, None, ""),
            [0u8; 1 + 8 + 1 + 8].to_vec()
        );
    }

    #[test]
    fn near_misses_differ() {
        let (a, ab) = (Layout::new("a").unwrap(), Layout::new("ab").unwrap());
        let t = Scope::tenant("b").unwrap();
        let cases = [
            bytes(Context::tier(&a, Kind::Value), None, "k"),
            bytes(Context::tier(&ab, Kind::Value), None, "k"),
            bytes(Context::tier(&a, Kind::Counter), None, "k"),
            bytes(Context::App("a"), None, "k"),
            bytes(Context::App(""), None, "k"),
            bytes(Context::App("ab"), None, "k"),
            bytes(Context::tier(&a, Kind::Value), Some(&t), "k"),
            bytes(Context::tier(&a, Kind::Value), None, "bk"),
            bytes(Context::tier(&a, Kind::Value), None, "t1:b|k"),
            // A namespace spelled like the tier's fields.
            bytes(Context::App("v\0\0\0\0\0\0\0\x01a"), None, "k"),
        ];
        for (i, x) in cases.iter().enumerate() {
            for (j, y) in cases.iter().enumerate() {
                assert_eq!(x == y, i == j, "{i} and {j}");
            }
        }
    }

    /// A context from generated parts; prefixes need not be valid layout
    /// prefixes: the bytes are injective for any string.
    fn context(tier: Option<bool>, name: &str) -> Context<'_> {
        match tier {
            None => Context::App(name),
            Some(false) => Context::Tier {
                prefix: name,
                kind: Kind::Value,
            },
            Some(true) => Context::Tier {
                prefix: name,
                kind: Kind::Counter,
            },
        }
    }

    fn scope(tenant: &Option<String>, user: &Option<String>) -> Option<Scope> {
        Scope::new(tenant.as_deref(), user.as_deref()).ok()
    }

    /// Short strings over an alphabet rich in the encodings' own bytes
    /// (`:`, `|`, digits, the markers), so that collisions would be found
    /// if the encoding allowed them.
    fn part() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just('a'),
                Just('b'),
                Just('v'),
                Just('n'),
                Just('t'),
                Just('u'),
                Just(':'),
                Just('|'),
                Just('1'),
                Just('\0'),
                Just('\u{1}'),
            ],
            0..5,
        )
        .prop_map(|c| c.into_iter().collect())
    }

    fn triple(
    ) -> impl Strategy<Value = (Option<bool>, String, Option<String>, Option<String>, String)> {
        (
            proptest::option::of(any::<bool>()),
            part(),
            proptest::option::of(part()),
            proptest::option::of(part()),
            part(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// Equal bound bytes imply equal (context, scope, key) triples.
        #[test]
        fn bound_bytes_are_injective(a in triple(), b in triple()) {
            let (sa, sb) = (scope(&a.2, &a.3), scope(&b.2, &b.3));
            let (ca, cb) = (context(a.0, &a.1), context(b.0, &b.1));
            let same = ca == cb && sa == sb && a.4 == b.4;
            prop_assert_eq!(
                bytes(ca, sa.as_ref(), &a.4) == bytes(cb, sb.as_ref(), &b.4),
                same,
                "{:?} {:?} {:?} vs {:?} {:?} {:?}", ca, sa, a.4, cb, sb, b.4
            );
        }

        /// And the bytes decode back to the triple: the fields are
        /// self-delimiting, not merely distinct on the cases drawn.
        #[test]
        fn bound_bytes_decode(a in triple()) {
            let s = scope(&a.2, &a.3);
            let c = context(a.0, &a.1);
            let b = bytes(c, s.as_ref(), &a.4);
            let u64_at = |at: usize| u64::from_be_bytes(b[at..at + 8].try_into().unwrap()) as usize;
            prop_assert_eq!(b[0], c.marker());
            let n = u64_at(1);
            prop_assert_eq!(&b[9..9 + n], c.name().as_bytes());
            let mut at = 9 + n;
            match &s {
                None => { prop_assert_eq!(b[at], 0); at += 1; }
                Some(s) => {
                    prop_assert_eq!(b[at], 1);
                    let m = u64_at(at + 1);
                    let enc = s.encode();
                    prop_assert_eq!(&b[at + 9..at + 9 + m], enc.as_bytes());
                    at += 9 + m;
                }
            }
            let k = u64_at(at);
            prop_assert_eq!(&b[at + 8..], a.4.as_bytes());
            prop_assert_eq!(k, a.4.len());
        }
    }
}
