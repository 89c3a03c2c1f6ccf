//! Signing secrets: generating them and reading them from text.
//!
//! A secret is at least [`MIN_SECRET_BYTES`] random bytes. As text (an
//! environment variable, a `wrangler secret`) it is base64url without
//! padding, as [`generate_secure_key`] writes it; standard base64 and `=`
//! padding are accepted too, so `openssl rand -base64 32` works.

use crate::envelope::base64url;
use crate::error::{Error, Result};

/// The fewest secret bytes a [`Signer`](crate::Signer) accepts, and the
/// number [`generate_secure_key`] draws: HMAC-SHA256's full strength.
pub const MIN_SECRET_BYTES: usize = 32;

/// The most secret bytes accepted (HMAC hashes longer keys down anyway).
pub const MAX_SECRET_BYTES: usize = 1024;

/// The fewest bits of entropy [`estimated_entropy_bits`] must find in a
/// secret. 32 random bytes score about 150 (the estimate of 32 samples
/// cannot exceed 160), and not one of millions of random secrets scored
/// below 130; a byte repeated scores 0, a short pattern repeated a few.
pub const MIN_ESTIMATED_BITS: f64 = 96.0;

/// A new secret: [`MIN_SECRET_BYTES`] bytes from the platform's secure
/// random source (`crypto.getRandomValues` in wasm), as 43 characters of
/// base64url.
///
/// ```
/// let key = edgecache::generate_secure_key().unwrap();
/// assert_eq!(key.len(), 43);
/// assert_eq!(edgecache::decode_secret(&key).unwrap().len(), 32);
/// assert_ne!(key, edgecache::generate_secure_key().unwrap());
/// ```
pub fn generate_secure_key() -> Result<String> {
    let mut bytes = [0u8; MIN_SECRET_BYTES];
    // A draw that `check_secret` would refuse is astronomically unlikely;
    // drawing again keeps the promise that a generated key is accepted.
    loop {
        getrandom::getrandom(&mut bytes).map_err(|e| Error::RandomUnavailable(e.to_string()))?;
        if check_secret(&bytes).is_ok() {
            return Ok(base64url::encode(&bytes));
        }
    }
}

/// A rough estimate, in bits, of the entropy of a secret, to refuse the
/// obviously weak: the length of its shortest period (a secret that repeats
/// a pattern holds no more than the pattern) times the Shannon entropy of
/// its byte histogram. It cannot prove a secret strong (a counter, or a
/// password encoded as bytes, can score well); it catches a byte repeated,
/// a short pattern repeated, and secrets made of a few distinct bytes.
///
/// ```
/// use edgecache::estimated_entropy_bits;
/// assert_eq!(estimated_entropy_bits(&[7; 32]), 0.0);
/// assert_eq!(estimated_entropy_bits(&[0, 1].repeat(16)), 2.0); // period 2, 1 bit a byte
/// assert_eq!(estimated_entropy_bits(&(0u8..32).collect::<Vec<_>>()), 160.0);
/// ```
pub fn estimated_entropy_bits(secret: &[u8]) -> f64 {
    let n = secret.len();
    if n == 0 {
        return 0.0;
    }
    let period = (1..n)
        .find(|&p| secret[p..].iter().zip(secret).all(|(a, b)| a == b))
        .unwrap_or(n);
    let mut counts = [0u32; 256];
    for &b in secret {
        counts[b as usize] += 1;
    }
    let bits_per_byte: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n as f64;
            -p * p.log2()
        })
        .sum();
    period as f64 * bits_per_byte
}

/// Reads a secret written as base64url or base64 (padding optional) and
/// checks its strength with [`check_secret`].
///
/// ```
/// use edgecache::decode_secret;
/// let s = decode_secret("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").unwrap();
/// assert_eq!(s, (0u8..32).collect::<Vec<_>>());
/// assert_eq!(decode_secret("hunter2").unwrap_err().code(), "WEAK_KEY");
/// ```
pub fn decode_secret(text: &str) -> Result<Vec<u8>> {
    let unpadded = text.trim_end_matches('=');
    if unpadded.len() < base64url::encoded_len(MIN_SECRET_BYTES) {
        return Err(Error::WeakKey(format!(
            "a secret of {} characters cannot hold {MIN_SECRET_BYTES} bytes",
            text.len()
        )));
    }
    let url: Vec<u8> = unpadded
        .bytes()
        .map(|b| match b {
            b'+' => b'-',
            b'/' => b'_',
            b => b,
        })
        .collect();
    let bytes = base64url::decode(&url).map_err(|()| Error::InvalidOption {
        name: "keys",
        reason:
            "a secret given as text must be base64url or base64 (as generateSecureKey() writes it)"
                .into(),
    })?;
    check_secret(&bytes)?;
    Ok(bytes)
}

/// Refuses secrets shorter than [`MIN_SECRET_BYTES`], longer than
/// [`MAX_SECRET_BYTES`], or obviously far from random: under
/// [`MIN_ESTIMATED_BITS`] by [`estimated_entropy_bits`] (one byte repeated,
/// a short pattern repeated, a few distinct bytes).
///
/// ```
/// use edgecache::check_secret;
/// assert!(check_secret(&[7; 31]).is_err());
/// assert!(check_secret(&[0; 32]).is_err());
/// assert!(check_secret(&[0, 1].repeat(16)).is_err());
/// assert!(check_secret(&(0u8..32).collect::<Vec<_>>()).is_ok());
/// ```
pub fn check_secret(secret: &[u8]) -> Result<()> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(Error::WeakKey(format!(
            "a secret of {} bytes is shorter than {MIN_SECRET_BYTES}",
            secret.len()
        )));
    }
    if secret.len() > MAX_SECRET_BYTES {
        return Err(Error::InvalidOption {
            name: "keys",
            reason: format!(
                "a secret of {} bytes is longer than {MAX_SECRET_BYTES}",
                secret.len()
            ),
        });
    }
    let bits = estimated_entropy_bits(secret);
    if bits < MIN_ESTIMATED_BITS {
        return Err(Error::WeakKey(format!(
            "the secret is far from random (about {bits:.0} bits of entropy estimated, \
             {MIN_ESTIMATED_BITS} needed): a byte or a short pattern repeated, or too few distinct bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_and_decodable() {
        let keys: Vec<String> = (0..32).map(|_| generate_secure_key().unwrap()).collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(k.len(), 43);
            assert!(k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(decode_secret(k).unwrap().len(), 32);
            assert!(!keys[..i].contains(k));
        }
    }

    #[test]
    fn accepts_standard_base64_and_padding() {
        let bytes: Vec<u8> = (200u8..232).collect();
        let url = base64url::encode(&bytes);
        let std = url.replace('-', "+").replace('_', "/") + "=";
        assert_ne!(url, std);
        assert_eq!(decode_secret(&std).unwrap(), bytes);
        assert_eq!(decode_secret(&url).unwrap(), bytes);
    }

    #[test]
    fn refuses_weak_or_garbled_secrets() {
        assert_eq!(decode_secret("").unwrap_err().code(), "WEAK_KEY");
        assert_eq!(
            decode_secret(&"A".repeat(42)).unwrap_err().code(),
            "WEAK_KEY"
        );
        // 32 zero bytes: long enough, but one repeated byte.
        assert_eq!(
            decode_secret(&"A".repeat(43)).unwrap_err().code(),
            "WEAK_KEY"
        );
        assert_eq!(
            decode_secret(&"!".repeat(43)).unwrap_err().code(),
            "INVALID_OPTION"
        );
        assert_eq!(
            check_secret(&[1; 2000]).unwrap_err().code(),
            "INVALID_OPTION"
        );
    }

    #[test]
    fn refuses_low_entropy_secrets() {
        // 'g' repeated: base64 of the 3-byte pattern 82 08 20, repeated.
        assert_eq!(
            decode_secret(&"g".repeat(43)).unwrap_err().code(),
            "WEAK_KEY"
        );
        assert_eq!(
            check_secret(&[0, 1].repeat(16)).unwrap_err().code(),
            "WEAK_KEY"
        );
        let mut pattern: Vec<u8> = (0u8..16).map(|i| i.wrapping_mul(37)).collect();
        pattern.extend_from_within(..);
        assert_eq!(check_secret(&pattern).unwrap_err().code(), "WEAK_KEY");
        // Few distinct bytes, no pattern.
        let few: Vec<u8> = (0u32..32).map(|i| ((i * 7 + i / 3) % 5) as u8).collect();
        assert_eq!(check_secret(&few).unwrap_err().code(), "WEAK_KEY");
    }

    #[test]
    fn random_secrets_pass_with_a_wide_margin() {
        let mut lowest = f64::INFINITY;
        let mut bytes = [0u8; 32];
        for _ in 0..20_000 {
            getrandom::getrandom(&mut bytes).unwrap();
            lowest = lowest.min(estimated_entropy_bits(&bytes));
        }
        assert!(lowest > MIN_ESTIMATED_BITS + 20.0, "lowest {lowest}");
    }
}
