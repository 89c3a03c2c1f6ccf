//! The bridge's reading of Redis replies (`edgecache_bridge::direct`) on
//! arbitrary bytes: no panic, and the replies (and the verdict on a
//! corrupt stream) do not depend on where the socket reads split them. The
//! invariants live in `edgecache_bridge::direct::check_reply_invariants`,
//! which the proptest twin in `bridge/src/direct.rs` runs in `cargo test`.
//!
//!     cargo +nightly fuzz run redis_reply fuzz/corpus/redis_reply fuzz/seeds/redis_reply -- -max_total_time=600
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    edgecache_bridge::direct::check_reply_invariants(data);
});
