//! The bridge's request parsing on arbitrary bytes: the JSON command body,
//! the pipeline and multi-exec bodies, the path form, and base64 in
//! replies. The invariants live in `edgecache_bridge::protocol::check_invariants`,
//! which the proptest twin in `bridge/src/protocol.rs` runs in `cargo test`.
//!
//!     cargo +nightly fuzz run bridge_request fuzz/corpus/bridge_request fuzz/seeds/bridge_request -- -max_total_time=600
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    edgecache_bridge::protocol::check_invariants(data);
});
