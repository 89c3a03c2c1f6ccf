//! Model check of the tag rules (issue 15): random sets with tags,
//! invalidations and reads against a table of versions ([`TagVersions`]
//! and [`tags_valid`]), compared with a naive model that keeps the whole
//! history and says an entry is valid iff none of its tags was invalidated
//! after the entry was written.

use std::collections::HashMap;

use edgecache::{check_tags, tags_valid, TagVersions};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Set key `k` with these tags (indexes into TAGS, duplicates allowed).
    Set(u8, Vec<u8>),
    /// Invalidate these tags.
    Invalidate(Vec<u8>),
    /// Read key `k`.
    Read(u8),
    /// Delete key `k`.
    Delete(u8),
}

const TAGS: [&str; 5] = ["a", "b", "product:7", "Zoë", "user:42"];

fn tags_of(ix: &[u8]) -> Vec<&'static str> {
    ix.iter()
        .map(|&i| TAGS[usize::from(i) % TAGS.len()])
        .collect()
}

fn op() -> impl Strategy<Value = Op> {
    let tags = proptest::collection::vec(0u8..5, 0..4);
    prop_oneof![
        3 => (0u8..6, tags.clone()).prop_map(|(k, t)| Op::Set(k, t)),
        2 => proptest::collection::vec(0u8..5, 1..3).prop_map(Op::Invalidate),
        4 => (0u8..6).prop_map(Op::Read),
        1 => (0u8..6).prop_map(Op::Delete),
    ]
}

/// The naive model: every event with its time.
#[derive(Default)]
struct Model {
    now: u64,
    /// key -> (written at, tags)
    entries: HashMap<u8, (u64, Vec<&'static str>)>,
    /// (time, tag) of every invalidation.
    invalidations: Vec<(u64, &'static str)>,
}

impl Model {
    fn read(&mut self, k: u8) -> bool {
        let Some((at, tags)) = self.entries.get(&k) else {
            return false;
        };
        let valid = !self
            .invalidations
            .iter()
            .any(|(t, tag)| t > at && tags.contains(tag));
        if !valid {
            // Dropped as if expired.
            self.entries.remove(&k);
        }
        valid
    }
}

/// The real thing: entries record versions; the table holds the current ones.
#[derive(Default)]
struct Real {
    table: TagVersions,
    entries: HashMap<u8, Vec<(String, u64)>>,
}

impl Real {
    fn read(&mut self, k: u8) -> bool {
        let Some(recorded) = self.entries.get(&k) else {
            return false;
        };
        let valid = tags_valid(recorded.iter().map(|(t, v)| (t.as_str(), *v)), |t| {
            self.table.version(t)
        });
        assert_eq!(valid, self.table.valid(recorded));
        if !valid {
            self.entries.remove(&k);
        }
        valid
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn tag_versions_match_the_history_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut model = Model::default();
        let mut real = Real::default();
        for op in ops {
            model.now += 1;
            match op {
                Op::Set(k, t) => {
                    let tags = tags_of(&t);
                    let checked = check_tags(&tags).unwrap();
                    // Deduplicated, first occurrence kept, order kept.
                    let mut dedup: Vec<&str> = Vec::new();
                    for x in &tags {
                        if !dedup.contains(x) {
                            dedup.push(x);
                        }
                    }
                    prop_assert_eq!(&checked, &dedup);
                    real.entries.insert(k, real.table.record(&checked));
                    model.entries.insert(k, (model.now, tags));
                }
                Op::Invalidate(t) => {
                    let tags = tags_of(&t);
                    real.table.invalidate(&tags);
                    for tag in tags {
                        model.invalidations.push((model.now, tag));
                    }
                }
                Op::Read(k) => {
                    prop_assert_eq!(real.read(k), model.read(k), "read of {}", k);
                }
                Op::Delete(k) => {
                    real.entries.remove(&k);
                    model.entries.remove(&k);
                }
            }
            // Every tag's version is the number of its invalidations.
            for tag in TAGS {
                let n = model.invalidations.iter().filter(|(_, t)| *t == tag).count() as u64;
                prop_assert_eq!(real.table.version(tag), n);
            }
        }
        // At the end, every entry agrees too.
        for k in 0..6 {
            prop_assert_eq!(real.read(k), model.read(k), "final read of {}", k);
        }
    }
}
