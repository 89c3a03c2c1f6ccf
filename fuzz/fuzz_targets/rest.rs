//! The REST response decoder on arbitrary bytes: it never panics, never
//! answers a pipeline with the wrong number of results, and whatever it
//! accepts is JSON of exactly the protocol's shape.
//!
//! Input: one control byte (status class, base64 or not, the expected
//! pipeline length), then the body.
//!
//!     cargo +nightly fuzz run rest fuzz/corpus/rest fuzz/seeds/rest -- -max_total_time=600
#![no_main]

use edgecache::{decode_command, decode_pipeline, Reply};
use libfuzzer_sys::fuzz_target;

fn depth(r: &Reply) -> usize {
    match r {
        Reply::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, body)) = data.split_first() else {
        return;
    };
    let status = [200u16, 400, 401, 403, 500, 503, 204, 302][usize::from(ctl & 7)];
    let base64 = ctl & 8 != 0;
    let expected = usize::from(ctl >> 4);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    match decode_command(status, body, base64) {
        Ok(r) => {
            assert!((200..300).contains(&status));
            assert!(parsed.as_ref().is_some_and(|v| v.get("result").is_some()));
            assert!(depth(&r) <= 33);
        }
        Err(e) => assert!(e.code().starts_with("L2_"), "{e:?}"),
    }
    match decode_pipeline(status, body, expected, base64) {
        Ok(out) => {
            assert_eq!(out.len(), expected);
            assert!(parsed.as_ref().is_some_and(|v| v.as_array().is_some_and(|a| a.len() == expected)));
        }
        Err(e) => assert!(e.code().starts_with("L2_"), "{e:?}"),
    }
});
