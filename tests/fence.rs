//! The in-flight rule ([`edgecache::Fence`]) against a plain model: random
//! interleavings of reads, writes, global mutations and invalidations on a
//! few keys, and after every step the fence's answers compared with what
//! the rule says, read by read and write by write.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashSet;

use edgecache::{Fence, Ticket};
use proptest::prelude::*;

const KEYS: [&str; 3] = ["a", "b", "c"];

#[derive(Clone, Debug)]
enum Op {
    Read,
    ReadDone(usize),
    Write(usize),
    WriteDone(usize),
    WriteAll,
    WriteAllDone,
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
        1 => Just(Op::WriteAll),
        1 => Just(Op::WriteAllDone),
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
    globals: usize,
}

impl Model {
    fn mutation(&mut self, key: Option<usize>) {
        for r in &mut self.reads {
            match key {
                Some(k) => {
                    r.tainted.insert(k);
                }
                None => r.all = true,
            }
        }
        for w in &mut self.writes {
            if key.is_none() || key == Some(w.key) {
                w.overtaken = true;
            }
        }
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
                    let tainted = m.writes.iter().map(|w| w.key).collect();
                    m.reads.push(Read { ticket, tainted, all: m.globals > 0 });
                }
                Op::ReadDone(i) if !m.reads.is_empty() => {
                    m.reads.remove(i % m.reads.len());
                    f.read_done();
                }
                Op::Write(k) => {
                    m.mutation(Some(k));
                    let ticket = f.write(KEYS[k]);
                    m.writes.push(Write { key: k, ticket, overtaken: m.globals > 0 });
                }
                Op::WriteDone(i) if !m.writes.is_empty() => {
                    let w = m.writes.remove(i % m.writes.len());
                    prop_assert_eq!(f.write_done(KEYS[w.key], w.ticket), !w.overtaken);
                }
                Op::WriteAll => {
                    m.mutation(None);
                    m.globals += 1;
                    f.write_all();
                }
                Op::WriteAllDone if m.globals > 0 => {
                    m.globals -= 1;
                    m.mutation(None);
                    f.write_all_done();
                }
                Op::Invalidate(k) => {
                    m.mutation(Some(k));
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
            prop_assert_eq!(f.in_flight(), m.reads.len() + m.writes.len() + m.globals);
        }
    }
}
