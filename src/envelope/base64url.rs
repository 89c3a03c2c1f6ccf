//! Strict, unpadded base64url (RFC 4648 §5), the transport form of envelopes.
//!
//! Decoding is canonical: it refuses padding, characters outside the
//! alphabet, a length of `4k + 1`, and non-zero bits left over in the last
//! character. So every byte string has exactly one encoding and every
//! accepted string decodes to exactly one byte string: changing any
//! character of an envelope changes the bytes, and the tag catches it.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Marks a byte outside the alphabet in [`DECODE`].
const INVALID: u8 = 0xFF;

const DECODE: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// The length of the encoding of `n` bytes.
pub(crate) const fn encoded_len(n: usize) -> usize {
    n / 3 * 4 + [0, 2, 3][n % 3]
}

/// The number of bytes that `n` characters decode to, or `None` for a
/// length no encoding has (`4k + 1`). Pure arithmetic: no character is read.
pub(crate) const fn decoded_len(n: usize) -> Option<usize> {
    match n % 4 {
        1 => None,
        r => Some(n / 4 * 3 + [0, 0, 1, 2][r]),
    }
}

/// Encodes `bytes`.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = vec![0u8; encoded_len(bytes.len())];
    let full = bytes.len() / 3;
    // Writes into a pre-sized buffer through zipped exact chunks, so the
    // loop has no capacity or bounds checks.
    for (c, o) in bytes.chunks_exact(3).zip(out.chunks_exact_mut(4)) {
        let n = usize::from(c[0]) << 16 | usize::from(c[1]) << 8 | usize::from(c[2]);
        o.copy_from_slice(&[
            ALPHABET[n >> 18],
            ALPHABET[n >> 12 & 63],
            ALPHABET[n >> 6 & 63],
            ALPHABET[n & 63],
        ]);
    }
    let tail = &mut out[full * 4..];
    match bytes[full * 3..] {
        [a] => {
            tail.copy_from_slice(&[
                ALPHABET[usize::from(a >> 2)],
                ALPHABET[usize::from(a & 3) << 4],
            ]);
        }
        [a, b] => {
            let n = usize::from(a) << 10 | usize::from(b) << 2;
            tail.copy_from_slice(&[ALPHABET[n >> 12], ALPHABET[n >> 6 & 63], ALPHABET[n & 63]]);
        }
        _ => {}
    }
    // Every byte written comes from ALPHABET, which is ASCII.
    String::from_utf8(out).expect("base64url output is ASCII")
}

/// Decodes `text` strictly into `out` (appended), or `Err(())` if it is not
/// the canonical unpadded base64url encoding of some byte string.
pub(crate) fn decode_into(text: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
    let len = decoded_len(text.len()).ok_or(())?;
    let start = out.len();
    out.resize(start + len, 0);
    let dst = &mut out[start..];
    let full = text.len() / 4;
    // Invalid characters are collected in `bad` and checked once at the
    // end, keeping the loop free of early exits.
    let mut bad = 0u8;
    for (c, o) in text.chunks_exact(4).zip(dst.chunks_exact_mut(3)) {
        let (a, b, cc, d) = (
            DECODE[usize::from(c[0])],
            DECODE[usize::from(c[1])],
            DECODE[usize::from(c[2])],
            DECODE[usize::from(c[3])],
        );
        bad |= a | b | cc | d;
        let n = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(cc) << 6 | u32::from(d);
        o.copy_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    let tail = &mut dst[full * 3..];
    match text[full * 4..] {
        [] => {}
        [a, b] => {
            let (a, b) = (DECODE[usize::from(a)], DECODE[usize::from(b)]);
            bad |= a | b;
            // 12 bits carry one byte; the low 4 bits must be zero.
            bad |= u8::from(b & 0x0F != 0) << 7;
            tail[0] = a << 2 | b >> 4;
        }
        [a, b, c] => {
            let (a, b, c) = (
                DECODE[usize::from(a)],
                DECODE[usize::from(b)],
                DECODE[usize::from(c)],
            );
            bad |= a | b | c;
            // 18 bits carry two bytes; the low 2 bits must be zero.
            bad |= u8::from(c & 0x03 != 0) << 7;
            let n = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6;
            tail.copy_from_slice(&[(n >> 16) as u8, (n >> 8) as u8]);
        }
        _ => unreachable!("decoded_len refused a length of 4k + 1"),
    }
    // Valid sextets are below 64; INVALID (0xFF) and leftover bits set bit 7.
    if bad & 0x80 != 0 {
        out.truncate(start);
        return Err(());
    }
    Ok(())
}

/// Decodes `text` strictly.
pub(crate) fn decode(text: &[u8]) -> Result<Vec<u8>, ()> {
    let mut out = Vec::new();
    decode_into(text, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc4648_vectors() {
        // RFC 4648 §10, without padding.
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(raw.as_bytes()), enc);
            assert_eq!(decode(enc.as_bytes()).unwrap(), raw.as_bytes());
        }
        // The url-safe alphabet: 0xFB 0xFF is "-_8" (standard: "+/8").
        assert_eq!(encode(&[0xFB, 0xFF]), "-_8");
        assert_eq!(decode(b"-_8").unwrap(), [0xFB, 0xFF]);
    }

    #[test]
    fn refuses_non_canonical_input() {
        for bad in [
            "Zg==", "Zm8=", "Z", "Zm9vY", "Zh", "Zm9", "+/8A", "Zm 9", "Zm9v\n", "ÿÿÿÿ",
        ] {
            assert!(decode(bad.as_bytes()).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn lengths() {
        for n in 0..50 {
            let e = encode(&vec![0xA5; n]);
            assert_eq!(e.len(), encoded_len(n));
            assert_eq!(decoded_len(e.len()), Some(n));
        }
        assert_eq!(decoded_len(5), None);
    }

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(decode(encode(&bytes).as_bytes()).unwrap(), bytes);
        }

        #[test]
        fn decode_is_injective(text in "[A-Za-z0-9_=+/-]{0,12}") {
            // Whatever decodes re-encodes to itself: one encoding per value.
            if let Ok(bytes) = decode(text.as_bytes()) {
                prop_assert_eq!(encode(&bytes), text);
            }
        }
    }
}
