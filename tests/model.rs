//! Model-based test: random operations (clock advances included) run against
//! `Store` and against a plain reference model, compared after every step.
//!
//! The model keeps entries in a `Vec` indexed by slot and finds the least
//! recently used one by scanning for the smallest use tick: slow and
//! obviously right, where the store uses linked slots, a hash table, and
//! incrementally maintained counters. The model mirrors the engine's slot
//! allocation (LIFO reuse) and its incremental purge cursor, because which
//! expired entry the purge reclaims decides which live entry is evicted.

#![cfg(not(target_arch = "wasm32"))]

use edgecache::{glob_match, Config, Counters, Limits, ManualClock, Scope, Store, ENTRY_OVERHEAD};
use proptest::prelude::*;

const PURGE_STEP: usize = 4;
const SCOPES: usize = 3; // 0 = root, 1 = tenant t, 2 = tenant t + user u

fn scope_of(i: usize) -> Option<Scope> {
    match i {
        0 => None,
        1 => Some(Scope::tenant("t").unwrap()),
        _ => Some(Scope::new(Some("t"), Some("u")).unwrap()),
    }
}

#[derive(Clone, Debug)]
enum Op {
    Set {
        s: usize,
        key: String,
        value: String,
        ttl: Option<u64>,
    },
    Get {
        s: usize,
        key: String,
    },
    Has {
        s: usize,
        key: String,
    },
    Delete {
        s: usize,
        key: String,
    },
    Ttl {
        s: usize,
        key: String,
    },
    Incr {
        s: usize,
        key: String,
        by: i64,
    },
    Keys {
        s: usize,
        pattern: String,
    },
    DeletePattern {
        s: usize,
        pattern: String,
    },
    Clear {
        s: usize,
    },
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0..SCOPES;
    let key = prop_oneof!["[a-d]", "[a-d][a-d]"];
    let value = prop_oneof!["[0-9]{1,3}", "[a-z]{0,40}"];
    let ttl = prop_oneof![Just(None), Just(Some(0u64)), (1u64..60).prop_map(Some)];
    let pattern = prop_oneof![
        Just("*".to_string()),
        "[a-d?*]{1,3}",
        Just("[a-b]*".to_string()),
        Just("[^a]".to_string())
    ];
    prop_oneof![
        6 => (s.clone(), key.clone(), value, ttl).prop_map(|(s, key, value, ttl)| Op::Set { s, key, value, ttl }),
        5 => (s.clone(), key.clone()).prop_map(|(s, key)| Op::Get { s, key }),
        1 => (s.clone(), key.clone()).prop_map(|(s, key)| Op::Has { s, key }),
        2 => (s.clone(), key.clone()).prop_map(|(s, key)| Op::Delete { s, key }),
        1 => (s.clone(), key.clone()).prop_map(|(s, key)| Op::Ttl { s, key }),
        2 => (s.clone(), key, -3i64..4).prop_map(|(s, key, by)| Op::Incr { s, key, by }),
        1 => (s.clone(), pattern.clone()).prop_map(|(s, pattern)| Op::Keys { s, pattern }),
        1 => (s.clone(), pattern).prop_map(|(s, pattern)| Op::DeletePattern { s, pattern }),
        1 => s.prop_map(|s| Op::Clear { s }),
        3 => (0u64..40).prop_map(Op::Advance),
    ]
}

#[derive(Clone, Debug)]
struct MEntry {
    s: usize,
    key: String,
    value: String,
    charge: u64,
    expires: u64, // 0 = never
    tick: u64,
}

#[derive(Debug, PartialEq)]
enum Out {
    Unit,
    Value(Option<String>),
    Bool(bool),
    Ttl(Option<u64>),
    Int(Result<i64, &'static str>),
    Keys(Vec<String>),
    Count(usize),
    Err(Option<&'static str>),
}

struct Model {
    limits: Limits,
    now: u64,
    tick: u64,
    slots: Vec<Option<MEntry>>,
    free: Vec<usize>,
    cursor: usize,
    ttl_seen: bool,
    /// The scope an insert is under way in: the store opened it first, so
    /// evicting its last entry does not close it.
    pinned: Option<usize>,
    totals: Counters,
    scopes: [Option<Counters>; SCOPES],
}

#[derive(Clone, Copy)]
enum Cause {
    Deleted,
    Evicted,
    Expired,
    Cleared,
}

impl Model {
    fn new(limits: Limits) -> Self {
        Model {
            limits,
            now: 0,
            tick: 0,
            slots: Vec::new(),
            free: Vec::new(),
            cursor: 0,
            ttl_seen: false,
            pinned: None,
            totals: Counters::default(),
            scopes: [Some(Counters::default()), None, None],
        }
    }

    fn bump<F: Fn(&mut Counters)>(&mut self, s: usize, f: F) {
        f(&mut self.totals);
        if let Some(c) = self.scopes[s].as_mut() {
            f(c);
        }
    }

    fn entries(&self) -> u64 {
        self.slots.iter().flatten().count() as u64
    }
    fn bytes(&self) -> u64 {
        self.slots.iter().flatten().map(|e| e.charge).sum()
    }
    fn scope_entries(&self, s: usize) -> usize {
        self.slots.iter().flatten().filter(|e| e.s == s).count()
    }
    fn expired(&self, e: &MEntry) -> bool {
        e.expires != 0 && self.now >= e.expires
    }
    fn find(&self, s: usize, key: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|e| matches!(e, Some(e) if e.s == s && e.key == key))
    }
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn remove(&mut self, slot: usize, cause: Cause) {
        let e = self.slots[slot].take().unwrap();
        self.bump(e.s, |c| match cause {
            Cause::Deleted => c.deletes += 1,
            Cause::Evicted => c.evictions += 1,
            Cause::Expired => c.expirations += 1,
            Cause::Cleared => {}
        });
        self.free.push(slot);
        if e.s != 0 && self.pinned != Some(e.s) && self.scope_entries(e.s) == 0 {
            self.scopes[e.s] = None; // an emptied scope is forgotten
        }
    }

    fn evict_lru(&mut self) {
        let slot = (0..self.slots.len())
            .filter(|&i| self.slots[i].is_some())
            .min_by_key(|&i| self.slots[i].as_ref().unwrap().tick)
            .unwrap();
        self.remove(slot, Cause::Evicted);
    }

    fn purge_step(&mut self) {
        let len = self.slots.len();
        if !self.ttl_seen || len == 0 {
            return;
        }
        for _ in 0..PURGE_STEP.min(len) {
            if self.cursor >= len {
                self.cursor = 0;
            }
            let s = self.cursor;
            self.cursor += 1;
            if self.slots[s].as_ref().is_some_and(|e| self.expired(e)) {
                self.remove(s, Cause::Expired);
            }
        }
    }

    fn set(
        &mut self,
        s: usize,
        key: &str,
        value: String,
        ttl: Option<u64>,
    ) -> Result<(), &'static str> {
        let charge = key.len() as u64 + value.len() as u64 + ENTRY_OVERHEAD;
        if charge > self.limits.max_bytes {
            return Err("VALUE_TOO_LARGE");
        }
        let expires = match ttl.unwrap_or(0) {
            0 => 0,
            t => self.now + t,
        };
        let tick = self.next_tick();
        if let Some(slot) = self.find(s, key) {
            let e = self.slots[slot].as_mut().unwrap();
            (e.value, e.charge, e.expires, e.tick) = (value, charge, expires, tick);
            self.bump(s, |c| c.sets += 1);
            while self.bytes() > self.limits.max_bytes {
                self.evict_lru();
            }
            self.ttl_seen |= expires != 0;
            return Ok(());
        }
        if self.scopes[s].is_none() {
            self.scopes[s] = Some(Counters::default());
        }
        self.pinned = Some(s);
        self.purge_step();
        while self.entries() >= u64::from(self.limits.max_entries)
            || self.bytes() + charge > self.limits.max_bytes
        {
            self.evict_lru();
        }
        self.pinned = None;
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        self.slots[slot] = Some(MEntry {
            s,
            key: key.into(),
            value,
            charge,
            expires,
            tick,
        });
        self.bump(s, |c| c.sets += 1);
        // the engine starts tracking expiry (and purging) after this insert
        self.ttl_seen |= expires != 0;
        Ok(())
    }

    /// The slot of a live entry, removing it first if it expired.
    fn alive(&mut self, s: usize, key: &str) -> Option<usize> {
        let slot = self.find(s, key)?;
        if self.expired(self.slots[slot].as_ref().unwrap()) {
            self.remove(slot, Cause::Expired);
            return None;
        }
        Some(slot)
    }

    fn apply(&mut self, op: &Op) -> Out {
        match op {
            Op::Set { s, key, value, ttl } => {
                Out::Err(self.set(*s, key, value.clone(), *ttl).err())
            }
            Op::Get { s, key } => {
                let Some(slot) = self.find(*s, key) else {
                    self.totals.misses += 1;
                    if let Some(c) = self.scopes[*s].as_mut() {
                        c.misses += 1;
                    }
                    return Out::Value(None);
                };
                if self.expired(self.slots[slot].as_ref().unwrap()) {
                    self.bump(*s, |c| c.misses += 1);
                    self.remove(slot, Cause::Expired);
                    return Out::Value(None);
                }
                let tick = self.next_tick();
                let e = self.slots[slot].as_mut().unwrap();
                e.tick = tick;
                let v = e.value.clone();
                self.bump(*s, |c| c.hits += 1);
                Out::Value(Some(v))
            }
            Op::Has { s, key } => Out::Bool(self.alive(*s, key).is_some()),
            Op::Delete { s, key } => {
                let Some(slot) = self.find(*s, key) else {
                    return Out::Bool(false);
                };
                if self.expired(self.slots[slot].as_ref().unwrap()) {
                    self.remove(slot, Cause::Expired);
                    return Out::Bool(false);
                }
                self.remove(slot, Cause::Deleted);
                Out::Bool(true)
            }
            Op::Ttl { s, key } => Out::Ttl(self.alive(*s, key).map(|slot| {
                match self.slots[slot].as_ref().unwrap().expires {
                    0 => u64::MAX,
                    e => e - self.now,
                }
            })),
            Op::Incr { s, key, by } => Out::Int(match self.alive(*s, key) {
                Some(slot) => {
                    let e = self.slots[slot].as_ref().unwrap();
                    match e.value.parse::<i64>() {
                        Err(_) => Err("NOT_AN_INTEGER"),
                        Ok(n) => {
                            let n = n + by;
                            let value = n.to_string();
                            let charge = key.len() as u64 + value.len() as u64 + ENTRY_OVERHEAD;
                            // A count that no longer fits the cache on its
                            // own is refused and changes nothing, as `set`
                            // refuses such a value (`-1` is a byte longer
                            // than `0`).
                            if charge > self.limits.max_bytes {
                                return Out::Int(Err("VALUE_TOO_LARGE"));
                            }
                            let tick = self.next_tick();
                            let e = self.slots[slot].as_mut().unwrap();
                            (e.value, e.charge, e.tick) = (value, charge, tick);
                            self.bump(*s, |c| c.sets += 1);
                            while self.bytes() > self.limits.max_bytes {
                                self.evict_lru();
                            }
                            Ok(n)
                        }
                    }
                }
                None => self.set(*s, key, by.to_string(), None).map(|_| *by),
            }),
            Op::Keys { s, pattern } => Out::Keys(self.keys(*s, pattern)),
            Op::DeletePattern { s, pattern } => {
                let keys = self.keys(*s, pattern);
                for k in &keys {
                    let slot = self.find(*s, k).unwrap();
                    self.remove(slot, Cause::Deleted);
                }
                Out::Count(keys.len())
            }
            Op::Clear { s: 0 } => {
                self.slots.clear();
                self.free.clear();
                self.cursor = 0;
                self.ttl_seen = false;
                self.scopes[1] = None;
                self.scopes[2] = None;
                Out::Unit
            }
            Op::Clear { s } => {
                let mut order: Vec<usize> = (0..self.slots.len())
                    .filter(|&i| matches!(&self.slots[i], Some(e) if e.s == *s))
                    .collect();
                order.sort_by_key(|&i| std::cmp::Reverse(self.slots[i].as_ref().unwrap().tick));
                for slot in order {
                    self.remove(slot, Cause::Cleared);
                }
                Out::Unit
            }
            Op::Advance(ms) => {
                self.now += ms;
                Out::Unit
            }
        }
    }

    /// Live keys of scope `s` matching `pattern`, most recently used first;
    /// expired ones met on the way are removed.
    fn keys(&mut self, s: usize, pattern: &str) -> Vec<String> {
        let mut order: Vec<usize> = (0..self.slots.len())
            .filter(|&i| matches!(&self.slots[i], Some(e) if e.s == s))
            .collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.slots[i].as_ref().unwrap().tick));
        let mut out = Vec::new();
        for slot in order {
            let e = self.slots[slot].as_ref().unwrap();
            if self.expired(e) {
                self.remove(slot, Cause::Expired);
            } else if glob_match(pattern.as_bytes(), e.key.as_bytes()) {
                out.push(e.key.clone());
            }
        }
        out
    }
}

fn apply_store(store: &mut Store<String, ManualClock>, clock: &ManualClock, op: &Op) -> Out {
    macro_rules! on {
        ($s:expr, |$v:ident| $body:expr) => {
            match scope_of(*$s) {
                None => {
                    let $v = &mut *store;
                    $body
                }
                Some(sc) => {
                    let mut view = store.scoped(&sc);
                    let $v = &mut view;
                    $body
                }
            }
        };
    }
    match op {
        Op::Set { s, key, value, ttl } => Out::Err(on!(s, |v| v
            .set(key, value.clone(), *ttl)
            .err()
            .map(|e| e.code()))),
        Op::Get { s, key } => Out::Value(on!(s, |v| v.get(key).cloned())),
        Op::Has { s, key } => Out::Bool(on!(s, |v| v.has(key))),
        Op::Delete { s, key } => Out::Bool(on!(s, |v| v.delete(key))),
        Op::Ttl { s, key } => Out::Ttl(on!(s, |v| v.ttl(key))),
        Op::Incr { s, key, by } => Out::Int(on!(s, |v| v.incr(key, *by).map_err(|e| e.code()))),
        Op::Keys { s, pattern } => Out::Keys(on!(s, |v| v.keys(pattern))),
        Op::DeletePattern { s, pattern } => Out::Count(on!(s, |v| v.delete_pattern(pattern))),
        Op::Clear { s } => {
            on!(s, |v| v.clear());
            Out::Unit
        }
        Op::Advance(ms) => {
            clock.advance(*ms);
            Out::Unit
        }
    }
}

fn check(limits: Limits, ops: &[Op]) -> Result<(), TestCaseError> {
    let clock = ManualClock::new(0);
    let mut store: Store<String, _> = Store::new(
        Config {
            limits,
            default_ttl: 0,
        },
        clock.clone(),
    );
    let mut model = Model::new(limits);
    for (i, op) in ops.iter().enumerate() {
        let got = apply_store(&mut store, &clock, op);
        let want = model.apply(op);
        prop_assert_eq!(&got, &want, "step {}: {:?}", i, op);
        let mut totals = model.totals;
        totals.entries = model.entries();
        totals.bytes = model.bytes();
        prop_assert_eq!(
            store.stats().counters,
            totals,
            "totals after step {}: {:?}",
            i,
            op
        );
        for s in 1..SCOPES {
            let sc = scope_of(s).unwrap();
            let mut want = model.scopes[s].unwrap_or_default();
            want.entries = model.scope_entries(s) as u64;
            want.bytes = model
                .slots
                .iter()
                .flatten()
                .filter(|e| e.s == s)
                .map(|e| e.charge)
                .sum();
            prop_assert_eq!(
                store.scoped(&sc).stats().counters,
                want,
                "scope {} after step {}: {:?}",
                s,
                i,
                op
            );
        }
        prop_assert!(store.len() as u64 <= u64::from(limits.max_entries));
        prop_assert!(store.stats().counters.bytes <= limits.max_bytes);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(
        max_entries in 1u32..7,
        max_bytes in (ENTRY_OVERHEAD + 2)..(6 * (ENTRY_OVERHEAD + 20)),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        check(Limits::new(max_entries, max_bytes).unwrap(), &ops)?;
    }
}
