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
    getrandom::getrandom(&mut bytes).map_err(|e| Error::RandomUnavailable(e.to_string()))?;
    Ok(base64url::encode(&bytes))
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
/// [`MAX_SECRET_BYTES`], or made of one repeated byte.
///
/// ```
/// use edgecache::check_secret;
/// assert!(check_secret(&[7; 31]).is_err());
/// assert!(check_secret(&[0; 32]).is_err());
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
    if secret.iter().all(|&b| b == secret[0]) {
        return Err(Error::WeakKey("the secret is one byte repeated".into()));
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
}
