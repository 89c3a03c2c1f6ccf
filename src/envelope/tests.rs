//! Unit tests of the signer: round trips, expiry, binding of context, scope
//! and key, version 1 under `accept_v1`, header checks, malformed input,
//! key management.

use super::*;

fn secret(seed: u8) -> Vec<u8> {
    (0..32).map(|i| seed.wrapping_add(i * 7)).collect()
}

fn signer() -> Signer {
    Signer::new("k1", &secret(1)).unwrap()
}

#[test]
fn round_trips_both_encodings() {
    let s = signer();
    let e = s.seal(None, "a", Payload::Json("[1,2]"), 0).unwrap();
    let o = s.open(None, "a", &e, u64::MAX).unwrap().unwrap();
    assert_eq!(
        (o.encoding(), o.json().unwrap(), o.expires_at()),
        (Encoding::Json, "[1,2]", 0)
    );
    let e = s.seal(None, "a", Payload::Bytes(&[0, 255, 7]), 5).unwrap();
    let o = s.open(None, "a", &e, 4).unwrap().unwrap();
    assert_eq!(o.encoding(), Encoding::Bytes);
    assert!(o.json().is_err());
    assert_eq!(o.into_payload(), [0, 255, 7]);
    // Empty payloads too.
    let e = s.seal(None, "", Payload::Bytes(&[]), 0).unwrap();
    assert_eq!(s.open(None, "", &e, 0).unwrap().unwrap().payload(), b"");
}

#[test]
fn expiry_boundary() {
    let s = signer();
    let e = s.seal(None, "a", Payload::Json("1"), 1_000).unwrap();
    assert!(s.open(None, "a", &e, 999).unwrap().is_some());
    assert!(s.open(None, "a", &e, 1_000).unwrap().is_none());
    assert!(s.open(None, "a", &e, 1_001).unwrap().is_none());
    // Expired but altered is still an error, not a quiet miss.
    let mut b = base64url::decode(e.as_bytes()).unwrap();
    let last = b.len() - 1;
    b[last] ^= 1;
    let err = s
        .open(None, "a", &base64url::encode(&b), 5_000)
        .unwrap_err();
    assert_eq!(err, Error::BadSignature);
}

#[test]
fn binds_key_and_scope() {
    let s = signer();
    let t = Scope::tenant("acme").unwrap();
    let u = Scope::user("acme").unwrap();
    let tu = Scope::new(Some("acme"), Some("1")).unwrap();
    let scopes = [None, Some(&t), Some(&u), Some(&tu)];
    for (i, a) in scopes.iter().enumerate() {
        let e = s.seal(*a, "k", Payload::Json("1"), 0).unwrap();
        for (j, b) in scopes.iter().enumerate() {
            assert_eq!(
                s.open(*b, "k", &e, 0).is_ok(),
                i == j,
                "{a:?} opened as {b:?}"
            );
        }
        for other in ["j", "K", "k2", ""] {
            assert_eq!(s.open(*a, other, &e, 0).unwrap_err(), Error::BadSignature);
        }
    }
}

#[test]
fn binds_the_context() {
    let s = signer();
    let (a, b) = (
        crate::Layout::new("admin").unwrap(),
        crate::Layout::new("shop").unwrap(),
    );
    let contexts = [
        Context::DEFAULT,
        Context::App("admin"),
        Context::App("shop"),
        Context::tier(&a, crate::Kind::Value),
        Context::tier(&b, crate::Kind::Value),
        Context::tier(&a, crate::Kind::Counter),
    ];
    let t = Scope::tenant("acme").unwrap();
    for scope in [None, Some(&t)] {
        for (i, x) in contexts.iter().enumerate() {
            let e = s
                .seal_in(*x, scope, "flags", Payload::Json("1"), 0)
                .unwrap();
            for (j, y) in contexts.iter().enumerate() {
                let opened = s.open_in(*y, scope, "flags", &e, 0);
                match i == j {
                    true => assert_eq!(opened.unwrap().unwrap().json().unwrap(), "1"),
                    false => {
                        assert_eq!(opened.unwrap_err(), Error::BadSignature, "{x:?} as {y:?}")
                    }
                }
            }
        }
    }
    // seal and open are the default context.
    assert_eq!(
        s.seal(None, "k", Payload::Json("1"), 0).unwrap(),
        s.seal_in(Context::DEFAULT, None, "k", Payload::Json("1"), 0)
            .unwrap()
    );
}

/// A version 1 envelope, sealed as the format said: MAC input
/// `MAC_LABEL || body || scope || key`, no context.
fn seal_v1(secret: &[u8], kid: &str, scope: Option<&Scope>, key: &str, json: &str) -> String {
    let mut body = vec![VERSION_1, kid.len() as u8];
    body.extend_from_slice(kid.as_bytes());
    body.extend_from_slice(&0u64.to_be_bytes());
    body.push(Encoding::Json as u8);
    body.extend_from_slice(&(json.len() as u32).to_be_bytes());
    body.extend_from_slice(json.as_bytes());
    let mut input = MAC_LABEL.to_vec();
    input.extend_from_slice(&body);
    bind_v1(&mut input, scope.map(Scope::encode).as_deref(), key);
    let mut mac = HmacSha256::new_from_slice(secret).unwrap();
    mac.update(&input);
    body.extend_from_slice(&mac.finalize().into_bytes());
    base64url::encode(&body)
}

#[test]
fn version_1_is_refused_unless_accepted() {
    let mut s = signer();
    let t = Scope::tenant("acme").unwrap();
    let v1 = seal_v1(&secret(1), "k1", Some(&t), "k", "[1]");
    let tier = crate::Layout::new("shop").unwrap();
    let shop = Context::tier(&tier, crate::Kind::Value);
    assert!(!s.accepts_v1());
    for ctx in [Context::DEFAULT, shop] {
        assert_eq!(
            s.open_in(ctx, Some(&t), "k", &v1, 0).unwrap_err(),
            Error::OutdatedEnvelope(1)
        );
    }
    s.set_accept_v1(true);
    assert!(format!("{s:?}").contains("accept_v1: true"));
    // It opens in any context (what version 1 gives up), but still only
    // for its own scope and key, and not when altered.
    for ctx in [Context::DEFAULT, shop] {
        let o = s.open_in(ctx, Some(&t), "k", &v1, 0).unwrap().unwrap();
        assert_eq!((o.json().unwrap(), o.key_id()), ("[1]", "k1"));
    }
    assert_eq!(s.open(None, "k", &v1, 0).unwrap_err(), Error::BadSignature);
    assert_eq!(
        s.open(Some(&t), "j", &v1, 0).unwrap_err(),
        Error::BadSignature
    );
    let mut raw = base64url::decode(v1.as_bytes()).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    assert_eq!(
        s.open(Some(&t), "k", &base64url::encode(&raw), 0)
            .unwrap_err(),
        Error::BadSignature
    );
    // A version 2 envelope relabelled as version 1 does not verify as
    // one: the version byte is in the MAC input of both.
    let v2 = s
        .seal_in(shop, Some(&t), "k", Payload::Json("[1]"), 0)
        .unwrap();
    let mut raw = base64url::decode(v2.as_bytes()).unwrap();
    raw[0] = VERSION_1;
    assert_eq!(
        s.open_in(shop, Some(&t), "k", &base64url::encode(&raw), 0)
            .unwrap_err(),
        Error::BadSignature
    );
    // Sealing writes version 2 whatever the option.
    assert_eq!(
        base64url::decode(v2.as_bytes()).unwrap()[0],
        ENVELOPE_VERSION
    );
    s.set_accept_v1(false);
    assert_eq!(
        s.open(Some(&t), "k", &v1, 0).unwrap_err().code(),
        "OUTDATED_ENVELOPE"
    );
}

#[test]
fn header_checks_come_before_the_payload() {
    let mut s = signer();
    s.set_max_payload(1000).unwrap();
    let e = s.seal(None, "a", Payload::Bytes(&[9; 600]), 0).unwrap();
    // Garbage in the payload region: with an unknown key id the error is
    // about the key id, so the payload was never decoded.
    let other = Signer::new("zz", &secret(2)).unwrap();
    let mut garbled = e.clone().into_bytes();
    garbled[400] = b'!';
    let garbled = String::from_utf8(garbled).unwrap();
    assert_eq!(
        other.open(None, "a", &garbled, 0).unwrap_err(),
        Error::UnknownKeyId("k1".into())
    );
    assert_eq!(
        s.open(None, "a", &garbled, 0).unwrap_err().code(),
        "MALFORMED_ENVELOPE"
    );
    // Over the limit: refused from its length.
    s.set_max_payload(100).unwrap();
    assert_eq!(
        s.open(None, "a", &e, 0).unwrap_err().code(),
        "ENVELOPE_TOO_LARGE"
    );
}

#[test]
fn malformed_inputs() {
    let s = signer();
    let e = s.seal(None, "a", Payload::Json("\"hello\""), 0).unwrap();
    let raw = base64url::decode(e.as_bytes()).unwrap();
    let code = |bytes: &[u8]| {
        s.open(None, "a", &base64url::encode(bytes), 0)
            .unwrap_err()
            .code()
    };
    for cut in 0..raw.len() {
        assert_eq!(
            code(&raw[..cut]),
            "MALFORMED_ENVELOPE",
            "truncated to {cut}"
        );
    }
    let mut long = raw.clone();
    long.push(0);
    assert_eq!(code(&long), "MALFORMED_ENVELOPE");
    for version in [0, 3, 255] {
        let mut v = raw.clone();
        v[0] = version;
        assert_eq!(code(&v), "MALFORMED_ENVELOPE", "version {version}");
    }
    // Version 1 is known, and refused as such (its tag is not checked).
    let mut v = raw.clone();
    v[0] = 1;
    assert_eq!(code(&v), "OUTDATED_ENVELOPE");
    let mut enc = raw.clone();
    enc[2 + 2 + 8] = 7;
    assert_eq!(code(&enc), "MALFORMED_ENVELOPE");
    for bad in ["", "A", "!!!!", &(e.clone() + "="), &e[..e.len() - 1]] {
        assert_eq!(
            s.open(None, "a", bad, 0).unwrap_err().code(),
            "MALFORMED_ENVELOPE",
            "{bad:?}"
        );
    }
}

#[test]
fn key_management() {
    let mut s = signer();
    assert_eq!(
        s.add_key("k1", &secret(3)).unwrap_err().code(),
        "INVALID_OPTION"
    );
    assert_eq!(
        s.add_key("", &secret(3)).unwrap_err().code(),
        "INVALID_OPTION"
    );
    assert_eq!(
        s.add_key("a b", &secret(3)).unwrap_err().code(),
        "INVALID_OPTION"
    );
    assert_eq!(
        s.add_key(&"x".repeat(65), &secret(3)).unwrap_err().code(),
        "INVALID_OPTION"
    );
    assert_eq!(s.add_key("k2", &[1; 31]).unwrap_err().code(), "WEAK_KEY");
    s.add_key(&"x".repeat(64), &secret(3)).unwrap();
    assert_eq!(s.set_current("nope").unwrap_err().code(), "UNKNOWN_KEY_ID");
    assert_eq!(s.remove_key("k1").unwrap_err().code(), "INVALID_OPTION");
    assert!(!s.remove_key("nope").unwrap());
    s.set_current(&"x".repeat(64)).unwrap();
    let e = s.seal(None, "a", Payload::Json("1"), 0).unwrap();
    assert!(s.remove_key("k1").unwrap());
    assert_eq!(s.current_key_id(), "x".repeat(64));
    assert_eq!(
        s.open(None, "a", &e, 0).unwrap().unwrap().key_id(),
        "x".repeat(64)
    );
    assert!(!format!("{s:?}").contains("mac"));
    assert_eq!(s.set_max_payload(0).unwrap_err().code(), "INVALID_OPTION");
}

#[test]
fn same_id_other_secret_is_a_bad_signature() {
    let a = Signer::new("k1", &secret(1)).unwrap();
    let b = Signer::new("k1", &secret(2)).unwrap();
    let e = a.seal(None, "a", Payload::Json("1"), 0).unwrap();
    assert_eq!(b.open(None, "a", &e, 0).unwrap_err(), Error::BadSignature);
}

// ---- format version 3: tagged entries ----

fn tags_section(tags: &[(&str, u64)]) -> Vec<u8> {
    let mut out = vec![tags.len() as u8];
    for (t, v) in tags {
        out.extend_from_slice(&(t.len() as u16).to_be_bytes());
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

/// A version 3 envelope with any tag section (even one the rule refuses),
/// correctly signed, as a writer that broke the rule would make it.
fn seal_raw_v3(s: &Signer, key: &str, section: &[u8], payload: &[u8]) -> String {
    let k = &s.keys[s.current];
    let mut buf = vec![ENVELOPE_VERSION_TAGGED, k.id.len() as u8];
    buf.extend_from_slice(k.id.as_bytes());
    buf.extend_from_slice(&0u64.to_be_bytes());
    buf.push(Encoding::Json as u8);
    buf.extend_from_slice(section);
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(payload);
    let mut mac = k.mac.clone();
    mac.update(&buf);
    bind(&mut mac, Context::DEFAULT, None, key);
    buf.extend_from_slice(&mac.finalize().into_bytes());
    base64url::encode(&buf)
}

#[test]
fn tagged_round_trip_keeps_tags_in_order() {
    let s = signer();
    let t = Scope::tenant("acme").unwrap();
    let tags = [("b", 7), ("a", 0), ("Zoë", u64::MAX)];
    let e = s
        .seal_tagged_in(
            Context::DEFAULT,
            Some(&t),
            "k",
            Payload::Json("[1]"),
            9,
            &tags,
        )
        .unwrap();
    let raw = base64url::decode(e.as_bytes()).unwrap();
    assert_eq!(raw[0], ENVELOPE_VERSION_TAGGED);
    let o = s.open_tagged(Some(&t), "k", &e, 8).unwrap().unwrap();
    let got: Vec<(&str, u64)> = o.tags().iter().map(|(t, v)| (t.as_str(), *v)).collect();
    assert_eq!(got, tags);
    assert_eq!((o.json().unwrap(), o.expires_at()), ("[1]", 9));
    // Expired: nothing, as for version 2.
    assert!(s.open_tagged(Some(&t), "k", &e, 9).unwrap().is_none());
    // Bound like version 2: another scope or key does not open it.
    assert_eq!(
        s.open_tagged(None, "k", &e, 0).unwrap_err(),
        Error::BadSignature
    );
    assert_eq!(
        s.open_tagged(Some(&t), "j", &e, 0).unwrap_err(),
        Error::BadSignature
    );
    // open (which cannot check tags) refuses it before any hashing.
    let other = Signer::new("zz", &secret(2)).unwrap();
    assert_eq!(
        other.open(Some(&t), "k", &e, 0).unwrap_err().code(),
        "MALFORMED_ENVELOPE"
    );
}

#[test]
fn untagged_stays_version_2_byte_for_byte() {
    let s = signer();
    for p in [Payload::Json("{}"), Payload::Bytes(&[1, 2])] {
        let v2 = s.seal(None, "k", p, 5).unwrap();
        assert_eq!(s.seal_tagged(None, "k", p, 5, &[]).unwrap(), v2);
        assert_eq!(base64url::decode(v2.as_bytes()).unwrap()[0], 2);
        assert!(s
            .open_tagged(None, "k", &v2, 0)
            .unwrap()
            .unwrap()
            .tags()
            .is_empty());
    }
}

#[test]
fn sealing_refuses_bad_tags() {
    let s = signer();
    let seal = |tags: &[(&str, u64)]| s.seal_tagged(None, "k", Payload::Json("1"), 0, tags);
    for bad in [
        &[("", 0)][..],
        &[("a,b", 0)],
        &[("a\n", 0)],
        &[("a", 0), ("a", 1)],
        &[("a", 0), ("a", 0)],
    ] {
        assert_eq!(seal(bad).unwrap_err().code(), "INVALID_TAG", "{bad:?}");
    }
    let long = "x".repeat(257);
    assert_eq!(seal(&[(&long, 0)]).unwrap_err().code(), "INVALID_TAG");
    let names: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
    let many: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 1)).collect();
    assert_eq!(seal(&many).unwrap_err().code(), "INVALID_TAG");
    // The most there may be: 64 tags of 256 bytes, with the largest
    // payload, opens (the length limit counts the tag section).
    let mut s = signer();
    s.set_max_payload(1000).unwrap();
    let names: Vec<String> = (0..64).map(|i| format!("{i:0>256}")).collect();
    let most: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), u64::MAX)).collect();
    let e = s
        .seal_tagged(None, "k", Payload::Bytes(&[7; 1000]), 0, &most)
        .unwrap();
    assert!(e.len() <= s.max_envelope_len());
    assert_eq!(
        s.open_tagged(None, "k", &e, 0)
            .unwrap()
            .unwrap()
            .tags()
            .len(),
        64
    );
}

#[test]
fn malformed_tag_sections_are_refused() {
    let s = signer();
    let code = |e: &str| s.open_tagged(None, "k", e, 0).unwrap_err().code();
    let bad_sections: Vec<Vec<u8>> = vec![
        // no tags: version 3 needs at least one
        vec![0],
        // 65 tags
        {
            let names: Vec<String> = (0..65).map(|i| i.to_string()).collect();
            let t: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 0)).collect();
            tags_section(&t)
        },
        tags_section(&[("", 0)]),
        tags_section(&[("a,b", 0)]),
        tags_section(&[("a\u{7f}", 0)]),
        tags_section(&[("a", 0), ("a", 1)]),
        {
            let long = "x".repeat(257);
            tags_section(&[(&long, 0)])
        },
        // not UTF-8
        vec![1, 0, 1, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0],
    ];
    for section in bad_sections {
        // Signed correctly: refused for its tags, not its signature.
        let e = seal_raw_v3(&s, "k", &section, b"1");
        assert_eq!(code(&e), "MALFORMED_ENVELOPE", "{section:?}");
    }
    // Every truncation of a good one.
    let good = s
        .seal_tagged(None, "k", Payload::Json("1"), 0, &[("ab", 1), ("c", 2)])
        .unwrap();
    let raw = base64url::decode(good.as_bytes()).unwrap();
    for cut in 0..raw.len() {
        assert_eq!(
            code(&base64url::encode(&raw[..cut])),
            "MALFORMED_ENVELOPE",
            "cut at {cut}"
        );
    }
    let mut long = raw.clone();
    long.push(0);
    assert_eq!(code(&base64url::encode(&long)), "MALFORMED_ENVELOPE");
    // A version 2 envelope relabelled 3 (its payload length read as a
    // tag count of 0), and the other way round: refused.
    let v2 =
        base64url::decode(s.seal(None, "k", Payload::Json("1"), 0).unwrap().as_bytes()).unwrap();
    let mut as3 = v2.clone();
    as3[0] = 3;
    assert_eq!(code(&base64url::encode(&as3)), "MALFORMED_ENVELOPE");
    let mut as2 = raw.clone();
    as2[0] = 2;
    assert!(s
        .open_tagged(None, "k", &base64url::encode(&as2), 0)
        .is_err());
}

#[test]
fn tagged_header_checks_come_before_the_payload() {
    let mut s = signer();
    s.set_max_payload(1000).unwrap();
    let e = s
        .seal_tagged(None, "a", Payload::Bytes(&[9; 600]), 0, &[("t", 1)])
        .unwrap();
    let other = Signer::new("zz", &secret(2)).unwrap();
    let mut garbled = e.clone().into_bytes();
    garbled[500] = b'!';
    let garbled = String::from_utf8(garbled).unwrap();
    assert_eq!(
        other.open_tagged(None, "a", &garbled, 0).unwrap_err(),
        Error::UnknownKeyId("k1".into())
    );
    s.set_max_payload(100).unwrap();
    assert_eq!(
        s.open_tagged(None, "a", &e, 0).unwrap_err().code(),
        "ENVELOPE_TOO_LARGE"
    );
}
