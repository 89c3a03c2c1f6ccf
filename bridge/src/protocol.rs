//! The Upstash REST protocol as pure functions: what a request body or path
//! means, and how a Redis reply is written back as JSON. No I/O here, so
//! every rule is tested (and fuzzed) without a network.
//!
//! Requests:
//! - `POST /` with a JSON array: one command (`["SET","k","v","EX",100]`);
//! - `POST /pipeline` and `POST /multi-exec` with a 2-D array;
//! - the path form `GET /set/k/v/EX/100`, percent-decoded, where a POST or
//!   PUT body is the last argument.
//!
//! Arguments are strings, numbers or booleans (`@upstash/redis` sends
//! numbers and booleans as JSON); anything else is refused, so a nested
//! array or object never reaches Redis and deep nesting is refused at the
//! first level it appears.
//!
//! Replies: `{"result": ...}` or `{"error": "..."}`. With
//! `Upstash-Encoding: base64`, every string in a result except `"OK"` is
//! base64 (standard alphabet, padded), recursively in arrays; errors are
//! never encoded.

use base64::Engine as _;
use bytes::Bytes;
use fred::types::Resp3Frame;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::fmt;

/// One command: its arguments, the name first, as bytes.
pub type Command = Vec<Bytes>;

/// Why a request cannot become commands (answered with status 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn perr(msg: impl Into<String>) -> ParseError {
    ParseError(msg.into())
}

/// One argument as JSON carries it: a string, a number or a boolean.
struct Arg(Bytes);

impl<'de> serde::Deserialize<'de> for Arg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Arg;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, a number or a boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Arg, E> {
                Ok(Arg(Bytes::copy_from_slice(v.as_bytes())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Arg, E> {
                Ok(Arg(Bytes::from(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Arg, E> {
                Ok(Arg(Bytes::from(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Arg, E> {
                Ok(Arg(Bytes::from(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Arg, E> {
                Ok(Arg(Bytes::from(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Arg, E> {
                Ok(Arg(Bytes::from_static(if v { b"true" } else { b"false" })))
            }
        }
        d.deserialize_any(V)
    }
}

/// A command as JSON carries it: a non-empty array of arguments.
struct JsonCommand(Command);

impl<'de> serde::Deserialize<'de> for JsonCommand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonCommand;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command: an array of strings, numbers or booleans")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonCommand, A::Error> {
                let mut args = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
                while let Some(Arg(a)) = seq.next_element()? {
                    args.push(a);
                }
                Ok(JsonCommand(args))
            }
        }
        d.deserialize_seq(V)
    }
}

/// Several commands, refusing more than `max` while reading (so a pipeline
/// of a million commands is refused after `max + 1`, not after parsing all).
struct JsonCommands {
    max: usize,
}

impl<'de> de::DeserializeSeed<'de> for JsonCommands {
    type Value = Vec<Command>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        struct V(usize);
        impl<'de> Visitor<'de> for V {
            type Value = Vec<Command>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of commands")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Command>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(16).min(self.0));
                while let Some(JsonCommand(c)) = seq.next_element()? {
                    if out.len() == self.0 {
                        return Err(de::Error::custom(format_args!(
                            "more than {} commands in one request (--max-pipeline)",
                            self.0
                        )));
                    }
                    out.push(c);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(V(self.max))
    }
}

fn json_error(e: serde_json::Error) -> ParseError {
    perr(format!("ERR failed to parse the request body as JSON: {e}"))
}

/// A command needs a name, and the name only the characters Redis command
/// names use (letters, digits, `.`, `_`, `-`: `GET`, `JSON.GET`). This is
/// a security rule, not tidiness: fred splits a command name on spaces, so
/// `"FLUSHALL ASYNC"` would otherwise pass the deny list as another name.
fn check_command(c: &Command) -> Result<(), ParseError> {
    let Some(name) = c.first() else {
        return Err(perr("ERR empty command"));
    };
    if name.is_empty()
        || name.len() > 64
        || !name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
    {
        return Err(perr(format!(
            "ERR unknown command '{}'",
            String::from_utf8_lossy(&name[..name.len().min(64)])
        )));
    }
    Ok(())
}

/// `POST /`: the body is one JSON command.
pub fn parse_command(body: &[u8]) -> Result<Command, ParseError> {
    let JsonCommand(c) = serde_json::from_slice(body).map_err(json_error)?;
    check_command(&c)?;
    Ok(c)
}

/// `POST /pipeline` and `POST /multi-exec`: the body is a 2-D array of at
/// most `max` commands, none of them empty; an empty list is refused too.
pub fn parse_commands(body: &[u8], max: usize) -> Result<Vec<Command>, ParseError> {
    use serde::de::DeserializeSeed;
    let mut d = serde_json::Deserializer::from_slice(body);
    let cmds = JsonCommands { max }
        .deserialize(&mut d)
        .map_err(json_error)?;
    d.end().map_err(json_error)?;
    if cmds.is_empty() {
        return Err(perr("ERR no commands in the request"));
    }
    for c in &cmds {
        check_command(c)?;
    }
    Ok(cmds)
}

/// `POST /pipeline`: like [`parse_commands`], but each command is its own
/// outcome. The body is refused whole (`Err`) when it is not JSON, not an
/// array of arrays, empty, or longer than `max`; a command that is not
/// valid by itself (an argument that is not a string, number or boolean, a
/// lone UTF-16 surrogate such as `"\ud800"`, which is valid JSON syntax but
/// no Unicode text, an empty command, a bad name) is an `Err` in its
/// place, and the others run.
///
/// The body is parsed once, as [`parse_commands`] does; only a body that
/// fails is parsed again, command by command, to find which commands are
/// at fault (serde_json skips over a value without decoding its escapes,
/// so one bad string does not hide where the next command starts).
pub fn parse_pipeline(
    body: &[u8],
    max: usize,
) -> Result<Vec<Result<Command, ParseError>>, ParseError> {
    use serde::de::DeserializeSeed;
    let mut d = serde_json::Deserializer::from_slice(body);
    let whole = JsonCommands { max }
        .deserialize(&mut d)
        .and_then(|cmds| d.end().map(|()| cmds));
    let cmds = match whole {
        Ok(cmds) => cmds,
        Err(_) => return parse_pipeline_by_command(body, max),
    };
    if cmds.is_empty() {
        return Err(perr("ERR no commands in the request"));
    }
    Ok(cmds
        .into_iter()
        .map(|c| check_command(&c).map(|()| c))
        .collect())
}

fn parse_pipeline_by_command(
    body: &[u8],
    max: usize,
) -> Result<Vec<Result<Command, ParseError>>, ParseError> {
    use serde::de::DeserializeSeed;
    use serde_json::value::RawValue;
    struct Raw(usize);
    impl<'de> de::DeserializeSeed<'de> for Raw {
        type Value = Vec<&'de RawValue>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            struct V(usize);
            impl<'de> Visitor<'de> for V {
                type Value = Vec<&'de RawValue>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an array of commands")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                    let mut out = Vec::new();
                    while let Some(raw) = seq.next_element::<&'de RawValue>()? {
                        if out.len() == self.0 {
                            return Err(de::Error::custom(format_args!(
                                "more than {} commands in one request (--max-pipeline)",
                                self.0
                            )));
                        }
                        if !raw.get().starts_with('[') {
                            return Err(de::Error::custom(
                                "a command is not an array of strings, numbers or booleans",
                            ));
                        }
                        out.push(raw);
                    }
                    Ok(out)
                }
            }
            d.deserialize_seq(V(self.0))
        }
    }
    let mut d = serde_json::Deserializer::from_slice(body);
    let raws = Raw(max).deserialize(&mut d).map_err(json_error)?;
    d.end().map_err(json_error)?;
    if raws.is_empty() {
        return Err(perr("ERR no commands in the request"));
    }
    Ok(raws
        .into_iter()
        .map(|raw| {
            let JsonCommand(c) = serde_json::from_str(raw.get())
                .map_err(|e| perr(format!("ERR failed to parse this command as JSON: {e}")))?;
            check_command(&c)?;
            Ok(c)
        })
        .collect())
}

/// The path form: `/set/foo/bar/EX/100`, each segment percent-decoded (a
/// `%2F` stays inside its argument); `body`, on POST and PUT, is appended
/// as the last argument when it is not empty.
pub fn parse_path(path: &str, body: Option<Bytes>) -> Result<Command, ParseError> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let mut args = Vec::new();
    if !trimmed.is_empty() {
        for seg in trimmed.split('/') {
            args.push(Bytes::from(percent_decode(seg)?));
        }
    }
    if let Some(b) = body.filter(|b| !b.is_empty()) {
        args.push(b);
    }
    check_command(&args)?;
    Ok(args)
}

fn percent_decode(seg: &str) -> Result<Vec<u8>, ParseError> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            match (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                _ => return Err(perr("ERR malformed percent-encoding in the path")),
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// The command's name in upper case, as the policy compares it.
pub fn command_name(c: &Command) -> String {
    String::from_utf8_lossy(&c[0]).to_ascii_uppercase()
}

/// Writes `s` as a JSON string.
fn push_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// Writes bytes as a JSON string: base64 when asked (except `OK`), else
/// UTF-8 (with U+FFFD for bytes that are not, which only base64 avoids).
fn push_bytes(out: &mut Vec<u8>, data: &[u8], base64: bool) {
    if base64 && data != b"OK" {
        // The base64 alphabet needs no JSON escaping.
        out.push(b'"');
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(data)
                .as_bytes(),
        );
        out.push(b'"');
    } else {
        push_str(out, &String::from_utf8_lossy(data));
    }
}

/// Writes a reply frame as a JSON value (`null`, a number, a string, an
/// array). An error nested in an array (a script's reply) becomes
/// `{"error": "..."}` in its place. RESP3-only types cannot arrive (the
/// bridge speaks RESP2), but are written sensibly: a map as a flat array,
/// a double as a number, a boolean as 1 or 0.
pub fn push_value(out: &mut Vec<u8>, frame: &Resp3Frame, base64: bool) {
    use std::io::Write as _;
    match frame {
        Resp3Frame::Null => out.extend_from_slice(b"null"),
        Resp3Frame::Number { data, .. } => {
            let _ = write!(out, "{data}");
        }
        Resp3Frame::Double { data, .. } if data.is_finite() => {
            let _ = write!(out, "{data}");
        }
        Resp3Frame::Double { data, .. } => push_bytes(out, data.to_string().as_bytes(), base64),
        Resp3Frame::Boolean { data, .. } => out.push(if *data { b'1' } else { b'0' }),
        Resp3Frame::SimpleString { data, .. }
        | Resp3Frame::BlobString { data, .. }
        | Resp3Frame::VerbatimString { data, .. }
        | Resp3Frame::BigNumber { data, .. } => push_bytes(out, data, base64),
        Resp3Frame::SimpleError { .. } | Resp3Frame::BlobError { .. } => {
            push_error(out, &error_text(frame).unwrap_or_default());
        }
        Resp3Frame::Array { data, .. } | Resp3Frame::Push { data, .. } => {
            push_array(out, data.iter(), base64)
        }
        Resp3Frame::Set { data, .. } => push_array(out, data.iter(), base64),
        Resp3Frame::Map { data, .. } => {
            out.push(b'[');
            for (i, (k, v)) in data.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_value(out, k, base64);
                out.push(b',');
                push_value(out, v, base64);
            }
            out.push(b']');
        }
        _ => out.extend_from_slice(b"null"),
    }
}

fn push_array<'a>(out: &mut Vec<u8>, items: impl Iterator<Item = &'a Resp3Frame>, base64: bool) {
    out.push(b'[');
    for (i, f) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_value(out, f, base64);
    }
    out.push(b']');
}

/// The text of an error reply, or `None` for any other frame.
pub fn error_text(frame: &Resp3Frame) -> Option<String> {
    match frame {
        Resp3Frame::SimpleError { data, .. } => Some(data.to_string()),
        Resp3Frame::BlobError { data, .. } => Some(String::from_utf8_lossy(data).into_owned()),
        _ => None,
    }
}

/// `{"error":"..."}`
pub fn push_error(out: &mut Vec<u8>, msg: &str) {
    out.extend_from_slice(b"{\"error\":");
    push_str(out, msg);
    out.push(b'}');
}

/// `{"result":...}`, or `{"error":"..."}` when the reply is an error.
pub fn push_outcome(out: &mut Vec<u8>, frame: &Resp3Frame, base64: bool) {
    if let Some(e) = error_text(frame) {
        push_error(out, &e);
    } else {
        out.extend_from_slice(b"{\"result\":");
        push_value(out, frame, base64);
        out.push(b'}');
    }
}

/// A whole body of one outcome per reply, in order: `[{...},{...}]`.
pub fn outcomes(frames: &[Resp3Frame], base64: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * frames.len() + 2);
    out.push(b'[');
    for (i, f) in frames.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_outcome(&mut out, f, base64);
    }
    out.push(b']');
    out
}

/// A body of one error.
pub fn error_body(msg: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 12);
    push_error(&mut out, msg);
    out
}

/// The parsers' invariants on arbitrary bytes, shared by the fuzz target
/// (`fuzz/fuzz_targets/bridge_request.rs`) and its proptest twin: no
/// panic, and whatever is accepted has exactly the protocol's shape.
///
/// The first byte picks the parser (and the pipeline limit), the rest is
/// the body or path.
#[doc(hidden)]
pub fn check_invariants(data: &[u8]) {
    let Some((&ctl, body)) = data.split_first() else {
        return;
    };
    let valid_name = |c: &Command| {
        !c.is_empty()
            && !c[0].is_empty()
            && c[0]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
    };
    match ctl % 3 {
        0 => match parse_command(body) {
            Ok(c) => {
                assert!(valid_name(&c));
                let v: serde_json::Value = serde_json::from_slice(body).expect("accepted, so JSON");
                let a = v.as_array().expect("accepted, so an array");
                assert_eq!(a.len(), c.len());
                for (j, arg) in a.iter().zip(&c) {
                    match j {
                        serde_json::Value::String(s) => assert_eq!(s.as_bytes(), arg.as_ref()),
                        serde_json::Value::Bool(b) => {
                            assert_eq!(arg.as_ref(), b.to_string().as_bytes())
                        }
                        serde_json::Value::Number(_) => assert!(!arg.is_empty()),
                        other => panic!("accepted an argument that is {other}"),
                    }
                }
            }
            Err(e) => assert!(e.0.starts_with("ERR "), "{e}"),
        },
        1 => {
            let max = usize::from(ctl >> 2) + 1;
            let strict = parse_commands(body, max);
            match &strict {
                Ok(cmds) => {
                    assert!(!cmds.is_empty() && cmds.len() <= max);
                    assert!(cmds.iter().all(valid_name));
                }
                Err(e) => assert!(e.0.starts_with("ERR "), "{e}"),
            }
            // The pipeline's parser agrees with it wherever it accepts
            // every command, and refuses no more.
            match parse_pipeline(body, max) {
                Ok(entries) => {
                    assert!(!entries.is_empty() && entries.len() <= max);
                    let ok: Vec<&Command> =
                        entries.iter().filter_map(|e| e.as_ref().ok()).collect();
                    assert!(ok.iter().all(|c| valid_name(c)));
                    if ok.len() == entries.len() {
                        let strict = strict.as_ref().expect("every command valid");
                        assert_eq!(strict.iter().collect::<Vec<_>>(), ok);
                    } else {
                        assert!(strict.is_err());
                    }
                    for e in entries.iter().filter_map(|e| e.as_ref().err()) {
                        assert!(e.0.starts_with("ERR "), "{e}");
                    }
                }
                Err(e) => {
                    assert!(e.0.starts_with("ERR "), "{e}");
                    assert!(
                        strict.is_err(),
                        "refused a body every command of which is valid"
                    );
                }
            }
        }
        _ => {
            let path = String::from_utf8_lossy(body);
            match parse_path(&path, None) {
                Ok(c) => {
                    assert!(valid_name(&c));
                    let segments = path.strip_prefix('/').unwrap_or(&path).split('/').count();
                    assert_eq!(c.len(), segments, "one argument per segment");
                }
                Err(e) => assert!(e.0.starts_with("ERR "), "{e}"),
            }
        }
    }
    // Any bytes survive base64 in a reply; "OK" is the one string left as is.
    let mut out = Vec::new();
    push_value(
        &mut out,
        &Resp3Frame::BlobString {
            data: Bytes::copy_from_slice(body),
            attributes: None,
        },
        true,
    );
    let s: String = serde_json::from_slice(&out).expect("a JSON string");
    if body == b"OK" {
        assert_eq!(s, "OK");
    } else {
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .expect("base64"),
            body
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fred::types::Resp3Frame as F;

    fn blob(s: &[u8]) -> F {
        F::BlobString {
            data: Bytes::copy_from_slice(s),
            attributes: None,
        }
    }
    fn args(c: &Command) -> Vec<&[u8]> {
        c.iter().map(|b| b.as_ref()).collect()
    }

    #[test]
    fn json_commands_take_strings_numbers_and_booleans() {
        let c = parse_command(br#"["SET","k",12,"EX",1.5,true,false,-3]"#).unwrap();
        assert_eq!(
            args(&c),
            [
                &b"SET"[..],
                b"k",
                b"12",
                b"EX",
                b"1.5",
                b"true",
                b"false",
                b"-3"
            ]
        );
        for bad in [
            &br#"["SET",null]"#[..],
            br#"["SET",{"a":1}]"#,
            br#"["SET",["x"]]"#,
            b"[]",
            b"{}",
            b"\"GET\"",
            b"[\"GET\"] x",
        ] {
            assert!(
                parse_command(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn unicode_and_escapes_reach_redis_as_utf8() {
        let c = parse_command("[\"SET\",\"k\",\"h\\u00e9llo \u{1F600}\"]".as_bytes()).unwrap();
        assert_eq!(c[2].as_ref(), "héllo 😀".as_bytes());
        assert!(
            parse_command(b"[\"SET\",\"\xff\"]").is_err(),
            "invalid UTF-8 is refused"
        );
    }

    #[test]
    fn pipelines_are_bounded_while_reading() {
        assert_eq!(
            parse_commands(br#"[["GET","a"],["INCR","b"]]"#, 10)
                .unwrap()
                .len(),
            2
        );
        let many = format!("[{}]", [r#"["GET","a"]"#; 11].join(","));
        let e = parse_commands(many.as_bytes(), 10).unwrap_err();
        assert!(e.0.contains("more than 10 commands"), "{e}");
        assert!(parse_commands(b"[]", 10).is_err());
        assert!(parse_commands(b"[[]]", 10).is_err());
        assert!(
            parse_commands(br#"[["GET"]] ["x"]"#, 10).is_err(),
            "trailing data"
        );
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_commands(deep.as_bytes(), 10).is_err());
        assert!(parse_command(deep.as_bytes()).is_err());
    }

    #[test]
    fn a_pipeline_answers_a_bad_command_in_its_place() {
        let ok = |e: &Result<Command, ParseError>| e.as_ref().map(|c| args(c).concat()).ok();
        let got = parse_pipeline(
            br#"[["SET","a","\ud800"],["GET","a"],["SET",{"x":1}],[],["FLUSHALL ASYNC"],["GET","\ud83d\ude00"]]"#,
            10,
        )
        .unwrap();
        assert_eq!(got.len(), 6);
        let e = &got[0].as_ref().unwrap_err().0;
        assert!(
            e.starts_with("ERR failed to parse this command as JSON") && e.contains("escape"),
            "{e}"
        );
        assert_eq!(ok(&got[1]), Some(b"GETa".to_vec()));
        assert!(got[2]
            .as_ref()
            .unwrap_err()
            .0
            .contains("a string, a number or a boolean"));
        assert_eq!(got[3].as_ref().unwrap_err().0, "ERR empty command");
        assert!(got[4]
            .as_ref()
            .unwrap_err()
            .0
            .starts_with("ERR unknown command"));
        assert_eq!(ok(&got[5]), Some("GET😀".as_bytes().to_vec()));
        // Valid ones, in one pass.
        let got = parse_pipeline(br#"[["GET","a"],["INCR","b"]]"#, 10).unwrap();
        assert!(got.iter().all(Result::is_ok));
        // Nested too deep is one command's fault too, found without
        // recursion (serde_json skips a value with a loop).
        let deep = format!(
            "[[{}{}],[\"PING\"]]",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let got = parse_pipeline(deep.as_bytes(), 10).unwrap();
        assert!(got[0].is_err() && got[1].is_ok());
        // Refused whole: not JSON, not an array of commands, empty, too
        // many, trailing data, not UTF-8.
        let many = format!("[{}]", [r#"["GET","\ud800"]"#; 11].join(","));
        for bad in [
            &b"["[..],
            br#"[["GET","a"],"GET"]"#,
            br#"["GET","a"]"#,
            br#"{"a":1}"#,
            b"[]",
            many.as_bytes(),
            br#"[["GET","\ud800"]] x"#,
            b"[[\"GET\",\"\xff\"]]",
        ] {
            assert!(
                parse_pipeline(bad, 10).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let e = parse_pipeline(many.as_bytes(), 10).unwrap_err();
        assert!(e.0.contains("more than 10 commands"), "{e}");
    }

    #[test]
    fn the_path_form_decodes_each_segment() {
        let c = parse_path("/set/a%2Fb/h%C3%A9/EX/100", None).unwrap();
        assert_eq!(
            args(&c),
            [&b"set"[..], b"a/b", "hé".as_bytes(), b"EX", b"100"]
        );
        let c = parse_path("/set/k", Some(Bytes::from_static(b"\x00\xffbody"))).unwrap();
        assert_eq!(args(&c), [&b"set"[..], b"k", b"\x00\xffbody"]);
        assert_eq!(parse_path("/get/k", Some(Bytes::new())).unwrap().len(), 2);
        assert!(parse_path("/", None).is_err());
        assert!(parse_path("/get/%zz", None).is_err());
        assert!(parse_path("/get/%4", None).is_err());
    }

    #[test]
    fn command_names_are_plain_words() {
        assert!(parse_command(br#"["JSON.GET","k"]"#).is_ok());
        for bad in [
            &br#"["FLUSHALL ASYNC"]"#[..],
            br#"[" FLUSHALL"]"#,
            br#"["GET\u0000","k"]"#,
            br#"["","k"]"#,
        ] {
            assert!(
                parse_command(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_path("/flushall%20async", None).is_err());
    }

    #[test]
    fn replies_become_json_with_base64_except_ok() {
        let mut out = Vec::new();
        push_value(&mut out, &blob(b"\x00\xff"), true);
        assert_eq!(out, br#""AP8=""#);
        let reply = F::Array {
            data: vec![
                F::SimpleString {
                    data: Bytes::from_static(b"OK"),
                    attributes: None,
                },
                blob(b"hi"),
                F::Null,
                F::Number {
                    data: -7,
                    attributes: None,
                },
                F::Array {
                    data: vec![blob(b"x")],
                    attributes: None,
                },
            ],
            attributes: None,
        };
        let mut out = Vec::new();
        push_value(&mut out, &reply, true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"["OK","aGk=",null,-7,["eA=="]]"#
        );
        let mut out = Vec::new();
        push_value(&mut out, &reply, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"["OK","hi",null,-7,["x"]]"#
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The fuzz target's twin: arbitrary bytes, and bytes shaped like
        /// the protocol (so the accepting paths are reached too).
        #[test]
        fn parsers_keep_their_invariants_on_any_bytes(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            check_invariants(&data);
        }

        #[test]
        fn parsers_keep_their_invariants_on_protocol_shaped_input(
            ctl in 0u8..=255,
            cmds in proptest::collection::vec(proptest::collection::vec("[A-Za-z0-9._%/ -]{0,6}|[0-9]{1,3}|true", 0..5), 0..4),
        ) {
            let body = match ctl % 3 {
                0 => serde_json::to_vec(cmds.first().unwrap_or(&vec![])).unwrap(),
                1 => serde_json::to_vec(&cmds).unwrap(),
                _ => format!("/{}", cmds.concat().join("/")).into_bytes(),
            };
            let mut data = vec![ctl];
            data.extend_from_slice(&body);
            check_invariants(&data);
        }
    }

    #[test]
    fn errors_are_never_encoded() {
        let err = F::SimpleError {
            data: "WRONGTYPE Operation against a key".into(),
            attributes: None,
        };
        let body = outcomes(&[blob(b"v"), err], true);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"[{"result":"dg=="},{"error":"WRONGTYPE Operation against a key"}]"#
        );
        assert_eq!(
            error_body("ERR \"quoted\""),
            br#"{"error":"ERR \"quoted\""}"#
        );
    }
}
