//! The in-flight rule ([`edgecache::Fence`]) against a plain model: random
//! interleavings of reads, writes, global mutations and invalidations on a
//! few keys, and after every step the fence's answers compared with what
//! the rule says, read by read and write by write.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashSet;

use edgecache::{Fence, Ticket};
use proptest::prelude::*;

const KEYS: [&str; 3] = ["a", "b", "c"];
/// Patterns, and the keys of KEYS each matches.
const PATTERNS: [(&str, &[usize]); 4] = [
    ("*", &[0, 1, 2]),
    ("a", &[0]),
    ("[bc]", &[1, 2]),
    ("z*", &[]),
];

#[derive(Clone, Debug)]
enum Op {
    Read,
    ReadDone(usize),
    Write(usize),
    WriteDone(usize),
    WritePattern(usize),
    WritePatternDone(usize),
    Invalidate(usize),
    InvalidateAll,
    Ask(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Read),
        2 => any::<usize>().prop_map(Op::ReadDone),
        3 => (0..KEYS.len()).prop_map(Op::Write),
        2 => any::<usize>().prop_map(Op::WriteDone),
        1 => (0..PATTERNS.len()).prop_map(Op::WritePattern),
        1 => any::<usize>().prop_map(Op::WritePatternDone),
        1 => (0..KEYS.len()).prop_map(Op::Invalidate),
        1 => Just(Op::InvalidateAll),
        4 => (any::<usize>(), 0..KEYS.len()).prop_map(|(r, k)| Op::Ask(r, k)),
    ]
}

/// A read in flight: the keys a mutation touched since it began.
struct Read {
    ticket: Ticket,
    tainted: HashSet<usize>,
    all: bool,
}

/// A write in flight: whether a later mutation of its key (or a global
/// one) began, or an invalidation came, before it ended.
struct Write {
    key: usize,
    ticket: Ticket,
    overtaken: bool,
}

#[derive(Default)]
struct Model {
    reads: Vec<Read>,
    writes: Vec<Write>,
    /// Pattern mutations in flight: their ticket and the keys they match.
    patterns: Vec<(Ticket, &'static [usize])>,
}

impl Model {
    /// A mutation of `keys` (`None`: every key) happens now.
    fn mutation(&mut self, keys: Option<&[usize]>) {
        let hits = |k: usize| keys.map_or(true, |ks| ks.contains(&k));
        for r in &mut self.reads {
            match keys {
                Some(ks) => r.tainted.extend(ks),
                None => r.all = true,
            }
        }
        for w in &mut self.writes {
            if hits(w.key) {
                w.overtaken = true;
            }
        }
    }

    /// The keys that pattern mutations in flight touch.
    fn patterned(&self) -> HashSet<usize> {
        self.patterns
            .iter()
            .flat_map(|(_, ks)| ks.iter().copied())
            .collect()
    }

    fn may_promote(&self, r: &Read, key: usize) -> bool {
        !r.all && !r.tainted.contains(&key)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fence_follows_the_rule(ops in prop::collection::vec(op(), 1..120)) {
        let mut f = Fence::new();
        let mut m = Model::default();
        for op in ops {
            match op {
                Op::Read => {
                    let ticket = f.read();
                    // A read that begins during mutations is tainted by them.
                    let mut tainted: HashSet<usize> = m.writes.iter().map(|w| w.key).collect();
                    tainted.extend(m.patterned());
                    m.reads.push(Read { ticket, tainted, all: false });
                }
                Op::ReadDone(i) if !m.reads.is_empty() => {
                    m.reads.remove(i % m.reads.len());
                    f.read_done();
                }
                Op::Write(k) => {
                    m.mutation(Some(&[k]));
                    let ticket = f.write(KEYS[k]);
                    let overtaken = m.patterned().contains(&k);
                    m.writes.push(Write { key: k, ticket, overtaken });
                }
                Op::WriteDone(i) if !m.writes.is_empty() => {
                    let w = m.writes.remove(i % m.writes.len());
                    prop_assert_eq!(f.write_done(KEYS[w.key], w.ticket), !w.overtaken);
                }
                Op::WritePattern(p) => {
                    let (glob, keys) = PATTERNS[p];
                    m.mutation(Some(keys));
                    let ticket = f.write_pattern(glob);
                    m.patterns.push((ticket, keys));
                }
                Op::WritePatternDone(i) if !m.patterns.is_empty() => {
                    let (ticket, keys) = m.patterns.remove(i % m.patterns.len());
                    m.mutation(Some(keys));
                    f.write_pattern_done(ticket);
                }
                Op::Invalidate(k) => {
                    m.mutation(Some(&[k]));
                    f.invalidate(KEYS[k]);
                }
                Op::InvalidateAll => {
                    m.mutation(None);
                    f.invalidate_all();
                }
                Op::Ask(i, k) if !m.reads.is_empty() => {
                    let r = &m.reads[i % m.reads.len()];
                    prop_assert_eq!(f.may_promote(KEYS[k], r.ticket), m.may_promote(r, k));
                }
                _ => {}
            }
            prop_assert_eq!(f.in_flight(), m.reads.len() + m.writes.len() + m.patterns.len());
        }
    }
}
