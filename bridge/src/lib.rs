//! `edgecache-bridge`: the Upstash REST protocol in front of any Redis, so
//! that edge isolates (and `@upstash/redis`, unchanged) reach a Redis of
//! their own over HTTP.
//!
//! - [`protocol`]: requests to commands and replies to JSON, pure functions;
//! - [`policy`]: which commands a token may run;
//! - [`backend`]: Redis through fred (pipelines, transactions, reconnection);
//! - [`server`]: HTTP with bounded connections, timeouts and graceful shutdown.
#![forbid(unsafe_code)]

pub mod backend;
pub mod policy;
pub mod protocol;
pub mod server;
