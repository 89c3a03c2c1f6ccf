//! The Upstash REST protocol, client side, as pure functions: the bodies
//! of requests, and the strict decoding of responses.
//!
//! The protocol (spoken by hosted Upstash, by `@upstash/redis`, and by our
//! bridge, `bridge/`): `POST /` with a JSON array such as `["SET","k","v"]`
//! answers `{"result": …}` or `{"error": "…"}`; `POST /pipeline` with an
//! array of such arrays answers an array of those objects, one per command,
//! in order. With the request header `Upstash-Encoding: base64`, every
//! string in a result except `"OK"` is standard base64 (recursively in
//! arrays); errors are not encoded.
//!
//! Decoding is strict: anything but exactly that shape (not JSON, another
//! shape, a pipeline answer of the wrong length, a float or a boolean where
//! Redis has none, bad base64) is [`Error::L2Protocol`], never a value.
//! The Rust Workers binding uses this module over `worker::Fetch`; the JS
//! `RedisRest` follows the same rules in TypeScript (`js/rest.ts`), where
//! the engine's native `JSON.parse` does the parsing, and both are checked
//! against one corpus, `tests/fixtures/rest.json`.

use serde_json::Value;

use crate::error::{Error, Result};

/// One argument of a command.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg<'a> {
    /// A string (JSON string).
    Str(&'a str),
    /// An integer (JSON number).
    Int(i64),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(s: &'a str) -> Self {
        Arg::Str(s)
    }
}

impl From<i64> for Arg<'_> {
    fn from(n: i64) -> Self {
        Arg::Int(n)
    }
}

/// A decoded Redis reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `null`: a missing key.
    Nil,
    /// An integer reply.
    Int(i64),
    /// A string reply, as bytes (binary-safe when base64 was asked for).
    Bytes(Vec<u8>),
    /// An array reply.
    Array(Vec<Reply>),
}

impl Reply {
    /// The string reply as UTF-8 text, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Reply::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// The body of `POST /`: one command as a JSON array.
///
/// ```
/// use edgecache::{command_body, Arg};
/// assert_eq!(command_body(&[Arg::Str("SET"), "k\"1".into(), Arg::Int(5)]), r#"["SET","k\"1",5]"#);
/// ```
pub fn command_body(args: &[Arg<'_>]) -> String {
    let mut out = String::with_capacity(16 * args.len() + 2);
    push_command(&mut out, args);
    out
}

/// The body of `POST /pipeline`: several commands as a JSON array of arrays.
///
/// ```
/// use edgecache::{pipeline_body, Arg};
/// let get: &[Arg] = &["GET".into(), "a".into()];
/// assert_eq!(pipeline_body(&[get, get]), r#"[["GET","a"],["GET","a"]]"#);
/// ```
pub fn pipeline_body(commands: &[&[Arg<'_>]]) -> String {
    let mut out = String::from("[");
    for (i, c) in commands.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_command(&mut out, c);
    }
    out.push(']');
    out
}

fn push_command(out: &mut String, args: &[Arg<'_>]) {
    out.push('[');
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match a {
            Arg::Str(s) => push_json_string(out, s),
            Arg::Int(n) => out.push_str(&n.to_string()),
        }
    }
    out.push(']');
}

/// `s` as a JSON string, escaped byte for byte as serde_json escapes it (a
/// proptest below holds them equal), without serde_json's serializer: the
/// npm package's wasm carries this, and serde_json's formatter with its
/// float printing is most of 30 KiB gzipped there.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Classifies a non-2xx HTTP status whose body had no `error` string.
fn status_error(status: u16, detail: &str) -> Error {
    match status {
        401 | 403 => Error::L2Auth(format!("HTTP {status}: {detail}")),
        _ => Error::L2Http {
            status,
            message: detail.into(),
            partial: false,
        },
    }
}

fn protocol(why: impl Into<String>) -> Error {
    Error::L2Protocol(why.into())
}

/// Decodes the answer to `POST /`: the reply, or the error the server
/// reported (`L2_REDIS` for a Redis error, `L2_AUTH` for 401/403,
/// `L2_HTTP` for another status), or `L2_PROTOCOL` if the body is not what
/// the protocol allows.
///
/// ```
/// use edgecache::{decode_command, Reply};
/// assert_eq!(decode_command(200, br#"{"result":"YmFy"}"#, true).unwrap(), Reply::Bytes(b"bar".to_vec()));
/// assert_eq!(decode_command(200, br#"{"result":null}"#, true).unwrap(), Reply::Nil);
/// assert_eq!(decode_command(400, br#"{"error":"ERR wrong type"}"#, true).unwrap_err().code(), "L2_REDIS");
/// assert_eq!(decode_command(200, b"<html>", true).unwrap_err().code(), "L2_PROTOCOL");
/// ```
pub fn decode_command(status: u16, body: &[u8], base64: bool) -> Result<Reply> {
    let v = parse(status, body)?;
    if !(200..300).contains(&status) {
        return Err(non_2xx(status, &v));
    }
    one(&v, base64)?.map_err(Error::L2Redis)
}

/// Decodes the answer to `POST /pipeline` of `expected` commands: one
/// result per command, in order (a command's Redis error is its `Err`).
///
/// ```
/// use edgecache::{decode_pipeline, Reply};
/// let out = decode_pipeline(200, br#"[{"result":1},{"error":"ERR no"}]"#, 2, false).unwrap();
/// assert_eq!(out, vec![Ok(Reply::Int(1)), Err("ERR no".to_string())]);
/// assert_eq!(decode_pipeline(200, br#"[{"result":1}]"#, 2, false).unwrap_err().code(), "L2_PROTOCOL");
/// ```
pub fn decode_pipeline(
    status: u16,
    body: &[u8],
    expected: usize,
    base64: bool,
) -> Result<Vec<Result<Reply, String>>> {
    let v = parse(status, body)?;
    if !(200..300).contains(&status) {
        return Err(non_2xx(status, &v));
    }
    let Value::Array(items) = v else {
        return Err(protocol("a pipeline answer must be a JSON array"));
    };
    if items.len() != expected {
        return Err(protocol(format!(
            "a pipeline of {expected} commands was answered with {} results",
            items.len()
        )));
    }
    items.iter().map(|item| one(item, base64)).collect()
}

fn parse(status: u16, body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body).map_err(|e| {
        if (200..300).contains(&status) {
            protocol(format!("the answer is not JSON ({e})"))
        } else {
            status_error(status, "the answer is not JSON")
        }
    })
}

fn non_2xx(status: u16, v: &Value) -> Error {
    match v.get("error").and_then(Value::as_str) {
        Some(msg) if status == 401 || status == 403 => {
            Error::L2Auth(format!("HTTP {status}: {msg}"))
        }
        Some(msg) if status == 400 => Error::L2Redis(msg.into()),
        Some(msg) => match status_error(status, msg) {
            // The bridge on a Redis Cluster: only some masters failed.
            Error::L2Http {
                status, message, ..
            } if v.get("partial") == Some(&Value::Bool(true)) => Error::L2Http {
                status,
                message,
                partial: true,
            },
            e => e,
        },
        None => status_error(status, "no error message"),
    }
}

/// `{"result": r}` → `Ok(Ok(r))`, `{"error": "e"}` → `Ok(Err(e))`.
fn one(v: &Value, base64: bool) -> Result<Result<Reply, String>> {
    let Value::Object(map) = v else {
        return Err(protocol("expected an object with `result` or `error`"));
    };
    if map.len() != 1 {
        return Err(protocol("expected exactly one of `result` and `error`"));
    }
    if let Some(r) = map.get("result") {
        return reply(r, base64, 0).map(Ok);
    }
    match map.get("error") {
        Some(Value::String(e)) => Ok(Err(e.clone())),
        Some(_) => Err(protocol("`error` must be a string")),
        None => Err(protocol("expected `result` or `error`")),
    }
}

/// Redis nests arrays only a few levels (a SCAN answer is 2); this bounds
/// what a hostile server can make the decoder do.
const MAX_DEPTH: usize = 32;

fn reply(v: &Value, base64: bool, depth: usize) -> Result<Reply> {
    Ok(match v {
        Value::Null => Reply::Nil,
        Value::Number(n) => Reply::Int(
            n.as_i64()
                .ok_or_else(|| protocol(format!("{n} is not a 64-bit integer")))?,
        ),
        Value::String(s) if base64 && s != "OK" => Reply::Bytes(
            decode_base64(s).ok_or_else(|| protocol("a result string is not valid base64"))?,
        ),
        Value::String(s) => Reply::Bytes(s.as_bytes().to_vec()),
        Value::Array(items) if depth < MAX_DEPTH => Reply::Array(
            items
                .iter()
                .map(|i| reply(i, base64, depth + 1))
                .collect::<Result<_>>()?,
        ),
        Value::Array(_) => return Err(protocol("arrays nested too deep")),
        Value::Bool(_) | Value::Object(_) => {
            return Err(protocol(
                "a result must be null, an integer, a string or an array",
            ))
        }
    })
}

/// Strict standard base64 with padding (RFC 4648 §4), as Upstash sends it.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let b = s.as_bytes();
    if b.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (i, q) in b.chunks(4).enumerate() {
        let last = i == b.len() / 4 - 1;
        let pad = if last {
            q.iter().rev().take_while(|&&c| c == b'=').count()
        } else {
            0
        };
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = n << 6 | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        // Non-zero bits under the padding make a second spelling: refused.
        if (pad == 1 && bytes[3] != 0) || (pad == 2 && (bytes[2] != 0 || bytes[3] != 0)) {
            return None;
        }
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

/// Test helpers shared with the Workers binding's tests.
#[cfg(test)]
pub(crate) mod test_util {
    /// Standard base64 with padding, as Upstash encodes results.
    pub(crate) fn b64(bytes: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= c.len() {
                    out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use test_util::b64;

    /// The corpus shared with the JS client's tests (`tests/js/rest.test.mjs`).
    #[test]
    fn shared_corpus() {
        let corpus: Value =
            serde_json::from_str(include_str!("../tests/fixtures/rest.json")).unwrap();
        let mut n = 0;
        for case in corpus.as_array().unwrap() {
            let status = case["status"].as_u64().unwrap() as u16;
            let body = case["body"].as_str().unwrap().as_bytes();
            let base64 = case["base64"].as_bool().unwrap();
            let want = case["expect"].as_str().unwrap();
            let got = match case["pipeline"].as_u64() {
                Some(k) => {
                    decode_pipeline(status, body, k as usize, base64).map(|r| format!("{r:?}"))
                }
                None => decode_command(status, body, base64).map(|r| format!("{r:?}")),
            };
            let code = match &got {
                Ok(_) => "ok",
                Err(e) => e.code(),
            };
            assert_eq!(code, want, "case {}: {:?}", case["name"], got);
            n += 1;
        }
        assert!(n >= 20, "the corpus has {n} cases");
    }

    #[test]
    fn status_classes() {
        let e = |s, b: &str| decode_command(s, b.as_bytes(), false).unwrap_err().code();
        assert_eq!(e(401, r#"{"error":"WRONGPASS"}"#), "L2_AUTH");
        assert_eq!(e(403, r#"{"error":"denied"}"#), "L2_AUTH");
        assert_eq!(e(400, r#"{"error":"ERR x"}"#), "L2_REDIS");
        assert_eq!(e(503, r#"{"error":"redis down"}"#), "L2_HTTP");
        assert_eq!(e(502, "Bad Gateway"), "L2_HTTP");
        assert_eq!(e(200, r#"{"result":1.5}"#), "L2_PROTOCOL");
    }

    #[test]
    fn a_403_blames_the_command_a_401_the_token() {
        let m = |s, b: &str| {
            decode_command(s, b.as_bytes(), false)
                .unwrap_err()
                .to_string()
        };
        let denied = m(
            403,
            r#"{"error":"NOPERM 'FLUSHALL' is on the bridge's deny list"}"#,
        );
        assert!(
            denied.contains("refused the command: HTTP 403: NOPERM"),
            "{denied}"
        );
        assert!(!denied.contains("check the url and token"), "{denied}");
        let wrong = m(401, r#"{"error":"WRONGPASS invalid token"}"#);
        assert!(
            wrong.contains("refused the token: HTTP 401: WRONGPASS"),
            "{wrong}"
        );
        assert!(wrong.contains("EDGECACHE_REDIS_TOKEN"), "{wrong}");
    }

    #[test]
    fn hostile_nesting_is_refused() {
        let deep = format!("{{\"result\":{}1{}}}", "[".repeat(40), "]".repeat(40));
        assert_eq!(
            decode_command(200, deep.as_bytes(), false)
                .unwrap_err()
                .code(),
            "L2_PROTOCOL"
        );
        let very = format!(
            "{{\"result\":{}1{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            decode_command(200, very.as_bytes(), false)
                .unwrap_err()
                .code(),
            "L2_PROTOCOL"
        );
    }

    proptest! {
        #[test]
        fn base64_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(decode_base64(&b64(&bytes)), Some(bytes));
        }

        /// Arbitrary bodies never panic, and a 2xx body decodes only if it is JSON.
        #[test]
        fn arbitrary_bodies(body in proptest::collection::vec(any::<u8>(), 0..64), status in 100u16..600, k in 0usize..3) {
            let _ = decode_command(status, &body, true);
            if let Ok(v) = decode_pipeline(status, &body, k, true) {
                prop_assert_eq!(v.len(), k);
                prop_assert!(serde_json::from_slice::<Value>(&body).is_ok());
            }
        }

        #[test]
        fn strings_round_trip(s in "\\PC{0,12}", n in any::<i64>()) {
            let body = command_body(&[Arg::Str(&s), Arg::Int(n)]);
            let v: Value = serde_json::from_str(&body).unwrap();
            prop_assert_eq!(v, serde_json::json!([s, n]));
        }

        /// Byte for byte what serde_json writes (control characters,
        /// quotes, backslashes, any Unicode): the corpus pins the bytes.
        #[test]
        fn strings_escape_as_serde_json(s in any::<String>(), c in proptest::collection::vec(0u8..0x80, 0..8)) {
            let s = format!("{s}{}", String::from_utf8(c).unwrap());
            let body = command_body(&[Arg::Str(&s)]);
            prop_assert_eq!(body, format!("[{}]", serde_json::to_string(&s).unwrap()));
        }
    }
}
