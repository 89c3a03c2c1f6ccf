//! Coherence across isolates, the rules free of I/O: an invalidation log
//! per prefix, kept in Redis itself as a Redis Stream, and each cache's
//! lease on its L1.
//!
//! Writers append an entry after every mutation, in the same pipeline
//! ([`Log::append`], [`Lease::append`]); readers remember how far they have
//! read and read on from there ([`Lease::begin_read`],
//! [`Lease::finish_read`]) before serving an L1 hit whose lease has
//! expired, or alongside any request to Redis they make anyway. What a
//! read cannot vouch for (the log trimmed past its position, Redis flushed
//! or restarted, the cache away too long) drops all of L1: gaps are never
//! silent. The format, the commands and the guarantee they give are
//! specified in `docs/REDIS.md` ("Coherence across isolates") and pinned
//! by `tests/fixtures/coherence.json`, which the JS side can run too.
//!
//! The division of labour: `log` knows the keys, the entries and the
//! exact commands and replies; `lease` is the reader's state machine
//! (position, epoch, lease, counters). Neither reads a clock (time is
//! passed in, from the cache's own monotonic clock) nor does I/O; the
//! bindings send the commands and feed the invalidations to their L1 and
//! their [`Fence`](crate::Fence).

pub(crate) mod lease;
pub(crate) mod log;
