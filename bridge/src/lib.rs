//! `edgecache-bridge`: the Upstash REST protocol in front of any Redis, so
//! that edge isolates (and `@upstash/redis`, unchanged) reach a Redis of
//! their own over HTTP.
//!
//! - [`protocol`]: requests to commands and replies to JSON, pure functions;
//! - [`policy`]: which commands a token may run;
//! - [`backend`]: Redis: commands, pipelines and transactions on
//!   [`direct`] connections (a cluster through [`cluster`]; a sentinel
//!   URL through fred);
//! - [`cluster`]: Redis Cluster: slot routing, split multi-key commands,
//!   commands on every master, redirects, topology refresh;
//! - [`direct`]: a multiplexed RESP connection that batches writes;
//! - [`server`]: HTTP with bounded connections, timeouts and graceful shutdown;
//! - [`metrics`]: `/metrics` in the Prometheus text format.
//! - [`sse`]: `/subscribe` and `/psubscribe` as server-sent events, one
//!   Redis connection per stream.
#![forbid(unsafe_code)]

pub mod backend;
pub mod cluster;
pub mod direct;
pub mod metrics;
pub mod policy;
pub mod protocol;
pub mod server;
pub mod sse;
