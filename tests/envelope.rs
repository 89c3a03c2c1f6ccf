//! Integration tests of signed envelopes: the documented test vectors (format
//! version 2, version 3 with tags, and version 1 read under `accept_v1`), tampering (exhaustive
//! bit flips, proptest mutations), context, scope and key binding, rotation,
//! and a proptest smoke of the fuzz target.

use edgecache::{Context, Error, Kind, Payload, Scope, Signer, OVERHEAD};
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use sha2::Sha256;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding, written out here so the tests do not lean on
/// the crate's own codec.
fn b64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=c.len() {
            out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

fn unb64(s: &str) -> Vec<u8> {
    let v: Vec<u32> = s
        .bytes()
        .map(|c| B64.iter().position(|&x| x == c).unwrap() as u32)
        .collect();
    let mut out = Vec::new();
    for c in v.chunks(4) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &d)| n | d << (18 - 6 * i));
        for i in 0..c.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The context a vector is sealed in; `None` in a version 1 vector.
#[derive(Clone, Copy)]
enum Ctx {
    /// A signer on its own, in a namespace (`""`: the default).
    App(&'static str),
    /// A cache's values in its shared tier, under a prefix.
    Tier(&'static str),
}

impl Ctx {
    fn context(self) -> Context<'static> {
        match self {
            Ctx::App(ns) => Context::App(ns),
            Ctx::Tier(prefix) => Context::Tier {
                prefix,
                kind: Kind::Value,
            },
        }
    }
}

struct Vector {
    version: u8,
    context: Option<Ctx>,
    secret: Vec<u8>,
    key_id: &'static str,
    tenant: Option<&'static str>,
    user: Option<&'static str>,
    key: &'static str,
    json: Option<&'static str>,
    bytes: &'static [u8],
    expires_at: u64,
    /// Version 3: the tags and the versions they were written under.
    tags: &'static [(&'static str, u64)],
}

impl Vector {
    fn clone_shallow(&self) -> Vector {
        Vector {
            secret: self.secret.clone(),
            ..*self
        }
    }

    fn scope(&self) -> Option<Scope> {
        (self.tenant.is_some() || self.user.is_some())
            .then(|| Scope::new(self.tenant, self.user).unwrap())
    }

    fn payload(&self) -> Payload<'_> {
        match self.json {
            Some(j) => Payload::Json(j),
            None => Payload::Bytes(self.bytes),
        }
    }

    fn payload_bytes(&self) -> &[u8] {
        self.json.map_or(self.bytes, str::as_bytes)
    }

    /// The context a reader gives: a version 1 envelope opens in any.
    fn context(&self) -> Context<'static> {
        self.context.map_or(Context::DEFAULT, Ctx::context)
    }

    /// The envelope body and MAC input, built by hand from docs/ENVELOPE.md.
    fn body_and_mac_input(&self) -> (Vec<u8>, Vec<u8>) {
        let p = self.payload_bytes();
        let mut body = vec![self.version, self.key_id.len() as u8];
        body.extend_from_slice(self.key_id.as_bytes());
        body.extend_from_slice(&self.expires_at.to_be_bytes());
        body.push(if self.json.is_some() { 1 } else { 0 });
        // Version 3: tagCount, then per tag u16 length, bytes, u64 version.
        assert_eq!(self.version == 3, !self.tags.is_empty());
        if self.version == 3 {
            body.push(self.tags.len() as u8);
            for (tag, v) in self.tags {
                body.extend_from_slice(&(tag.len() as u16).to_be_bytes());
                body.extend_from_slice(tag.as_bytes());
                body.extend_from_slice(&v.to_be_bytes());
            }
        }
        body.extend_from_slice(&(p.len() as u32).to_be_bytes());
        body.extend_from_slice(p);
        let mut mac = b"edgecache/envelope\0".to_vec();
        mac.extend_from_slice(&body);
        let field = |mac: &mut Vec<u8>, b: &[u8]| {
            mac.extend_from_slice(&(b.len() as u64).to_be_bytes());
            mac.extend_from_slice(b);
        };
        // Version 2: the context field (marker, then the name).
        match self.context {
            None => assert_eq!(self.version, 1),
            Some(Ctx::App(ns)) => {
                mac.push(0x00);
                field(&mut mac, ns.as_bytes());
            }
            Some(Ctx::Tier(prefix)) => {
                mac.push(b'v');
                field(&mut mac, prefix.as_bytes());
            }
        }
        match self.scope() {
            None => mac.push(0),
            Some(s) => {
                mac.push(1);
                field(&mut mac, s.encode().as_bytes());
            }
        }
        field(&mut mac, self.key.as_bytes());
        (body, mac)
    }

    fn signer(&self) -> Signer {
        Signer::new(self.key_id, &self.secret).unwrap()
    }

    fn open(&self, signer: &Signer, sealed: &str) -> edgecache::Result<Option<edgecache::Opened>> {
        if self.version == 3 {
            signer.open_tagged_in(self.context(), self.scope().as_ref(), self.key, sealed, 1)
        } else {
            signer.open_in(self.context(), self.scope().as_ref(), self.key, sealed, 1)
        }
    }
}

fn vectors() -> Vec<Vector> {
    let s1: Vec<u8> = (0u8..32).collect();
    let s2: Vec<u8> = (0u8..32).map(|i| 0xA0 ^ i.wrapping_mul(37)).collect();
    let v =
        |version, context, secret: &Vec<u8>, key_id, tenant, user, key, json, bytes, expires_at| {
            Vector {
                version,
                context,
                secret: secret.clone(),
                key_id,
                tenant,
                user,
                key,
                json,
                bytes,
                expires_at,
                tags: &[],
            }
        };
    let tagged = |tags, v: Vector| Vector {
        version: 3,
        tags,
        ..v
    };
    let app = Some(Ctx::App(""));
    vec![
        // Version 2.
        v(
            2,
            app,
            &s1,
            "k1",
            None,
            None,
            "user:1",
            Some(r#"{"name":"Ada","n":1}"#),
            b"",
            0,
        ),
        v(
            2,
            Some(Ctx::Tier("app")),
            &s2,
            "k2",
            Some("acme"),
            Some("42"),
            "user:42",
            Some(r#""hello""#),
            b"",
            1_767_225_600_000,
        ),
        // One value, two caches sharing the secret: other tags.
        v(
            2,
            Some(Ctx::Tier("admin")),
            &s1,
            "k1",
            None,
            None,
            "flags",
            Some(r#"{"beta":true}"#),
            b"",
            0,
        ),
        v(
            2,
            Some(Ctx::Tier("shop")),
            &s1,
            "k1",
            None,
            None,
            "flags",
            Some(r#"{"beta":true}"#),
            b"",
            0,
        ),
        v(
            2,
            Some(Ctx::App("kv:sessions")),
            &s1,
            "k1",
            Some("acme"),
            None,
            "blob",
            None,
            &[0x00, 0x01, 0x02, 0xFF],
            1_700_000_000_000,
        ),
        v(
            2,
            app,
            &s1,
            "2026-01.main",
            None,
            Some("Zoë"),
            "ключ",
            Some("[1,2,3]"),
            b"",
            0,
        ),
        // Version 3: tagged entries.
        tagged(
            &[("product:7", 3), ("category:lights", 0)],
            v(
                3,
                Some(Ctx::Tier("app")),
                &s1,
                "k1",
                Some("acme"),
                None,
                "page:/lamps/7",
                Some(r#"{"title":"Lamp"}"#),
                b"",
                1_767_225_600_000,
            ),
        ),
        tagged(
            &[("user:Zoë", (1 << 53) - 1)],
            v(
                3,
                app,
                &s2,
                "k2",
                None,
                None,
                "avatar",
                None,
                &[0xCA, 0xFE],
                0,
            ),
        ),
        tagged(
            &[("a", 1), ("b", 2), ("c", 0)],
            v(
                3,
                Some(Ctx::Tier("shop")),
                &s1,
                "k1",
                Some("acme"),
                Some("42"),
                "cart",
                Some("[]"),
                b"",
                0,
            ),
        ),
        // Version 1 (read under accept_v1 only): no context.
        v(
            1,
            None,
            &s1,
            "k1",
            None,
            None,
            "user:1",
            Some(r#"{"name":"Ada","n":1}"#),
            b"",
            0,
        ),
        v(
            1,
            None,
            &s2,
            "k2",
            Some("acme"),
            Some("42"),
            "user:42",
            Some(r#""hello""#),
            b"",
            1_767_225_600_000,
        ),
        v(
            1,
            None,
            &s1,
            "k1",
            Some("acme"),
            None,
            "blob",
            None,
            &[0x00, 0x01, 0x02, 0xFF],
            1_700_000_000_000,
        ),
        v(
            1,
            None,
            &s1,
            "2026-01.main",
            None,
            Some("Zoë"),
            "ключ",
            Some("[1,2,3]"),
            b"",
            0,
        ),
    ]
}

fn vector_tag(v: &Vector) -> Vec<u8> {
    let (_, input) = v.body_and_mac_input();
    let mut mac = Hmac::<Sha256>::new_from_slice(&v.secret).unwrap();
    mac.update(&input);
    mac.finalize().into_bytes().to_vec()
}

/// The documented envelope of `v`: the body and tag built by hand.
fn vector_envelope(v: &Vector) -> String {
    let (mut body, _) = v.body_and_mac_input();
    body.extend_from_slice(&vector_tag(v));
    b64(&body)
}

#[test]
fn seal_matches_the_documented_layout_and_vectors() {
    let doc = include_str!("../docs/ENVELOPE.md");
    for v in vectors() {
        let envelope = vector_envelope(&v);
        let what = format!("v{} {}", v.version, v.key);
        assert!(
            doc.contains(&format!("\"envelope\": \"{envelope}\"")),
            "docs/ENVELOPE.md lacks the envelope of {what}"
        );
        assert!(
            doc.contains(&format!("\"tagHex\": \"{}\"", hex(&vector_tag(&v)))),
            "docs/ENVELOPE.md lacks the tag of {what}"
        );
        let mut signer = v.signer();
        if v.version >= 2 {
            let sealed = signer
                .seal_tagged_in(
                    v.context(),
                    v.scope().as_ref(),
                    v.key,
                    v.payload(),
                    v.expires_at,
                    v.tags,
                )
                .unwrap();
            assert_eq!(sealed, envelope, "layout of {what}");
        }
        if v.version == 2 {
            let sealed = signer
                .seal_in(
                    v.context(),
                    v.scope().as_ref(),
                    v.key,
                    v.payload(),
                    v.expires_at,
                )
                .unwrap();
            assert_eq!(sealed, envelope, "layout of {what}");
            // open_tagged opens version 2 too, without tags.
            let o = signer
                .open_tagged_in(v.context(), v.scope().as_ref(), v.key, &envelope, 1)
                .unwrap()
                .unwrap();
            assert!(o.tags().is_empty());
        } else if v.version == 3 {
            // Refused by what cannot check tags, as by an older reader.
            let e = signer
                .open_in(v.context(), v.scope().as_ref(), v.key, &envelope, 1)
                .unwrap_err();
            assert_eq!(e.code(), "MALFORMED_ENVELOPE", "{what}");
        } else {
            // Refused as outdated unless accepted; never written.
            assert_eq!(
                v.open(&signer, &envelope).unwrap_err(),
                Error::OutdatedEnvelope(1)
            );
            signer.set_accept_v1(true);
        }
        let opened = v.open(&signer, &envelope).unwrap().unwrap();
        assert_eq!(opened.payload(), v.payload_bytes());
        assert_eq!(opened.expires_at(), v.expires_at);
        let tags: Vec<(&str, u64)> = opened
            .tags()
            .iter()
            .map(|(t, n)| (t.as_str(), *n))
            .collect();
        assert_eq!(tags, v.tags, "{what}");
    }
    assert_eq!(vectors().iter().filter(|v| v.version == 3).count(), 3);
}

#[test]
fn tagged_vectors_bind_their_tags() {
    // Every tag and version is signed: stripping the tags (the same
    // payload as version 2 under the old tag), dropping one, changing a
    // version or a tag's bytes, none opens.
    for v in vectors().iter().filter(|v| v.version == 3) {
        let signer = v.signer();
        let envelope = vector_envelope(v);
        let raw = unb64(&envelope);
        let (body, _) = v.body_and_mac_input();
        let mac = &raw[body.len()..];
        let stripped = Vector {
            version: 2,
            tags: &[],
            ..v.clone_shallow()
        };
        let (mut b2, _) = stripped.body_and_mac_input();
        b2.extend_from_slice(mac);
        assert_eq!(
            signer
                .open_tagged_in(v.context(), v.scope().as_ref(), v.key, &b64(&b2), 1)
                .unwrap_err(),
            Error::BadSignature
        );
        // Each byte of the tag section altered: refused (bad signature, or
        // malformed where the lengths no longer add up).
        let section = 2 + v.key_id.len() + 8 + 1;
        let section_len: usize = 1 + v.tags.iter().map(|(t, _)| 2 + t.len() + 8).sum::<usize>();
        for i in section..section + section_len {
            for flip in [1u8, 0x80] {
                let mut b = raw.clone();
                b[i] ^= flip;
                assert!(
                    signer
                        .open_tagged_in(v.context(), v.scope().as_ref(), v.key, &b64(&b), 1)
                        .is_err(),
                    "byte {i} ^ {flip} of {}",
                    v.key
                );
            }
        }
    }
}

#[test]
fn vectors_are_bound_to_their_context() {
    // The tier's values under "admin" and "shop" differ only in the prefix.
    let vs = vectors();
    let (admin, shop) = (&vs[2], &vs[3]);
    assert_eq!(admin.payload_bytes(), shop.payload_bytes());
    let sealed = vector_envelope(admin);
    assert_ne!(sealed, vector_envelope(shop));
    let signer = admin.signer();
    assert_eq!(
        shop.open(&signer, &sealed).unwrap_err(),
        Error::BadSignature
    );
    // Every version 2 vector fails in every other context (and the default).
    for v in vs.iter().filter(|v| v.version >= 2) {
        let sealed = vector_envelope(v);
        for other in [
            Context::DEFAULT,
            Context::App("app"),
            Context::Tier {
                prefix: "app",
                kind: Kind::Value,
            },
            Context::Tier {
                prefix: "admin",
                kind: Kind::Counter,
            },
        ] {
            if other != v.context() {
                assert_eq!(
                    v.signer()
                        .open_tagged_in(other, v.scope().as_ref(), v.key, &sealed, 1)
                        .unwrap_err(),
                    Error::BadSignature,
                    "{} as {other:?}",
                    v.key
                );
            }
        }
    }
}

/// `cargo test --test envelope print_vectors -- --ignored --nocapture`
/// prints the vectors block of docs/ENVELOPE.md.
#[test]
#[ignore]
fn print_vectors() {
    let items: Vec<String> = vectors()
        .iter()
        .map(|v| {
            let scope = match v.scope() {
                None => "null".to_string(),
                Some(_) => {
                    let mut parts = vec![];
                    if let Some(t) = v.tenant {
                        parts.push(format!("\"tenant\": \"{t}\""));
                    }
                    if let Some(u) = v.user {
                        parts.push(format!("\"user\": \"{u}\""));
                    }
                    format!("{{ {} }}", parts.join(", "))
                }
            };
            let context = match v.context {
                None => "null".to_string(),
                Some(Ctx::App(ns)) => format!("{{ \"namespace\": \"{ns}\" }}"),
                Some(Ctx::Tier(prefix)) => format!("{{ \"prefix\": \"{prefix}\", \"kind\": \"v\" }}"),
            };
            let (_, input) = v.body_and_mac_input();
            let tags = if v.tags.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = v
                    .tags
                    .iter()
                    .map(|(t, n)| format!("[\"{t}\", {n}]"))
                    .collect();
                format!("\n    \"tags\": [{}],", list.join(", "))
            };
            let payload = match v.json {
                Some(j) => format!("\"json\": {:?}", j),
                None => format!("\"bytesHex\": \"{}\"", hex(v.bytes)),
            };
            format!(
                "  {{\n    \"version\": {},\n    \"context\": {},\n    \"secret\": \"{}\",\n    \"secretHex\": \"{}\",\n    \"keyId\": \"{}\",\n    \"scope\": {},\n    \"scopeEncoding\": {},\n    \"key\": \"{}\",\n    {},\n    \"expiresAt\": {},{}\n    \"macInputHex\": \"{}\",\n    \"tagHex\": \"{}\",\n    \"envelope\": \"{}\"\n  }}",
                v.version,
                context,
                b64(&v.secret),
                hex(&v.secret),
                v.key_id,
                scope,
                v.scope().map_or("null".into(), |s| format!("\"{}\"", s.encode())),
                v.key,
                payload,
                v.expires_at,
                tags,
                hex(&input),
                hex(&vector_tag(v)),
                vector_envelope(v)
            )
        })
        .collect();
    println!("[\n{}\n]", items.join(",\n"));
}

fn sample() -> (Signer, Scope, String) {
    let signer = Signer::new("k1", &(0u8..32).collect::<Vec<_>>()).unwrap();
    let scope = Scope::new(Some("t"), Some("u")).unwrap();
    let sealed = signer
        .seal(Some(&scope), "k", Payload::Json("[1]"), 0)
        .unwrap();
    (signer, scope, sealed)
}

#[test]
fn every_bit_flip_is_rejected() {
    let (signer, scope, sealed) = sample();
    let raw = unb64(&sealed);
    assert_eq!(raw.len(), OVERHEAD + 2 + 3);
    for i in 0..raw.len() * 8 {
        let mut b = raw.clone();
        b[i / 8] ^= 1 << (i % 8);
        assert!(
            signer.open(Some(&scope), "k", &b64(&b), 0).is_err(),
            "flip of bit {i} accepted"
        );
    }
    // Flips of the characters' own bits: each yields another (possibly
    // non-ASCII) string.
    let chars = sealed.as_bytes();
    for i in 0..chars.len() * 7 {
        let mut c = chars.to_vec();
        c[i / 7] ^= 1 << (i % 7);
        let s = String::from_utf8(c).unwrap();
        assert!(
            signer.open(Some(&scope), "k", &s, 0).is_err(),
            "char flip {i} accepted: {s}"
        );
    }
    assert!(signer
        .open(Some(&scope), "k", &sealed, 0)
        .unwrap()
        .is_some());
}

#[test]
fn other_keys_and_scopes_are_rejected() {
    let (signer, scope, sealed) = sample();
    let others = [
        None,
        Some(Scope::tenant("t").unwrap()),
        Some(Scope::user("u").unwrap()),
        Some(Scope::new(Some("t"), Some("v")).unwrap()),
        Some(Scope::new(Some("T"), Some("u")).unwrap()),
        Some(Scope::new(Some("u"), Some("t")).unwrap()),
    ];
    for o in &others {
        assert_eq!(
            signer.open(o.as_ref(), "k", &sealed, 0).unwrap_err(),
            Error::BadSignature,
            "{o:?}"
        );
    }
    for k in ["", "K", "k ", "kk"] {
        assert_eq!(
            signer.open(Some(&scope), k, &sealed, 0).unwrap_err(),
            Error::BadSignature
        );
    }
}

#[test]
fn root_and_scope_cannot_collide() {
    // A root key that spells a scope's encoding plus a key must not verify
    // as that scope and key, nor the other way round.
    let (signer, scope, _) = sample();
    let sealed = signer
        .seal(None, &(scope.encode() + "k"), Payload::Json("[1]"), 0)
        .unwrap();
    assert_eq!(
        signer.open(Some(&scope), "k", &sealed, 0).unwrap_err(),
        Error::BadSignature
    );
}

/// A context of a generated kind (0: a namespace, 1: a tier's values, 2: counters).
fn context_of(which: u8, name: &str) -> Context<'_> {
    match which {
        0 => Context::App(name),
        1 => Context::Tier {
            prefix: name,
            kind: Kind::Value,
        },
        _ => Context::Tier {
            prefix: name,
            kind: Kind::Counter,
        },
    }
}

fn mutate(raw: &[u8], op: u8, at: usize, byte: u8) -> Vec<u8> {
    let mut b = raw.to_vec();
    let at = at % (b.len() + 1);
    match op % 4 {
        0 if at < b.len() => b[at] ^= byte.max(1),
        0 | 1 => b.insert(at, byte),
        2 => b.truncate(at.min(b.len().saturating_sub(1))),
        _ => {
            if at < b.len() {
                b.remove(at);
            } else {
                b.pop();
            }
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The fuzz target's property on arbitrary text: open never panics.
    #[test]
    fn open_never_panics(text in any::<String>(), raw in proptest::collection::vec(any::<u8>(), 0..200)) {
        let (signer, scope, _) = sample();
        let _ = signer.open(Some(&scope), "k", &text, 0);
        let _ = signer.open(None, "k", &b64(&raw), 0);
        // Bytes behind a valid-looking header, of either version, with
        // and without accepting version 1.
        let (mut v1, _, _) = sample();
        v1.set_accept_v1(true);
        for version in [2, 3, 1] {
            let mut framed = vec![version, 2, b'k', b'1', 0, 0, 0, 0, 0, 0, 0, 0, 1];
            framed.extend_from_slice(&raw);
            let _ = signer.open(Some(&scope), "k", &b64(&framed), 0);
            let _ = signer.open_tagged(Some(&scope), "k", &b64(&framed), 0);
            let _ = v1.open(Some(&scope), "k", &b64(&framed), 0);
        }
        let _ = signer.open_tagged(Some(&scope), "k", &text, 0);
    }

    /// Random edits of a valid envelope (bit flips, inserted, removed and
    /// truncated bytes) never open.
    #[test]
    fn mutations_are_rejected(ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..4)) {
        let (signer, scope, sealed) = sample();
        let raw = unb64(&sealed);
        let mut b = raw.clone();
        for (op, at, byte) in ops {
            b = mutate(&b, op, at, byte);
        }
        prop_assume!(b != raw);
        prop_assert!(signer.open(Some(&scope), "k", &b64(&b), 0).is_err());
    }

    /// Any payload, key and scope round-trips, and only there.
    #[test]
    fn round_trip(payload in proptest::collection::vec(any::<u8>(), 0..300), key in ".{0,8}", tenant in "[a-z0-9]{1,4}", exp in 0u64..u64::MAX) {
        let (signer, _, _) = sample();
        let s = Scope::tenant(&tenant).unwrap();
        let sealed = signer.seal(Some(&s), &key, Payload::Bytes(&payload), exp).unwrap();
        let opened = signer.open(Some(&s), &key, &sealed, 0).unwrap().unwrap();
        prop_assert_eq!(opened.payload(), &payload[..]);
        prop_assert_eq!(opened.expires_at(), exp);
        prop_assert!(signer.open(None, &key, &sealed, 0).is_err());
    }

    /// Any valid tags round-trip through version 3 (in order, with their
    /// versions), and random edits of the tagged envelope never open.
    #[test]
    fn tagged_round_trip_and_mutations(
        tags in proptest::collection::btree_map("[a-z:|é0-9 ]{1,12}", any::<u64>(), 1..6),
        payload in proptest::collection::vec(any::<u8>(), 0..40),
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..4),
    ) {
        let (signer, scope, _) = sample();
        let tags: Vec<(&str, u64)> = tags.iter().map(|(t, v)| (t.as_str(), *v)).collect();
        let sealed = signer.seal_tagged(Some(&scope), "k", Payload::Bytes(&payload), 0, &tags).unwrap();
        let opened = signer.open_tagged(Some(&scope), "k", &sealed, 0).unwrap().unwrap();
        let back: Vec<(&str, u64)> = opened.tags().iter().map(|(t, v)| (t.as_str(), *v)).collect();
        prop_assert_eq!(back, tags);
        prop_assert_eq!(opened.payload(), &payload[..]);
        prop_assert!(signer.open(Some(&scope), "k", &sealed, 0).is_err());
        let raw = unb64(&sealed);
        let mut b = raw.clone();
        for (op, at, byte) in ops {
            b = mutate(&b, op, at, byte);
        }
        prop_assume!(b != raw);
        prop_assert!(signer.open_tagged(Some(&scope), "k", &b64(&b), 0).is_err());
    }

    /// Sealed in one context, an envelope opens in that context only: any
    /// namespace or prefix, either kind, against any other.
    #[test]
    fn contexts_are_bound(a in (0u8..3, "[a-z:|0-9]{0,4}"), b in (0u8..3, "[a-z:|0-9]{0,4}"), key in "[a-z:|0-9]{0,4}") {
        let (ca, cb) = (context_of(a.0, &a.1), context_of(b.0, &b.1));
        let (signer, scope, _) = sample();
        let sealed = signer.seal_in(ca, Some(&scope), &key, Payload::Json("1"), 0).unwrap();
        let opened = signer.open_in(cb, Some(&scope), &key, &sealed, 0);
        if ca == cb {
            prop_assert_eq!(opened.unwrap().unwrap().into_payload(), b"1".to_vec());
        } else {
            prop_assert_eq!(opened.unwrap_err(), Error::BadSignature);
        }
    }
}

#[test]
fn rotation() {
    let s1: Vec<u8> = (0u8..32).collect();
    let s2: Vec<u8> = (100u8..132).collect();
    let mut signer = Signer::new("k1", &s1).unwrap();
    let old = signer.seal(None, "k", Payload::Json("1"), 0).unwrap();
    signer.add_key("k2", &s2).unwrap();
    signer.set_current("k2").unwrap();
    let new = signer.seal(None, "k", Payload::Json("2"), 0).unwrap();
    assert_eq!(
        signer.open(None, "k", &old, 0).unwrap().unwrap().key_id(),
        "k1"
    );
    assert_eq!(
        signer.open(None, "k", &new, 0).unwrap().unwrap().key_id(),
        "k2"
    );
    // A reader that only knows k1 cannot open k2's envelopes.
    let reader = Signer::new("k1", &s1).unwrap();
    assert_eq!(
        reader.open(None, "k", &new, 0).unwrap_err(),
        Error::UnknownKeyId("k2".into())
    );
    signer.remove_key("k1").unwrap();
    assert_eq!(
        signer.open(None, "k", &old, 0).unwrap_err(),
        Error::UnknownKeyId("k1".into())
    );
    assert!(signer.open(None, "k", &new, 0).unwrap().is_some());
}
