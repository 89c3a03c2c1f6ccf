//! Signed envelopes: values sealed with HMAC-SHA256 before they leave the
//! isolate (for Redis or any other shared store).
//!
//! An envelope carries a version, a key id, an absolute expiry, the payload
//! encoding and the payload, followed by a tag: HMAC-SHA256 over all of
//! that **and** the [`Context`] (a signer on its own, or a cache's shared
//! tier under its prefix), the [`Scope`] and the cache key the value was
//! written for (`context.rs`). Those are not stored, only bound, so an
//! envelope copied to another cache's prefix, key, tenant or user fails to
//! open, even where every cache shares one secret. The transport form is
//! unpadded base64url. `docs/ENVELOPE.md` specifies the bytes precisely,
//! with test vectors, so any HMAC library can verify one.
//!
//! [`Signer::open`] checks the version, key id, lengths and size limit from
//! the first few characters before it decodes or hashes the payload, and
//! compares tags in constant time.
//!
//! This writes format version 2, and version 3 for tagged entries: the
//! same with the entry's tags and the version of each it was written under
//! (`tags.rs`) between the encoding and the payload length, so that they
//! are signed. [`Signer::open`] refuses version 3 (it could not check the
//! tags), as a reader that does not know it does; [`Signer::open_tagged`]
//! opens both and returns the tags ([`Opened::tags`]). Version 1 bound no
//! context (a value moved between two caches' prefixes under one secret
//! opened); it is refused (`OUTDATED_ENVELOPE`) unless
//! [`Signer::set_accept_v1`] opens a migration window.

pub(crate) mod base64url;
mod context;

pub use context::Context;
use context::{bind, bind_v1};

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::scope::Scope;
use crate::tags::{check_tag, MAX_TAGS, MAX_TAG_LEN};

type HmacSha256 = Hmac<Sha256>;

/// The envelope format version this crate writes and reads (it reads
/// version 1 only under [`Signer::set_accept_v1`]).
pub const ENVELOPE_VERSION: u8 = 2;

/// The format of tagged envelopes: version 2 with the tags and their
/// versions ([`Signer::seal_tagged_in`]); opened by
/// [`Signer::open_tagged_in`] only.
pub const ENVELOPE_VERSION_TAGGED: u8 = 3;

/// The format before contexts were bound: read under
/// [`Signer::set_accept_v1`], never written.
const VERSION_1: u8 = 1;

/// The longest tag section of a version 3 envelope: the count, then per
/// tag its u16 length, its bytes and its u64 version.
pub const MAX_TAGS_SECTION: usize = 1 + MAX_TAGS * (2 + MAX_TAG_LEN + 8);

/// The longest key id, in bytes.
pub const MAX_KEY_ID_LEN: usize = 64;

/// The default payload limit of a [`Signer`]: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD: u32 = 1 << 20;

/// The largest payload limit a [`Signer`] accepts: 1 GiB.
pub const MAX_PAYLOAD_LIMIT: u32 = 1 << 30;

/// Domain separation: the first bytes of every MAC input, so a tag made for
/// an envelope can never be mistaken for one made by other code that
/// happens to share the secret. (The version byte follows it, so the MAC
/// inputs of the two versions differ from their 20th byte.)
pub const MAC_LABEL: &[u8] = b"edgecache/envelope\0";

/// The bytes of the tag.
pub const TAG_LEN: usize = 32;

/// Version, key id length, expiry, encoding, payload length.
const FIXED_HEADER: usize = 1 + 1 + 8 + 1 + 4;

/// Envelope bytes besides the key id and the payload.
pub const OVERHEAD: usize = FIXED_HEADER + TAG_LEN;

/// Base64url characters that always cover the longest header.
const HEADER_CHARS: usize = (FIXED_HEADER + MAX_KEY_ID_LEN).div_ceil(3) * 4;

/// How a payload is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Encoding {
    /// Raw bytes (a JS `Uint8Array` or `ArrayBuffer`).
    Bytes = 0,
    /// UTF-8 JSON text (any other JS value, through `JSON.stringify`).
    Json = 1,
}

impl Encoding {
    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Encoding::Bytes),
            1 => Some(Encoding::Json),
            _ => None,
        }
    }
}

/// A payload to seal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Raw bytes.
    Bytes(&'a [u8]),
    /// JSON text (the caller serialises; the signer does not parse it).
    Json(&'a str),
}

impl Payload<'_> {
    fn parts(&self) -> (Encoding, &[u8]) {
        match *self {
            Payload::Bytes(b) => (Encoding::Bytes, b),
            Payload::Json(s) => (Encoding::Json, s.as_bytes()),
        }
    }
}

/// A verified, unexpired envelope's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    encoding: Encoding,
    expires_at: u64,
    key_id: Arc<str>,
    tags: Vec<(String, u64)>,
}

impl Opened {
    /// The tags and the version of each the entry was written under, in
    /// the order sealed (version 3); empty for an untagged envelope.
    pub fn tags(&self) -> &[(String, u64)] {
        &self.tags
    }

    /// How the payload is encoded.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The payload bytes, owned.
    pub fn into_payload(mut self) -> Vec<u8> {
        self.buf.truncate(self.end);
        self.buf.drain(..self.start);
        self.buf
    }

    /// The payload as JSON text; an error if it was sealed as bytes or is
    /// not UTF-8.
    pub fn json(&self) -> Result<&str> {
        if self.encoding != Encoding::Json {
            return Err(Error::MalformedEnvelope(
                "payload was sealed as bytes, not JSON".into(),
            ));
        }
        std::str::from_utf8(self.payload())
            .map_err(|_| Error::MalformedEnvelope("JSON payload is not UTF-8".into()))
    }

    /// Absolute expiry in ms since the Unix epoch; 0 for none.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The id of the key that sealed it (compare with
    /// [`Signer::current_key_id`] to re-seal values after a rotation).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

struct Key {
    id: Arc<str>,
    /// Keyed once (and fed [`MAC_LABEL`]); cloned for every tag, so a call
    /// never rehashes the secret.
    mac: HmacSha256,
}

/// Seals and opens envelopes with a set of keys: every key verifies, the
/// current one seals.
///
/// ```
/// use edgecache::{Payload, Scope, Signer};
/// let secret: Vec<u8> = (1..=32).collect();
/// let signer = Signer::new("k1", &secret).unwrap();
/// let acme = Scope::tenant("acme").unwrap();
///
/// let sealed = signer.seal(Some(&acme), "user:1", Payload::Json("{\"n\":1}"), 0).unwrap();
/// let opened = signer.open(Some(&acme), "user:1", &sealed, 1_000).unwrap().unwrap();
/// assert_eq!(opened.json().unwrap(), "{\"n\":1}");
///
/// // Another key, or another scope: refused.
/// assert_eq!(signer.open(Some(&acme), "user:2", &sealed, 0).unwrap_err().code(), "BAD_SIGNATURE");
/// assert_eq!(signer.open(None, "user:1", &sealed, 0).unwrap_err().code(), "BAD_SIGNATURE");
/// ```
pub struct Signer {
    keys: Vec<Key>,
    current: usize,
    max_payload: u32,
    accept_v1: bool,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never prints key material.
        f.debug_struct("Signer")
            .field("key_ids", &self.key_ids().collect::<Vec<_>>())
            .field("current", &self.current_key_id())
            .field("max_payload", &self.max_payload)
            .field("accept_v1", &self.accept_v1)
            .finish()
    }
}

fn check_key_id(id: &[u8]) -> std::result::Result<(), &'static str> {
    if id.is_empty() || id.len() > MAX_KEY_ID_LEN {
        return Err("a key id is 1 to 64 bytes");
    }
    if !id.iter().all(|b| (0x21..=0x7E).contains(b)) {
        return Err("a key id is printable ASCII without spaces");
    }
    Ok(())
}

/// The fields of a header, read before any work on the payload.
struct Header {
    /// [`ENVELOPE_VERSION`], [`ENVELOPE_VERSION_TAGGED`], or [`VERSION_1`]
    /// under `accept_v1`.
    version: u8,
    key: usize,
    expires_at: u64,
    encoding: Encoding,
    /// The tags (offset and length in the bytes) and their versions.
    tags: Vec<(usize, usize, u64)>,
    /// Characters of the text decoded so far.
    decoded: usize,
    /// Offset of the payload.
    start: usize,
    /// Offset of the tag.
    end: usize,
}

/// Checks the (tag, version) pairs to seal: the rule of tags, at most
/// [`MAX_TAGS`], no tag twice (`INVALID_TAG`).
fn check_sealed_tags(tags: &[(&str, u64)]) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::InvalidTag(format!(
            "an entry carries at most {MAX_TAGS} tags, got {}",
            tags.len()
        )));
    }
    for (i, (tag, _)) in tags.iter().enumerate() {
        check_tag(tag)?;
        if tags[..i].iter().any(|(t, _)| t == tag) {
            return Err(Error::InvalidTag(format!(
                "{tag:?} is given twice, each tag once with its version"
            )));
        }
    }
    Ok(())
}

impl Signer {
    /// A signer with one key, which seals.
    ///
    /// `key_id` is 1 to 64 printable ASCII characters; `secret` at least 32
    /// bytes (see [`check_secret`](crate::check_secret)).
    pub fn new(key_id: &str, secret: &[u8]) -> Result<Self> {
        let mut s = Signer {
            keys: Vec::new(),
            current: 0,
            max_payload: DEFAULT_MAX_PAYLOAD,
            accept_v1: false,
        };
        s.add_key(key_id, secret)?;
        Ok(s)
    }

    /// Adds a key that verifies (and seals once made current).
    ///
    /// ```
    /// # use edgecache::{Payload, Signer};
    /// let old: Vec<u8> = (1..=32).collect();
    /// let new: Vec<u8> = (101..=132).collect();
    /// let mut a = Signer::new("k1", &old).unwrap();
    /// let sealed = a.seal(None, "k", Payload::Bytes(b"v"), 0).unwrap();
    ///
    /// // Rotate: k2 seals, k1 still verifies.
    /// a.add_key("k2", &new).unwrap();
    /// a.set_current("k2").unwrap();
    /// assert_eq!(a.open(None, "k", &sealed, 0).unwrap().unwrap().key_id(), "k1");
    ///
    /// // Retire k1: its envelopes are refused.
    /// assert!(a.remove_key("k1").unwrap());
    /// assert_eq!(a.open(None, "k", &sealed, 0).unwrap_err().code(), "UNKNOWN_KEY_ID");
    /// ```
    pub fn add_key(&mut self, key_id: &str, secret: &[u8]) -> Result<()> {
        check_key_id(key_id.as_bytes()).map_err(|why| Error::InvalidOption {
            name: "keys",
            reason: format!("key id {key_id:?}: {why}"),
        })?;
        if self.find(key_id.as_bytes()).is_some() {
            return Err(Error::InvalidOption {
                name: "keys",
                reason: format!("key id {key_id:?} is given twice"),
            });
        }
        crate::secure_key::check_secret(secret)?;
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(MAC_LABEL);
        self.keys.push(Key {
            id: Arc::from(key_id),
            mac,
        });
        Ok(())
    }

    /// Makes `key_id` the key that seals.
    pub fn set_current(&mut self, key_id: &str) -> Result<()> {
        self.current = self
            .find(key_id.as_bytes())
            .ok_or_else(|| Error::UnknownKeyId(key_id.to_owned()))?;
        Ok(())
    }

    /// Removes a key: envelopes sealed with it no longer open. Returns
    /// whether it was there. The current key cannot be removed.
    pub fn remove_key(&mut self, key_id: &str) -> Result<bool> {
        let Some(i) = self.find(key_id.as_bytes()) else {
            return Ok(false);
        };
        if i == self.current {
            return Err(Error::InvalidOption {
                name: "current",
                reason: format!(
                    "key id {key_id:?} seals; make another key current before removing it"
                ),
            });
        }
        self.keys.remove(i);
        if self.current > i {
            self.current -= 1;
        }
        Ok(true)
    }

    /// Sets the largest payload, in bytes, that [`seal`](Self::seal) writes
    /// and [`open`](Self::open) reads (1 to [`MAX_PAYLOAD_LIMIT`];
    /// default [`DEFAULT_MAX_PAYLOAD`]).
    ///
    /// ```
    /// # use edgecache::{Payload, Signer};
    /// let mut s = Signer::new("k", &(1..=32).collect::<Vec<u8>>()).unwrap();
    /// s.set_max_payload(4).unwrap();
    /// assert!(s.seal(None, "k", Payload::Bytes(b"1234"), 0).is_ok());
    /// let e = s.seal(None, "k", Payload::Bytes(b"12345"), 0).unwrap_err();
    /// assert_eq!(e.code(), "ENVELOPE_TOO_LARGE");
    /// ```
    pub fn set_max_payload(&mut self, max: u32) -> Result<()> {
        if !(1..=MAX_PAYLOAD_LIMIT).contains(&max) {
            return Err(Error::InvalidOption {
                name: "maxPayloadBytes",
                reason: format!("{max} is not in 1..={MAX_PAYLOAD_LIMIT}"),
            });
        }
        self.max_payload = max;
        Ok(())
    }

    /// The payload limit in bytes.
    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    /// Also opens envelopes of format version 1 (off by default: they are
    /// refused with [`Error::OutdatedEnvelope`]), for a migration window
    /// while values written before the upgrade are still read.
    ///
    /// Version 1 bound scope and key but no [`Context`]: such a value opens
    /// under **any** context, so one copied from another cache's prefix
    /// that shares the secret is served. Turn this on only while values
    /// written by the old format may still be read, and off once they have
    /// expired or been rewritten (the longest TTL after the upgrade; values
    /// without a TTL need rewriting, or the old prefix cleared). Sealing
    /// writes version 2 (3 for tagged entries).
    ///
    /// ```
    /// # use edgecache::Signer;
    /// let mut s = Signer::new("k1", &(0..32).collect::<Vec<u8>>()).unwrap();
    /// // A version 1 envelope (the first vector of docs/ENVELOPE.md's version 1).
    /// let v1 = "AQJrMQAAAAAAAAAAAQAAABR7Im5hbWUiOiJBZGEiLCJuIjoxfatoHMqKBoxkyvyhBGXRIBQTScDhzJKiHuHqzr3oUOou";
    /// assert_eq!(s.open(None, "user:1", v1, 0).unwrap_err().code(), "OUTDATED_ENVELOPE");
    /// s.set_accept_v1(true);
    /// assert_eq!(s.open(None, "user:1", v1, 0).unwrap().unwrap().json().unwrap(), r#"{"name":"Ada","n":1}"#);
    /// ```
    pub fn set_accept_v1(&mut self, accept: bool) {
        self.accept_v1 = accept;
    }

    /// Whether envelopes of format version 1 open ([`set_accept_v1`](Self::set_accept_v1)).
    pub fn accepts_v1(&self) -> bool {
        self.accept_v1
    }

    /// The longest envelope text, in bytes, that [`open`](Self::open)
    /// reads: that of a [`max_payload`](Self::max_payload) payload under
    /// the longest key id, with the longest tag section
    /// ([`MAX_TAGS_SECTION`]).
    pub fn max_envelope_len(&self) -> usize {
        base64url::encoded_len(
            OVERHEAD + MAX_KEY_ID_LEN + MAX_TAGS_SECTION + self.max_payload as usize,
        )
    }

    /// [`Error::EnvelopeTooLarge`] if an envelope of `len` bytes of text is
    /// longer than [`max_envelope_len`](Self::max_envelope_len); the first
    /// check of [`open`](Self::open).
    ///
    /// ```
    /// # use edgecache::Signer;
    /// let s = Signer::new("k", &(1..=32).collect::<Vec<u8>>()).unwrap();
    /// assert!(s.check_envelope_len(s.max_envelope_len()).is_ok());
    /// assert_eq!(s.check_envelope_len(s.max_envelope_len() + 1).unwrap_err().code(), "ENVELOPE_TOO_LARGE");
    /// ```
    pub fn check_envelope_len(&self, len: usize) -> Result<()> {
        if len > self.max_envelope_len() {
            return Err(Error::EnvelopeTooLarge {
                size: (len / 4 * 3).saturating_sub(OVERHEAD + 1) as u64,
                max: u64::from(self.max_payload),
            });
        }
        Ok(())
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> &str {
        &self.keys[self.current].id
    }

    /// Every key id, in the order they were added.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| &*k.id)
    }

    fn find(&self, id: &[u8]) -> Option<usize> {
        self.keys.iter().position(|k| k.id.as_bytes() == id)
    }

    /// Seals `payload` for `key` in `scope` (`None`: the root keyspace) with
    /// the current key, in the default [`Context`] (a signer used on its
    /// own). `expires_at` is absolute, in ms since the Unix epoch; 0 means
    /// never. Deterministic: the same inputs give the same envelope.
    pub fn seal(
        &self,
        scope: Option<&Scope>,
        key: &str,
        payload: Payload<'_>,
        expires_at: u64,
    ) -> Result<String> {
        self.seal_in(Context::DEFAULT, scope, key, payload, expires_at)
    }

    /// [`seal`](Self::seal) in `context`: [`open_in`](Self::open_in) must
    /// give the same one.
    pub fn seal_in(
        &self,
        context: Context<'_>,
        scope: Option<&Scope>,
        key: &str,
        payload: Payload<'_>,
        expires_at: u64,
    ) -> Result<String> {
        let (encoding, bytes) = payload.parts();
        self.seal_encoded(context, scope, key, encoding, bytes, expires_at)
    }

    /// [`seal_in`](Self::seal_in) with the encoding given apart from the
    /// bytes, for callers that already hold JSON as UTF-8 bytes (the caller
    /// vouches that [`Encoding::Json`] bytes are UTF-8 JSON text).
    ///
    /// ```
    /// # use edgecache::{Context, Encoding, Payload, Signer};
    /// let s = Signer::new("k", &(1..=32).collect::<Vec<u8>>()).unwrap();
    /// assert_eq!(
    ///     s.seal_encoded(Context::DEFAULT, None, "k", Encoding::Json, b"[1]", 0).unwrap(),
    ///     s.seal(None, "k", Payload::Json("[1]"), 0).unwrap(),
    /// );
    /// ```
    pub fn seal_encoded(
        &self,
        context: Context<'_>,
        scope: Option<&Scope>,
        key: &str,
        encoding: Encoding,
        bytes: &[u8],
        expires_at: u64,
    ) -> Result<String> {
        let enc = scope.map(Scope::encode);
        self.seal_bound(
            context,
            enc.as_deref(),
            key,
            encoding,
            bytes,
            expires_at,
            &[],
        )
    }

    /// [`seal`](Self::seal) of a tagged entry, in the default [`Context`]:
    /// see [`seal_tagged_in`](Self::seal_tagged_in).
    pub fn seal_tagged(
        &self,
        scope: Option<&Scope>,
        key: &str,
        payload: Payload<'_>,
        expires_at: u64,
        tags: &[(&str, u64)],
    ) -> Result<String> {
        self.seal_tagged_in(Context::DEFAULT, scope, key, payload, expires_at, tags)
    }

    /// [`seal_in`](Self::seal_in) of an entry with `tags`, each with the
    /// version it is written under: a format version 3 envelope, which
    /// binds them (an attacker can neither strip nor change them), and
    /// which only [`open_tagged_in`](Self::open_tagged_in) opens. No tags:
    /// exactly the version 2 envelope of [`seal_in`](Self::seal_in).
    ///
    /// `INVALID_TAG` for a tag that breaks the rule
    /// ([`check_tag`](crate::check_tag)), a tag given twice, or more than
    /// [`MAX_TAGS`] tags.
    ///
    /// ```
    /// # use edgecache::{Context, Payload, Signer};
    /// let s = Signer::new("k", &(1..=32).collect::<Vec<u8>>()).unwrap();
    /// let sealed = s.seal_tagged(None, "k", Payload::Json("1"), 0, &[("product:7", 3)]).unwrap();
    /// let opened = s.open_tagged(None, "k", &sealed, 0).unwrap().unwrap();
    /// assert_eq!(opened.tags(), [("product:7".to_string(), 3)]);
    /// // Code that cannot check tags does not open it.
    /// assert_eq!(s.open(None, "k", &sealed, 0).unwrap_err().code(), "MALFORMED_ENVELOPE");
    /// // Without tags: version 2, as seal writes it.
    /// assert_eq!(s.seal_tagged(None, "k", Payload::Json("1"), 0, &[]).unwrap(),
    ///            s.seal(None, "k", Payload::Json("1"), 0).unwrap());
    /// ```
    pub fn seal_tagged_in(
        &self,
        context: Context<'_>,
        scope: Option<&Scope>,
        key: &str,
        payload: Payload<'_>,
        expires_at: u64,
        tags: &[(&str, u64)],
    ) -> Result<String> {
        let (encoding, bytes) = payload.parts();
        let enc = scope.map(Scope::encode);
        self.seal_bound(
            context,
            enc.as_deref(),
            key,
            encoding,
            bytes,
            expires_at,
            tags,
        )
    }

    /// [`seal_encoded`](Self::seal_encoded) with the scope already encoded
    /// ([`Scope::encode`]), for callers that reuse one scope across calls,
    /// and with `tags` ([`seal_tagged_in`](Self::seal_tagged_in); empty:
    /// version 2).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn seal_bound(
        &self,
        context: Context<'_>,
        scope: Option<&str>,
        key: &str,
        encoding: Encoding,
        bytes: &[u8],
        expires_at: u64,
        tags: &[(&str, u64)],
    ) -> Result<String> {
        if bytes.len() > self.max_payload as usize {
            return Err(Error::EnvelopeTooLarge {
                size: bytes.len() as u64,
                max: u64::from(self.max_payload),
            });
        }
        check_sealed_tags(tags)?;
        let k = &self.keys[self.current];
        let id = k.id.as_bytes();
        let tag_bytes: usize = tags.iter().map(|(t, _)| 2 + t.len() + 8).sum();
        let mut buf = Vec::with_capacity(OVERHEAD + id.len() + bytes.len() + 1 + tag_bytes);
        buf.push(if tags.is_empty() {
            ENVELOPE_VERSION
        } else {
            ENVELOPE_VERSION_TAGGED
        });
        buf.push(id.len() as u8);
        buf.extend_from_slice(id);
        buf.extend_from_slice(&expires_at.to_be_bytes());
        buf.push(encoding as u8);
        if !tags.is_empty() {
            // Checked above: 1 to 64 tags of 1 to 256 bytes.
            buf.push(tags.len() as u8);
            for (tag, version) in tags {
                buf.extend_from_slice(&(tag.len() as u16).to_be_bytes());
                buf.extend_from_slice(tag.as_bytes());
                buf.extend_from_slice(&version.to_be_bytes());
            }
        }
        buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        buf.extend_from_slice(bytes);
        let mut mac = k.mac.clone();
        mac.update(&buf);
        bind(&mut mac, context, scope, key);
        buf.extend_from_slice(&mac.finalize().into_bytes());
        Ok(base64url::encode(&buf))
    }

    /// Reads the header from the first characters of `text` and checks
    /// everything that needs no work proportional to the payload: size
    /// limit, base64url length, version, key id, encoding, exact length.
    ///
    /// Decodes those characters into `head`, which
    /// [`open_bound`](Self::open_bound) then extends with the rest.
    ///
    /// Version 3 (`tagged`; refused otherwise) decodes its tag section as
    /// far as its lengths say (at most [`MAX_TAGS_SECTION`] bytes more),
    /// still not the payload.
    fn header(&self, text: &[u8], head: &mut Vec<u8>, tagged: bool) -> Result<Header> {
        fn malformed(why: &str) -> Error {
            Error::MalformedEnvelope(why.to_owned())
        }
        let n = text.len();
        self.check_envelope_len(n)?;
        let total = base64url::decoded_len(n)
            .ok_or_else(|| malformed("its length is not a base64url length"))?;
        // The header lies in the first HEADER_CHARS characters (a multiple
        // of 4, so the prefix decodes on its own).
        head.reserve_exact(total);
        base64url::decode_into(&text[..n.min(HEADER_CHARS)], head)
            .map_err(|()| malformed("it is not base64url"))?;
        if head.len() < 2 {
            return Err(malformed("it is truncated"));
        }
        let version = head[0];
        let mut decoded = n.min(HEADER_CHARS);
        match version {
            ENVELOPE_VERSION => {}
            ENVELOPE_VERSION_TAGGED if tagged => {}
            ENVELOPE_VERSION_TAGGED => {
                return Err(malformed(
                    "it carries tags (format version 3), which this reader does not check: open it with open_tagged, which returns them",
                ))
            }
            VERSION_1 if self.accept_v1 => {}
            VERSION_1 => return Err(Error::OutdatedEnvelope(VERSION_1)),
            v => {
                return Err(Error::MalformedEnvelope(format!(
                    "version {v} is not supported (this build reads versions {ENVELOPE_VERSION} and {ENVELOPE_VERSION_TAGGED})"
                )))
            }
        }
        let id_len = usize::from(head[1]);
        if id_len == 0 || id_len > MAX_KEY_ID_LEN {
            return Err(malformed("its key id length is out of range"));
        }
        if head.len() < FIXED_HEADER + id_len {
            return Err(malformed("it is truncated"));
        }
        check_key_id(&head[2..2 + id_len]).map_err(malformed)?;
        let at = 2 + id_len;
        let expires_at = u64::from_be_bytes(head[at..at + 8].try_into().expect("8 bytes"));
        let encoding = Encoding::from_byte(head[at + 8])
            .ok_or_else(|| malformed("its payload encoding is unknown"))?;
        let mut at = at + 9;
        let tags = if version == ENVELOPE_VERSION_TAGGED {
            let (tags, end) = read_tags(text, head, &mut decoded, at)?;
            at = end;
            decode_to(text, head, &mut decoded, at + 4)?;
            tags
        } else {
            Vec::new()
        };
        let start = at + 4;
        if head.len() < start {
            return Err(malformed("it is truncated"));
        }
        let len = u32::from_be_bytes(head[at..start].try_into().expect("4 bytes"));
        if len > self.max_payload {
            return Err(Error::EnvelopeTooLarge {
                size: u64::from(len),
                max: u64::from(self.max_payload),
            });
        }
        let end = start + len as usize;
        match total.cmp(&(end + TAG_LEN)) {
            std::cmp::Ordering::Less => return Err(malformed("it is truncated")),
            std::cmp::Ordering::Greater => return Err(malformed("it has bytes after the tag")),
            std::cmp::Ordering::Equal => {}
        }
        let id = &head[2..2 + id_len];
        let key = self.find(id).ok_or_else(|| {
            // check_key_id passed, so the id is ASCII.
            Error::UnknownKeyId(String::from_utf8_lossy(id).into_owned())
        })?;
        Ok(Header {
            version,
            key,
            expires_at,
            encoding,
            tags,
            decoded,
            start,
            end,
        })
    }

    /// Verifies `envelope` for `key` in `scope` (`None`: the root keyspace),
    /// in the default [`Context`] (a signer used on its own).
    ///
    /// Returns `Ok(None)` if it verifies but has expired (`now >=
    /// expires_at`, `now` in ms since the Unix epoch), and an error if it
    /// does not verify: [`Error::BadSignature`] (altered, or sealed for
    /// another context, key, scope or secret), [`Error::UnknownKeyId`],
    /// [`Error::OutdatedEnvelope`] (format version 1, see
    /// [`set_accept_v1`](Self::set_accept_v1)), [`Error::MalformedEnvelope`]
    /// or [`Error::EnvelopeTooLarge`]. All but the first are decided from
    /// the header and lengths alone, before the payload is decoded or
    /// hashed; tags are compared in constant time.
    ///
    /// `envelope` is the base64url text, as a `&str` or as its bytes.
    ///
    /// A tagged envelope (format version 3) is refused as malformed, as a
    /// reader that does not know the version refuses it: code that cannot
    /// check an entry's tags never serves it. [`open_tagged`](Self::open_tagged)
    /// opens it.
    pub fn open<E: AsRef<[u8]> + ?Sized>(
        &self,
        scope: Option<&Scope>,
        key: &str,
        envelope: &E,
        now: u64,
    ) -> Result<Option<Opened>> {
        self.open_in(Context::DEFAULT, scope, key, envelope, now)
    }

    /// [`open`](Self::open) that also opens tagged envelopes (format
    /// version 3), in the default [`Context`]: see
    /// [`open_tagged_in`](Self::open_tagged_in).
    pub fn open_tagged<E: AsRef<[u8]> + ?Sized>(
        &self,
        scope: Option<&Scope>,
        key: &str,
        envelope: &E,
        now: u64,
    ) -> Result<Option<Opened>> {
        self.open_tagged_in(Context::DEFAULT, scope, key, envelope, now)
    }

    /// [`open_in`](Self::open_in) that also opens tagged envelopes
    /// (format version 3): [`Opened::tags`] has the tags and the versions
    /// they were written under (empty for version 2), which the caller
    /// checks against the tags' current versions
    /// ([`tags_valid`](crate::tags_valid)) before it serves the value.
    pub fn open_tagged_in<E: AsRef<[u8]> + ?Sized>(
        &self,
        context: Context<'_>,
        scope: Option<&Scope>,
        key: &str,
        envelope: &E,
        now: u64,
    ) -> Result<Option<Opened>> {
        let enc = scope.map(Scope::encode);
        self.open_bound(context, enc.as_deref(), key, envelope.as_ref(), now, true)
    }

    /// [`open`](Self::open) in `context`, the one the envelope was sealed
    /// in ([`seal_in`](Self::seal_in)).
    pub fn open_in<E: AsRef<[u8]> + ?Sized>(
        &self,
        context: Context<'_>,
        scope: Option<&Scope>,
        key: &str,
        envelope: &E,
        now: u64,
    ) -> Result<Option<Opened>> {
        let enc = scope.map(Scope::encode);
        self.open_bound(context, enc.as_deref(), key, envelope.as_ref(), now, false)
    }

    /// [`open_in`](Self::open_in) (or, `tagged`, [`open_tagged_in`](Self::open_tagged_in))
    /// with the scope already encoded ([`Scope::encode`]).
    pub(crate) fn open_bound(
        &self,
        context: Context<'_>,
        scope: Option<&str>,
        key: &str,
        text: &[u8],
        now: u64,
        tagged: bool,
    ) -> Result<Option<Opened>> {
        let mut buf = Vec::new();
        let h = self.header(text, &mut buf, tagged)?;
        // The header took the first characters (all of a shorter text);
        // decode the rest after them.
        if text.len() > h.decoded {
            base64url::decode_into(&text[h.decoded..], &mut buf)
                .map_err(|()| Error::MalformedEnvelope("it is not base64url".into()))?;
        }
        debug_assert_eq!(buf.len(), h.end + TAG_LEN);
        let k = &self.keys[h.key];
        let mut mac = k.mac.clone();
        mac.update(&buf[..h.end]);
        if h.version == VERSION_1 {
            // Under accept_v1 only (header refused it otherwise): no context.
            bind_v1(&mut mac, scope, key);
        } else {
            bind(&mut mac, context, scope, key);
        }
        mac.verify_slice(&buf[h.end..])
            .map_err(|_| Error::BadSignature)?;
        if h.expires_at != 0 && now >= h.expires_at {
            return Ok(None);
        }
        let tags = h
            .tags
            .iter()
            .map(|&(at, len, v)| {
                // read_tags checked that it is UTF-8.
                let t = std::str::from_utf8(&buf[at..at + len]).unwrap_or_default();
                (t.to_owned(), v)
            })
            .collect();
        Ok(Some(Opened {
            buf,
            start: h.start,
            end: h.end,
            encoding: h.encoding,
            expires_at: h.expires_at,
            key_id: k.id.clone(),
            tags,
        }))
    }
}

/// Decodes the characters of `text` after the first `decoded` into `head`
/// until it holds `need` bytes (or the whole text): a version 3 header is
/// read as far as its fields say, never into the payload beyond a few
/// bytes.
#[inline(never)]
fn decode_to(text: &[u8], head: &mut Vec<u8>, decoded: &mut usize, need: usize) -> Result<()> {
    let upto = text.len().min(need.div_ceil(3) * 4);
    if head.len() < need && upto > *decoded {
        base64url::decode_into(&text[*decoded..upto], head)
            .map_err(|()| Error::MalformedEnvelope("it is not base64url".into()))?;
        *decoded = upto;
    }
    Ok(())
}

/// Reads the tag section of a version 3 header at `at`, decoding `text`
/// into `head` as it goes: the tags (offset, length, version) and the
/// offset after the section. `MALFORMED_ENVELOPE` for a count of 0 or
/// over [`MAX_TAGS`], a tag that breaks the rule of tags, a tag twice, or a
/// section cut short. At most [`MAX_TAGS_SECTION`] bytes are read.
#[allow(clippy::type_complexity)]
fn read_tags(
    text: &[u8],
    head: &mut Vec<u8>,
    decoded: &mut usize,
    mut at: usize,
) -> Result<(Vec<(usize, usize, u64)>, usize)> {
    fn malformed(why: &str) -> Error {
        Error::MalformedEnvelope(why.to_owned())
    }
    let truncated = || malformed("it is truncated");
    decode_to(text, head, decoded, at + 1)?;
    let count = usize::from(*head.get(at).ok_or_else(truncated)?);
    if count == 0 || count > MAX_TAGS {
        return Err(malformed(
            "its tag count is out of range (1 to 64 in format version 3)",
        ));
    }
    at += 1;
    let mut tags: Vec<(usize, usize, u64)> = Vec::with_capacity(count);
    for _ in 0..count {
        decode_to(text, head, decoded, at + 2)?;
        let len = head.get(at..at + 2).ok_or_else(truncated)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        at += 2;
        if len > MAX_TAG_LEN {
            return Err(malformed("a tag is longer than 256 bytes"));
        }
        decode_to(text, head, decoded, at + len + 8)?;
        let head = &*head;
        let tag = head.get(at..at + len).ok_or_else(truncated)?;
        let ok = std::str::from_utf8(tag)
            .ok()
            .is_some_and(|t| check_tag(t).is_ok());
        if !ok {
            return Err(malformed("a tag breaks the rule of tags"));
        }
        if tags.iter().any(|&(a, l, _)| &head[a..a + l] == tag) {
            return Err(malformed("a tag is there twice"));
        }
        let v = head.get(at + len..at + len + 8).ok_or_else(truncated)?;
        let v = u64::from_be_bytes(v.try_into().expect("8 bytes"));
        tags.push((at, len, v));
        at += len + 8;
    }
    Ok((tags, at))
}

#[cfg(test)]
mod tests;
