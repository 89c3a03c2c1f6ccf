//! wasm-bindgen glue for `Signer` (js/signer.ts) and `generateSecureKey`.
//! Thin: the core ([`crate::envelope`]) decides everything; this module
//! moves arguments and converts errors.
//!
//! Strings cross through an input buffer owned by each signer instead of
//! wasm-bindgen's per-argument string passing (whose ASCII path is a JS
//! loop, one character at a time): js/signer.ts asks for room with
//! [`WasmSigner::input`], writes the context's name, cache key, tenant,
//! user and payload or envelope there back to back with
//! `TextEncoder.encodeInto` (one native copy each), and passes their
//! lengths. A call then moves no strings and allocates nothing on the JS
//! side. Opened values come back in one call as a JS string (JSON text), a
//! `Uint8Array` (bytes) or `undefined` (expired).
//!
//! Tags (format version 3) cross as text too, after the payload in the
//! input buffer: `<version>:<tag>` pairs joined with `,` (a tag has no
//! comma, and a version no `:`), versions in decimal from 0 to 2^53 - 1 so
//! that a JS number holds them exactly. `lastTags()` gives an opened
//! envelope's tags back in the same form.
//!
//! The context's name is a namespace of the application's, or, for the
//! Redis tier, the prefix of its `LayoutCore` (read once per layout on the
//! JS side), with `tier` set.

use wasm_bindgen::prelude::*;

use crate::envelope::{Context, Encoding, Signer};
use crate::error::Error;
use crate::layout::Kind;
use crate::scope::Scope;
use crate::wasm::to_js;

/// 43 characters of base64url: 32 bytes from `crypto.getRandomValues`.
#[wasm_bindgen(js_name = generateSecureKey)]
pub fn generate_secure_key() -> Result<String, JsValue> {
    crate::secure_key::generate_secure_key().map_err(to_js)
}

/// The bytes of a secret written as base64url or base64 (checked for strength).
#[wasm_bindgen(js_name = decodeSecret)]
pub fn decode_secret(text: &str) -> Result<Vec<u8>, JsValue> {
    crate::secure_key::decode_secret(text).map_err(to_js)
}

/// The module's `WebAssembly.Memory`, for writing into [`WasmSigner::input`].
#[wasm_bindgen(js_name = signerMemory)]
pub fn signer_memory() -> JsValue {
    wasm_bindgen::memory()
}

/// `now + ttl` as an absolute expiry in whole ms (0: none), rounded up so a
/// value never expires early.
fn expiry(now: f64, ttl: f64) -> Result<u64, JsValue> {
    if !ttl.is_finite() || ttl < 0.0 {
        return Err(to_js(Error::InvalidTtl(ttl)));
    }
    if ttl == 0.0 {
        return Ok(0);
    }
    if !now.is_finite() || now < 0.0 {
        return Err(to_js(bad_clock(now)));
    }
    // f64 -> u64 saturates; anything past 2^64 ms never expires in practice.
    Ok((now + ttl).ceil().max(1.0) as u64)
}

fn bad_clock(now: f64) -> Error {
    Error::InvalidOption {
        name: "now",
        reason: format!("the clock returned {now}; it must give ms since the Unix epoch"),
    }
}

/// A larger input buffer than this is released once calls need less.
const KEEP_INPUT: usize = 1 << 20;

/// The core signer behind the TypeScript `Signer`.
#[wasm_bindgen(js_name = SignerCore)]
pub struct WasmSigner {
    signer: Signer,
    input: Vec<u8>,
    scope_cache: Option<ScopeCache>,
    /// The expiry of the envelope the last successful `open` returned.
    last_expires_at: u64,
    /// Its tags as `<version>:<tag>,...`; `None` if it had none.
    last_tags: Option<String>,
}

/// The largest tag version that crosses to JS: a number holds it exactly.
const MAX_SAFE: u64 = (1 << 53) - 1;

/// Reads `<version>:<tag>` pairs joined with `,` (see the module docs).
/// `INVALID_TAG` for a pair without `:` or a version that is not a
/// decimal integer from 0 to 2^53 - 1 (the tags themselves are checked by
/// the signer). `,` and `:` are ASCII, so byte offsets split the text.
fn parse_tags(text: &str) -> Result<Vec<(&str, u64)>, JsValue> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.bytes().position(|b| b == b',').unwrap_or(rest.len());
        let pair = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
        let bad = || {
            to_js(Error::InvalidTag(format!(
                "\"{pair}\": each tag goes with its version, an integer from 0 to 2^53 - 1"
            )))
        };
        let colon = pair.bytes().position(|b| b == b':').ok_or_else(bad)?;
        let (v, tag) = (&pair[..colon], &pair[colon + 1..]);
        let canonical = !v.is_empty()
            && v.len() <= 16
            && v.bytes().all(|b| b.is_ascii_digit())
            && (v == "0" || !v.starts_with('0'));
        if !canonical {
            return Err(bad());
        }
        let n = v.bytes().fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
        if n > MAX_SAFE {
            return Err(bad());
        }
        out.push((tag, n));
    }
    Ok(out)
}

/// The strings of one call, read from the input buffer.
struct Args<'a> {
    /// The context's name: a namespace, or a tier's prefix.
    name: &'a str,
    /// The scope's encoding ([`Scope::encode`]); `None` for the root.
    scope: Option<&'a str>,
    key: &'a str,
    rest: &'a [u8],
}

/// The last scope used and its encoding: calls tend to repeat one scope,
/// and this spares them validating and encoding it again.
struct ScopeCache {
    tenant: Option<String>,
    user: Option<String>,
    encoded: String,
}

/// Reads the context's name, `key`, then `tenant` and `user` (length -1:
/// absent), then the rest, from the input buffer.
#[allow(clippy::too_many_arguments)]
fn args<'a>(
    input: &'a [u8],
    cache: &'a mut Option<ScopeCache>,
    scoped: bool,
    name_len: usize,
    key_len: usize,
    tenant_len: i32,
    user_len: i32,
    rest_len: usize,
) -> Result<Args<'a>, JsValue> {
    fn bad_input(reason: &str) -> JsValue {
        to_js(Error::InvalidOption {
            name: "input",
            reason: reason.into(),
        })
    }
    fn text(b: &[u8]) -> Result<&str, JsValue> {
        std::str::from_utf8(b).map_err(|_| bad_input("not UTF-8"))
    }
    let mut at = 0usize;
    let mut take = |len: usize| -> Result<&'a [u8], JsValue> {
        let part = input
            .get(at..at.saturating_add(len))
            .ok_or_else(|| bad_input("lengths exceed the input buffer"))?;
        at += len;
        Ok(part)
    };
    let name = text(take(name_len)?)?;
    let key = text(take(key_len)?)?;
    let tenant = match usize::try_from(tenant_len) {
        Ok(n) => Some(text(take(n)?)?),
        Err(_) => None,
    };
    let user = match usize::try_from(user_len) {
        Ok(n) => Some(text(take(n)?)?),
        Err(_) => None,
    };
    let rest = take(rest_len)?;
    if !scoped {
        return Ok(Args {
            name,
            scope: None,
            key,
            rest,
        });
    }
    let hit =
        matches!(cache, Some(c) if c.tenant.as_deref() == tenant && c.user.as_deref() == user);
    if !hit {
        let encoded = Scope::new(tenant, user).map_err(to_js)?.encode();
        *cache = Some(ScopeCache {
            tenant: tenant.map(str::to_owned),
            user: user.map(str::to_owned),
            encoded,
        });
    }
    let scope = cache.as_ref().map(|c| c.encoded.as_str());
    Ok(Args {
        name,
        scope,
        key,
        rest,
    })
}

/// The context of a call: a tier's values under the prefix `name` (which
/// js/signer.ts reads from the tier's `LayoutCore`, so it is a valid one),
/// or the application namespace `name`.
fn context(tier: bool, name: &str) -> Context<'_> {
    if tier {
        Context::Tier {
            prefix: name,
            kind: Kind::Value,
        }
    } else {
        Context::App(name)
    }
}

#[wasm_bindgen(js_class = SignerCore)]
impl WasmSigner {
    /// A signer whose first key, `kid`, seals.
    #[wasm_bindgen(constructor)]
    pub fn new(kid: &str, secret: &[u8]) -> Result<WasmSigner, JsValue> {
        Signer::new(kid, secret)
            .map(|signer| WasmSigner {
                signer,
                input: Vec::new(),
                scope_cache: None,
                last_expires_at: 0,
                last_tags: None,
            })
            .map_err(to_js)
    }

    /// Adds a key that verifies.
    #[wasm_bindgen(js_name = addKey)]
    pub fn add_key(&mut self, kid: &str, secret: &[u8]) -> Result<(), JsValue> {
        self.signer.add_key(kid, secret).map_err(to_js)
    }

    /// Makes `kid` the key that seals.
    #[wasm_bindgen(js_name = setCurrent)]
    pub fn set_current(&mut self, kid: &str) -> Result<(), JsValue> {
        self.signer.set_current(kid).map_err(to_js)
    }

    /// Removes a key; false if absent.
    #[wasm_bindgen(js_name = removeKey)]
    pub fn remove_key(&mut self, kid: &str) -> Result<bool, JsValue> {
        self.signer.remove_key(kid).map_err(to_js)
    }

    /// Also opens envelopes of format version 1 (`acceptV1`).
    #[wasm_bindgen(js_name = setAcceptV1)]
    pub fn set_accept_v1(&mut self, accept: bool) {
        self.signer.set_accept_v1(accept);
    }

    /// The payload limit (an integer in 1..=2^30).
    #[wasm_bindgen(js_name = setMaxPayload)]
    pub fn set_max_payload(&mut self, max: f64) -> Result<(), JsValue> {
        if max.fract() != 0.0 || !(1.0..=f64::from(u32::MAX)).contains(&max) {
            return Err(to_js(Error::InvalidOption {
                name: "maxPayloadBytes",
                reason: format!(
                    "{max} is not an integer in 1..={}",
                    crate::envelope::MAX_PAYLOAD_LIMIT
                ),
            }));
        }
        self.signer.set_max_payload(max as u32).map_err(to_js)
    }

    /// The id of the key that seals.
    #[wasm_bindgen(js_name = currentKeyId)]
    pub fn current_key_id(&self) -> String {
        self.signer.current_key_id().to_owned()
    }

    /// The longest envelope text `open` reads, in bytes.
    #[wasm_bindgen(js_name = maxEnvelopeLength)]
    pub fn max_envelope_length(&self) -> f64 {
        self.signer.max_envelope_len() as f64
    }

    /// Throws `ENVELOPE_TOO_LARGE` for an envelope of `len` bytes over the limit.
    #[wasm_bindgen(js_name = checkEnvelopeLength)]
    pub fn check_envelope_length(&self, len: f64) -> Result<(), JsValue> {
        self.signer
            .check_envelope_len(len.min(usize::MAX as f64) as usize)
            .map_err(to_js)
    }

    /// The signer and the strings of this call, read from the input buffer.
    fn call(
        &mut self,
        scoped: bool,
        name_len: usize,
        key_len: usize,
        tenant_len: i32,
        user_len: i32,
        rest_len: usize,
    ) -> Result<(&Signer, Args<'_>), JsValue> {
        let WasmSigner {
            signer,
            input,
            scope_cache,
            ..
        } = self;
        let a = args(
            input,
            scope_cache,
            scoped,
            name_len,
            key_len,
            tenant_len,
            user_len,
            rest_len,
        )?;
        Ok((signer, a))
    }

    /// Makes the input buffer at least `n` bytes long and returns its
    /// address in wasm memory. Valid until the next call on this signer.
    pub fn input(&mut self, n: usize) -> usize {
        if self.input.len() > KEEP_INPUT && n <= KEEP_INPUT {
            self.input = Vec::new();
        }
        if self.input.len() < n {
            self.input.resize(n, 0);
        }
        self.input.as_mut_ptr() as usize
    }

    /// Seals the payload in the input buffer (`encoding`: 0 bytes, 1 UTF-8
    /// JSON) in the context whose name the buffer starts with: a tier's
    /// values under that prefix (`tier`), or that namespace. `tags_len`
    /// bytes of tags follow the payload (0: none, a version 2 envelope;
    /// else version 3): `<version>:<tag>` pairs joined with `,`.
    #[allow(clippy::too_many_arguments)]
    pub fn seal(
        &mut self,
        tier: bool,
        name_len: usize,
        scoped: bool,
        key_len: usize,
        tenant_len: i32,
        user_len: i32,
        encoding: u8,
        payload_len: usize,
        tags_len: usize,
        now: f64,
        ttl: f64,
    ) -> Result<String, JsValue> {
        let rest_len = payload_len.saturating_add(tags_len);
        let (signer, a) = self.call(scoped, name_len, key_len, tenant_len, user_len, rest_len)?;
        let (payload, tags) = a.rest.split_at(payload_len);
        let tags = std::str::from_utf8(tags).map_err(|_| {
            to_js(Error::InvalidOption {
                name: "input",
                reason: "not UTF-8".into(),
            })
        })?;
        let tags = parse_tags(tags)?;
        let at = expiry(now, ttl)?;
        let encoding = if encoding == 1 {
            Encoding::Json
        } else {
            Encoding::Bytes
        };
        // JSON arrives as TextEncoder output, which is always UTF-8.
        signer
            .seal_bound(
                context(tier, a.name),
                a.scope,
                a.key,
                encoding,
                payload,
                at,
                &tags,
            )
            .map_err(to_js)
    }

    /// Opens the envelope in the input buffer, in the context as for
    /// [`seal`](Self::seal): a string (JSON text), a `Uint8Array` (bytes),
    /// or `undefined` if it has expired. A tagged one (version 3) only if
    /// `tagged`: its tags are then in [`last_tags`](Self::last_tags).
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        &mut self,
        tier: bool,
        name_len: usize,
        scoped: bool,
        key_len: usize,
        tenant_len: i32,
        user_len: i32,
        envelope_len: usize,
        now: f64,
        tagged: bool,
    ) -> Result<JsValue, JsValue> {
        if now.is_nan() {
            return Err(to_js(bad_clock(now)));
        }
        let (signer, a) = self.call(
            scoped,
            name_len,
            key_len,
            tenant_len,
            user_len,
            envelope_len,
        )?;
        // Saturating: a negative time reads as 0, which expires nothing.
        let now = now.floor() as u64;
        let Some(opened) = signer
            .open_bound(context(tier, a.name), a.scope, a.key, a.rest, now, tagged)
            .map_err(to_js)?
        else {
            return Ok(JsValue::UNDEFINED);
        };
        let tags = opened.tags();
        if tags.iter().any(|&(_, v)| v > MAX_SAFE) {
            // Signed by a writer that is not the JS one: refused rather
            // than rounded (a rounded version could pass for a newer one).
            return Err(to_js(Error::MalformedEnvelope(
                "a tag version is past 2^53 - 1, which a JS number cannot hold exactly".into(),
            )));
        }
        self.last_tags = (!tags.is_empty()).then(|| {
            let mut out = String::new();
            for (i, (t, v)) in tags.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&v.to_string());
                out.push(':');
                out.push_str(t);
            }
            out
        });
        self.last_expires_at = opened.expires_at();
        Ok(match opened.encoding() {
            Encoding::Json => JsValue::from_str(opened.json().map_err(to_js)?),
            Encoding::Bytes => js_sys::Uint8Array::from(opened.payload()).into(),
        })
    }

    /// The absolute expiry (ms since the epoch, 0 = never) of the envelope
    /// the last successful `open` returned: how long L1 may keep it.
    #[wasm_bindgen(js_name = lastExpiresAt)]
    pub fn last_expires_at(&self) -> f64 {
        self.last_expires_at as f64
    }

    /// The tags of the envelope the last successful `open` returned, as
    /// `<version>:<tag>` pairs joined with `,`; `undefined` if it had none.
    #[wasm_bindgen(js_name = lastTags)]
    pub fn last_tags(&self) -> Option<String> {
        self.last_tags.clone()
    }
}
