//! # edgecache
//!
//! An LRU + TTL cache for edge runtimes, written in Rust and compiled to
//! WebAssembly. This crate is the pure-Rust core; it builds and tests on the
//! host. The wasm-bindgen glue for the JavaScript package lives in the
//! `wasm` module and is compiled only for `wasm32`.
//!
//! * [`Lru`]: the slot engine (recency, expiry, bytes, statistics).
//! * [`Store`]: a complete cache for Rust callers, with [`Scope`]s.
//! * [`Glob`]: Redis `KEYS` patterns.
//! * [`Clock`]: injected time.
//! * [`Layout`], [`Breaker`], [`promotion_ttl`], [`Fence`]: the rules of
//!   the Redis tier (key layout, circuit breaker, how long L1 keeps an L2
//!   value, when a read or write under way may put its value in L1).
//! * [`command_body`], [`decode_pipeline`]: the Upstash REST protocol.
//! * [`check_tags`], [`tags_valid`], [`TagVersions`]: tags (the rule of a
//!   tag string, and when a tagged entry is still valid).
//! * [`Log`], [`Lease`]: coherence across isolates, the rules (an
//!   invalidation log in Redis, and each cache's lease on its L1).
//! * `worker` (cargo feature `worker`): the Cloudflare Workers binding for
//!   Rust Workers (workers-rs), an L1 + Redis cache built from the Worker's
//!   bindings with `EdgeCache::from_env`. The feature leaves out the npm
//!   package's wasm-bindgen exports.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod clock;
mod coherence;
mod envelope;
mod error;
mod fence;
mod glob;
mod layout;
mod lru;
mod rest;
mod scope;
mod secure_key;
mod store;
mod tags;
mod tier;

// The npm package's wasm-bindgen exports. A Rust Worker (feature
// `worker`) links this crate into its own wasm, which must not carry them.
#[cfg(all(target_arch = "wasm32", not(feature = "worker")))]
#[doc(hidden)]
pub mod wasm;
#[cfg(all(target_arch = "wasm32", not(feature = "worker")))]
mod wasm_coherence;
#[cfg(all(target_arch = "wasm32", not(feature = "worker")))]
mod wasm_signer;
#[cfg(all(target_arch = "wasm32", not(feature = "worker")))]
mod wasm_tier;

#[cfg(feature = "worker")]
pub mod worker;

pub use clock::{Clock, ManualClock};
pub use coherence::lease::{
    new_writer_id, CoherenceStats, Gap, Lease, LeaseConfig, Outcome, ReadTicket, DEFAULT_BATCH,
    DEFAULT_MAX_AWAY, DEFAULT_MAX_STALENESS,
};
pub use coherence::log::{
    decode_range, Command, Entry, Log, Op, RawEntry, StreamId, LOG_MAXLEN, MAX_TARGETS,
};
pub use envelope::{
    Context, Encoding, Opened, Payload, Signer, DEFAULT_MAX_PAYLOAD, ENVELOPE_VERSION,
    ENVELOPE_VERSION_TAGGED, MAC_LABEL, MAX_KEY_ID_LEN, MAX_PAYLOAD_LIMIT, MAX_TAGS_SECTION,
    OVERHEAD, TAG_LEN,
};
pub use error::{Error, Result};
pub use fence::{Fence, Ticket};
pub use glob::{glob_match, Glob};
pub use layout::{escape_glob, Kind, Layout, PatternScope, MAX_PREFIX_LEN};
pub use lru::{
    Counters, Inserted, Limits, Lru, NsId, Slot, DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES,
    ENTRY_OVERHEAD, NO_NS, ROOT,
};
pub use rest::{command_body, decode_command, decode_pipeline, pipeline_body, Arg, Reply};
pub use scope::Scope;
pub use secure_key::{
    check_secret, decode_secret, estimated_entropy_bits, generate_secure_key, MAX_SECRET_BYTES,
    MIN_ESTIMATED_BITS, MIN_SECRET_BYTES,
};
pub use store::{Config, Counter, Scoped, Stats, Store, Weigh};
pub use tags::{check_tag, check_tags, tags_valid, TagVersions, MAX_TAGS, MAX_TAG_LEN};
pub use tier::{parse_counter, promotion_ttl, Breaker, BreakerState};
