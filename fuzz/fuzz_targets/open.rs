//! `Signer::open_in` on arbitrary input never panics, and whatever opens is
//! exactly the envelope that `seal_in` writes for the same contents (one
//! valid form per value). A reader that accepts format version 1 opens
//! exactly that, plus what the strict reader refuses as outdated.
//!
//! Input: one control byte, then the envelope. The control byte picks the
//! (context, scope, key) the reader expects (those of the test vectors of
//! docs/ENVELOPE.md); with its high bit set the rest is raw envelope bytes,
//! base64url-encoded here first, so the fuzzer reaches the header and tag
//! checks without having to learn base64url.
//!
//!     cargo +nightly fuzz run open fuzz/corpus/open fuzz/seeds/open -- -max_total_time=600
#![no_main]

use std::sync::OnceLock;

use edgecache::{Context, Encoding, Error, Kind, Payload, Scope, Signer};
use libfuzzer_sys::fuzz_target;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() / 3 * 4 + 4);
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

struct Setup {
    signer: Signer,
    /// The same keys, also accepting format version 1.
    accepting_v1: Signer,
    secrets: Vec<(&'static str, Vec<u8>)>,
    readers: Vec<(Context<'static>, Option<Scope>, &'static str)>,
}

const fn tier(prefix: &'static str) -> Context<'static> {
    Context::Tier {
        prefix,
        kind: Kind::Value,
    }
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        // The keys of the test vectors in docs/ENVELOPE.md (the seeds).
        let s1: Vec<u8> = (0u8..32).collect();
        let s2: Vec<u8> = (0u8..32).map(|i| 0xA0 ^ i.wrapping_mul(37)).collect();
        let secrets = vec![("k1", s1.clone()), ("k2", s2), ("2026-01.main", s1)];
        let make = |accept_v1| {
            let mut signer = Signer::new(secrets[0].0, &secrets[0].1).unwrap();
            for (id, secret) in &secrets[1..] {
                signer.add_key(id, secret).unwrap();
            }
            signer.set_max_payload(4096).unwrap();
            signer.set_accept_v1(accept_v1);
            signer
        };
        let both = || Some(Scope::new(Some("acme"), Some("42")).unwrap());
        let acme = || Some(Scope::tenant("acme").unwrap());
        let readers = vec![
            (Context::DEFAULT, None, "user:1"),
            (tier("app"), both(), "user:42"),
            (tier("admin"), None, "flags"),
            (tier("shop"), None, "flags"),
            (Context::App("kv:sessions"), acme(), "blob"),
            (Context::DEFAULT, Some(Scope::user("Zoë").unwrap()), "ключ"),
            // The version 1 vectors' (scope, key).
            (Context::DEFAULT, both(), "user:42"),
            (Context::DEFAULT, acme(), "blob"),
        ];
        Setup {
            signer: make(false),
            accepting_v1: make(true),
            secrets,
            readers,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let s = setup();
    let (context, scope, key) = &s.readers[usize::from(control & 0x7F) % s.readers.len()];
    let text = if control & 0x80 != 0 {
        b64(rest)
    } else {
        String::from_utf8_lossy(rest).into_owned()
    };
    let strict = s.signer.open_in(*context, scope.as_ref(), key, &text, 0);
    let lenient = s
        .accepting_v1
        .open_in(*context, scope.as_ref(), key, &text, 0);
    match &strict {
        Err(Error::OutdatedEnvelope(1)) => {}
        _ => assert_eq!(strict, lenient, "accept_v1 changed a verdict on version 2"),
    }
    if let Ok(Some(opened)) = strict {
        // Sealing the same contents with the same key gives the same string.
        let payload = match opened.encoding() {
            Encoding::Json => {
                Payload::Json(opened.json().expect("JSON payloads are sealed from &str"))
            }
            Encoding::Bytes => Payload::Bytes(opened.payload()),
        };
        let secret = &s
            .secrets
            .iter()
            .find(|(id, _)| *id == opened.key_id())
            .unwrap()
            .1;
        let mut sealer = Signer::new(opened.key_id(), secret).unwrap();
        sealer.set_max_payload(4096).unwrap();
        let resealed = sealer
            .seal_in(*context, scope.as_ref(), key, payload, opened.expires_at())
            .unwrap();
        assert_eq!(
            resealed, text,
            "an envelope opened that seal would not write"
        );
    }
});
