//! The in-flight rule of the Redis tier, free of I/O: when may a value read
//! from Redis, or just written there, be kept in this isolate's L1?
//!
//! A read of a key that overlaps a mutation of the same key (a write, a
//! delete, an increment, a pattern delete, a `clear`) may have seen the
//! state from before the mutation. Putting that answer in L1 would serve
//! the old value for up to `l1Ttl` after the mutation was acknowledged. So:
//!
//! * a **read** may promote its answer only if no mutation of its key was in
//!   flight at any moment between the read's start and its promotion;
//! * a **mutation** may promote its own result (a `set`'s value, an
//!   `incr`'s count) only if no later mutation of the key began before it
//!   finished;
//! * a **pattern** mutation (a `deletePattern`, `clear`: a Redis glob over
//!   Redis keys) counts as a mutation of every key it matches, from its
//!   start to its end: it blocks their promotions while it runs, and those
//!   of reads and writes of them that began before it ended; other keys
//!   are untouched, so a slow pattern delete does not empty L1 of the rest;
//! * an **invalidation** that arrives from elsewhere (the coherence log of
//!   another isolate's write) counts as a mutation that began and ended at
//!   once.
//!
//! Every operation takes a [`Ticket`] from one counter, so "began before"
//! is a comparison of numbers. The JS `TieredCache` (through wasm,
//! `FenceCore`) and the Rust Workers binding (`edgecache::worker`) both ask
//! this one type, so the two bindings cannot drift.
//!
//! Memory: a key is remembered only while a mutation of it is in flight, or
//! while a read that began before its last mutation may still be running.
//! When no read is in flight, idle marks are dropped; past
//! [`Fence::MAX_MARKS`] idle marks they are dropped anyway and every read
//! in flight loses its promotion (safe: a read that may not promote still
//! answers its caller).
//!
//! Keys are remembered by a 64-bit hash, in a small vector (a few marks
//! at a time; a hash map's code was a tenth of the npm package's wasm). Two
//! keys whose hashes collide share a mark, which can only keep more values
//! out of L1, never let one in: the shared mark is busy when either key is,
//! ended when the later of them ended, and began with the later write.

use crate::glob::Glob;

/// When an operation began, on the fence's own counter.
pub type Ticket = u64;

/// A pattern mutation, in flight or ended while something may still
/// overlap it.
#[derive(Debug)]
struct Pattern {
    glob: Glob,
    ticket: Ticket,
    /// When it ended; `None` while in flight.
    ended: Option<Ticket>,
}

impl Pattern {
    /// Whether it touches `key` and overlaps an operation that began at `t`.
    fn blocks(&self, key: &str, t: Ticket) -> bool {
        self.ended.map_or(true, |e| e > t) && self.glob.matches(key)
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Mark {
    /// Mutations of the key in flight.
    busy: u32,
    /// The ticket of the latest mutation of the key to begin.
    begun: Ticket,
    /// The tick at which the latest mutation of the key ended.
    ended: Ticket,
}

/// The in-flight rule (see the module docs).
///
/// ```
/// use edgecache::Fence;
/// let mut f = Fence::new();
/// let read = f.read();                 // a GET of "k" is sent
/// let del = f.write("k");              // a delete of "k" begins meanwhile
/// assert!(!f.may_promote("k", read));  // the GET may have read the old value
/// f.write_done("k", del);
/// assert!(!f.may_promote("k", read));  // still not: it overlapped the delete
/// f.read_done();                       // ask before this: then it is forgotten
/// let later = f.read();                // a read that begins after the delete
/// assert!(f.may_promote("k", later));
/// f.read_done();
/// ```
#[derive(Debug, Default)]
pub struct Fence {
    seq: Ticket,
    /// Reads and writes that began at or before this tick may not promote.
    floor: Ticket,
    reads: u32,
    marks: Vec<(u64, Mark)>,
    patterns: Vec<Pattern>,
}

/// FNV-1a: small, and a collision only costs a promotion (module docs).
fn hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Fence {
    /// The most idle marks kept while reads are in flight (see the module docs).
    pub const MAX_MARKS: usize = 1024;
    /// The most ended patterns kept while anything is in flight.
    pub const MAX_PATTERNS: usize = 64;

    /// A fence with nothing in flight.
    pub fn new() -> Self {
        Self::default()
    }

    fn tick(&mut self) -> Ticket {
        self.seq += 1;
        self.seq
    }

    fn mark(&self, key: &str) -> Option<&Mark> {
        let h = hash(key);
        self.marks.iter().find(|(k, _)| *k == h).map(|(_, m)| m)
    }

    fn mark_mut(&mut self, key: &str) -> Option<&mut Mark> {
        let h = hash(key);
        self.marks.iter_mut().find(|(k, _)| *k == h).map(|(_, m)| m)
    }

    fn mark_or_new(&mut self, key: &str) -> &mut Mark {
        let h = hash(key);
        let i = match self.marks.iter().position(|(k, _)| *k == h) {
            Some(i) => i,
            None => {
                self.marks.push((h, Mark::default()));
                self.marks.len() - 1
            }
        };
        &mut self.marks[i].1
    }

    /// A read begins: its ticket, for [`Fence::may_promote`]. Pair it with
    /// [`Fence::read_done`] once the read has promoted (or not).
    pub fn read(&mut self) -> Ticket {
        self.reads = self.reads.saturating_add(1);
        self.tick()
    }

    /// A read that began with [`Fence::read`] has finished. Ask
    /// [`Fence::may_promote`] before this call, never after: the read's
    /// ticket is then forgotten.
    pub fn read_done(&mut self) {
        self.reads = self.reads.saturating_sub(1);
        self.prune();
    }

    /// Whether a read of `key` that began at `ticket` may put its answer in
    /// L1 now: no mutation of `key` (nor a global one) has been in flight
    /// since it began.
    pub fn may_promote(&self, key: &str, ticket: Ticket) -> bool {
        if ticket <= self.floor || self.patterns.iter().any(|p| p.blocks(key, ticket)) {
            return false;
        }
        match self.mark(key) {
            None => true,
            Some(m) => m.busy == 0 && m.ended < ticket,
        }
    }

    /// A mutation of `key` begins: its ticket, for [`Fence::write_done`].
    pub fn write(&mut self, key: &str) -> Ticket {
        let t = self.tick();
        let m = self.mark_or_new(key);
        m.busy += 1;
        m.begun = t;
        t
    }

    /// The mutation of `key` that began at `ticket` has finished (answered
    /// or failed). Returns whether it may put its own result in L1: no
    /// later mutation of `key` began before now, and no pattern mutation
    /// that matches it overlapped it.
    pub fn write_done(&mut self, key: &str, ticket: Ticket) -> bool {
        let end = self.tick();
        let own = match self.mark_mut(key) {
            Some(m) => {
                m.busy = m.busy.saturating_sub(1);
                m.ended = end;
                m.begun == ticket
            }
            // Dropped by a global invalidation: not the latest any more.
            None => false,
        };
        let ok = own && ticket > self.floor && !self.patterns.iter().any(|p| p.blocks(key, ticket));
        self.prune();
        ok
    }

    /// A mutation of every key that the Redis glob `pattern` matches (a
    /// pattern delete, `clear`) begins: its ticket, for
    /// [`Fence::write_pattern_done`].
    ///
    /// ```
    /// use edgecache::Fence;
    /// let mut f = Fence::new();
    /// let read = f.read();
    /// let del = f.write_pattern("app:[vn]:r|user:*");
    /// assert!(!f.may_promote("app:v:r|user:1", read)); // it may be deleted
    /// assert!(f.may_promote("app:v:r|page:1", read));  // untouched
    /// f.write_pattern_done(del);
    /// assert!(!f.may_promote("app:v:r|user:1", read)); // it overlapped
    /// ```
    pub fn write_pattern(&mut self, pattern: &str) -> Ticket {
        let ticket = self.tick();
        self.patterns.push(Pattern {
            glob: Glob::new(pattern),
            ticket,
            ended: None,
        });
        ticket
    }

    /// The pattern mutation that began at `ticket` has finished.
    pub fn write_pattern_done(&mut self, ticket: Ticket) {
        let end = self.tick();
        if let Some(p) = self.patterns.iter_mut().find(|p| p.ticket == ticket) {
            p.ended = Some(end);
        }
        self.prune();
    }

    /// `key` changed elsewhere (another isolate's write, learned from the
    /// coherence log): reads and writes of it in flight may not promote.
    pub fn invalidate(&mut self, key: &str) {
        let t = self.tick();
        let m = self.mark_or_new(key);
        m.begun = t;
        m.ended = t;
    }

    /// Anything may have changed: nothing in flight may promote.
    pub fn invalidate_all(&mut self) {
        self.floor = self.tick();
        // Idle marks and ended patterns are covered by the floor; what is
        // in flight still counts.
        self.marks.retain(|(_, m)| m.busy > 0);
        self.patterns.retain(|p| p.ended.is_none());
    }

    /// Operations in flight: reads, and mutations (pattern ones included).
    pub fn in_flight(&self) -> usize {
        self.reads as usize
            + self.patterns.iter().filter(|p| p.ended.is_none()).count()
            + self
                .marks
                .iter()
                .map(|(_, m)| m.busy as usize)
                .sum::<usize>()
    }

    /// Keys remembered now (for tests and statistics).
    pub fn marks(&self) -> usize {
        self.marks.len()
    }

    fn prune(&mut self) {
        if self.reads == 0 {
            // No read in flight can be affected by an idle mark, and every
            // later read takes a ticket past it.
            if self.marks.iter().any(|(_, m)| m.busy == 0) {
                self.marks.retain(|(_, m)| m.busy > 0);
            }
            // Ended patterns matter to writes in flight too.
            if self.marks.is_empty() {
                self.patterns.retain(|p| p.ended.is_none());
            }
        } else if self.marks.len() > Self::MAX_MARKS {
            self.invalidate_all();
        }
        if self.patterns.len() > Self::MAX_PATTERNS {
            self.invalidate_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_overlapping_a_write_does_not_promote() {
        let mut f = Fence::new();
        let r = f.read();
        let w = f.write("k");
        assert!(!f.may_promote("k", r));
        assert!(f.may_promote("other", r));
        assert!(f.write_done("k", w));
        assert!(!f.may_promote("k", r));
        f.read_done();
        let r2 = f.read();
        assert!(f.may_promote("k", r2));
    }

    #[test]
    fn a_read_that_begins_during_a_write_does_not_promote() {
        let mut f = Fence::new();
        let w = f.write("k");
        let r = f.read();
        assert!(!f.may_promote("k", r));
        f.write_done("k", w);
        assert!(!f.may_promote("k", r));
    }

    #[test]
    fn a_write_overtaken_by_a_later_one_does_not_promote() {
        let mut f = Fence::new();
        let set = f.write("k");
        let del = f.write("k");
        assert!(f.write_done("k", del));
        assert!(!f.write_done("k", set));
        // Both orders of completion.
        let a = f.write("k");
        let b = f.write("k");
        assert!(!f.write_done("k", a));
        assert!(f.write_done("k", b));
    }

    #[test]
    fn a_pattern_mutation_blocks_what_it_matches_and_overlaps() {
        let mut f = Fence::new();
        let r = f.read();
        let w = f.write("k");
        let other = f.write("y");
        let p = f.write_pattern("[kx]");
        let r2 = f.read();
        assert!(!f.may_promote("x", r2));
        assert!(f.may_promote("z", r2), "a key the pattern does not match");
        f.write_pattern_done(p);
        assert!(!f.may_promote("x", r) && !f.may_promote("x", r2));
        assert!(!f.write_done("k", w));
        assert!(f.write_done("y", other));
        let r3 = f.read();
        assert!(f.may_promote("x", r3) && f.may_promote("k", r3));
        let w2 = f.write("x");
        assert!(f.write_done("x", w2), "a write after the pattern ended");
    }

    #[test]
    fn ended_patterns_are_dropped_once_nothing_overlaps_them() {
        let mut f = Fence::new();
        for _ in 0..(2 * Fence::MAX_PATTERNS) {
            let p = f.write_pattern("*");
            f.write_pattern_done(p);
        }
        assert_eq!(f.in_flight(), 0);
        let r = f.read();
        assert!(f.may_promote("k", r));
    }

    #[test]
    fn an_invalidation_from_elsewhere_counts_as_a_mutation() {
        let mut f = Fence::new();
        let r = f.read();
        let w = f.write("k");
        f.invalidate("k");
        assert!(!f.may_promote("k", r));
        assert!(!f.write_done("k", w));
        let r2 = f.read();
        assert!(f.may_promote("k", r2));
    }

    #[test]
    fn marks_are_dropped_when_no_read_is_in_flight() {
        let mut f = Fence::new();
        for i in 0..100 {
            let k = format!("k{i}");
            let w = f.write(&k);
            f.write_done(&k, w);
        }
        assert_eq!(f.marks(), 0);
        let _r = f.read();
        let w = f.write("a");
        f.write_done("a", w);
        assert_eq!(f.marks(), 1);
        f.read_done();
        assert_eq!(f.marks(), 0);
        assert_eq!(f.in_flight(), 0);
    }

    #[test]
    fn marks_stay_bounded_while_a_read_never_finishes() {
        let mut f = Fence::new();
        let stuck = f.read();
        for i in 0..(3 * Fence::MAX_MARKS) {
            let k = format!("k{i}");
            let w = f.write(&k);
            f.write_done(&k, w);
            assert!(f.marks() <= Fence::MAX_MARKS + 1);
        }
        // Past the bound the stuck read lost its promotion, for every key.
        assert!(!f.may_promote("never-written", stuck));
    }

    #[test]
    fn a_busy_mark_survives_global_invalidation() {
        let mut f = Fence::new();
        let w = f.write("k");
        f.invalidate_all();
        let r = f.read();
        assert!(!f.may_promote("k", r), "the write is still in flight");
        f.write_done("k", w);
        assert!(!f.may_promote("k", r));
    }
}
