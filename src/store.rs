//! The L1 cache for Rust callers: keys, values and scopes over an [`Lru`].
//!
//! [`Store`] keeps a `hashbrown` table of slots (each key is stored once, in
//! its slot), the values by slot, and the scope namespaces. Time comes from
//! an injected [`Clock`].

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use std::hash::{BuildHasher, Hash, Hasher};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::glob::Glob;
use crate::lru::{Counters, Limits, Lru, NsId, Slot, NO_NS, ROOT};
use crate::scope::Scope;

/// How many bytes a value is charged (its key's UTF-8 length is added).
pub trait Weigh {
    /// The value's size in bytes.
    fn weigh(&self) -> u64;
}

impl Weigh for String {
    fn weigh(&self) -> u64 {
        self.len() as u64
    }
}
impl Weigh for Vec<u8> {
    fn weigh(&self) -> u64 {
        self.len() as u64
    }
}
impl Weigh for Box<[u8]> {
    fn weigh(&self) -> u64 {
        self.len() as u64
    }
}
impl Weigh for i64 {
    fn weigh(&self) -> u64 {
        8
    }
}

/// Values that `incr`/`decr` can work on. Strings and byte strings hold
/// decimal integers, as in Redis.
pub trait Counter: Sized {
    /// The integer held, if the value is one.
    fn to_i64(&self) -> Option<i64>;
    /// The value holding `n`.
    fn from_i64(n: i64) -> Self;
}

impl Counter for i64 {
    fn to_i64(&self) -> Option<i64> {
        Some(*self)
    }
    fn from_i64(n: i64) -> Self {
        n
    }
}
impl Counter for String {
    fn to_i64(&self) -> Option<i64> {
        self.parse().ok()
    }
    fn from_i64(n: i64) -> Self {
        n.to_string()
    }
}
impl Counter for Vec<u8> {
    fn to_i64(&self) -> Option<i64> {
        std::str::from_utf8(self).ok()?.parse().ok()
    }
    fn from_i64(n: i64) -> Self {
        n.to_string().into_bytes()
    }
}

/// Options of a [`Store`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Entry and byte bounds.
    pub limits: Limits,
    /// TTL in ms for writes that give none; 0 = no expiry.
    pub default_ttl: u64,
}

struct Entry<V> {
    ns: NsId,
    key: Box<str>,
    value: V,
}

/// Statistics as `MemoryCache.stats()` reports them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// The counters.
    pub counters: Counters,
    /// `hits / (hits + misses)`, 0 when there was no lookup.
    pub hit_rate: f64,
    /// The bounds.
    pub limits: Limits,
}

impl Stats {
    fn new(counters: Counters, limits: Limits) -> Self {
        let lookups = counters.hits + counters.misses;
        let hit_rate = if lookups == 0 {
            0.0
        } else {
            counters.hits as f64 / lookups as f64
        };
        Stats {
            counters,
            hit_rate,
            limits,
        }
    }
}

/// An LRU + TTL cache with scopes, bounded by entries and bytes.
///
/// ```
/// use edgecache::{Config, ManualClock, Scope, Store};
/// let clock = ManualClock::new(0);
/// let mut cache: Store<String, _> = Store::new(Config::default(), clock.clone());
/// cache.set("greeting", "hello".to_string(), Some(1_000)).unwrap();
/// assert_eq!(cache.get("greeting").map(String::as_str), Some("hello"));
/// assert_eq!(cache.ttl("greeting"), Some(1_000));
/// clock.advance(1_000);
/// assert_eq!(cache.get("greeting"), None);
///
/// let acme = Scope::tenant("acme").unwrap();
/// cache.scoped(&acme).set("greeting", "hi".into(), None).unwrap();
/// assert_eq!(cache.get("greeting"), None); // scopes never see each other
/// assert_eq!(cache.scoped(&acme).keys("*"), vec!["greeting".to_string()]);
/// ```
pub struct Store<V, C: Clock> {
    lru: Lru,
    clock: C,
    default_ttl: u64,
    table: HashTable<Slot>,
    hasher: DefaultHashBuilder,
    entries: Vec<Option<Entry<V>>>,
    scopes: HashMap<String, NsId>,
    names: HashMap<NsId, String>,
}

fn hash_key(hasher: &DefaultHashBuilder, ns: NsId, key: &str) -> u64 {
    let mut h = hasher.build_hasher();
    ns.hash(&mut h);
    key.hash(&mut h);
    h.finish()
}

impl<V: Weigh, C: Clock> Store<V, C> {
    /// An empty cache.
    pub fn new(config: Config, clock: C) -> Self {
        Store {
            lru: Lru::new(config.limits),
            clock,
            default_ttl: config.default_ttl,
            table: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            entries: Vec::new(),
            scopes: HashMap::new(),
            names: HashMap::new(),
        }
    }

    /// A view of the keys of `scope`, with the same operations.
    pub fn scoped(&mut self, scope: &Scope) -> Scoped<'_, V, C> {
        let encoded = scope.encode();
        Scoped {
            store: self,
            encoded,
        }
    }

    fn now(&self) -> f64 {
        self.clock.now_ms() as f64
    }

    fn find(&self, ns: NsId, key: &str) -> Option<Slot> {
        let h = hash_key(&self.hasher, ns, key);
        self.table
            .find(
                h,
                |&s| matches!(&self.entries[s as usize], Some(e) if e.ns == ns && &*e.key == key),
            )
            .copied()
    }

    /// Drops the key and value of a slot the engine has already freed.
    fn forget(&mut self, slot: Slot) {
        if let Some(e) = self.entries[slot as usize].take() {
            let h = hash_key(&self.hasher, e.ns, &e.key);
            if let Ok(o) = self.table.find_entry(h, |&s| s == slot) {
                o.remove();
            }
            if e.ns != ROOT && self.lru.stats(e.ns).is_some_and(|c| c.entries == 0) {
                self.close_scope(e.ns);
            }
        }
    }

    fn close_scope(&mut self, ns: NsId) {
        if self.lru.close_ns(ns) {
            if let Some(name) = self.names.remove(&ns) {
                self.scopes.remove(&name);
            }
        }
    }

    fn forget_removed(&mut self) {
        for i in 0..self.lru.removed().len() {
            let s = self.lru.removed()[i];
            self.forget(s);
        }
    }

    fn get_in(&mut self, ns: NsId, key: &str) -> Option<&V> {
        let Some(slot) = self.find(ns, key) else {
            self.lru.miss(ns);
            return None;
        };
        if self.lru.touch(slot, self.now()) {
            self.entries[slot as usize].as_ref().map(|e| &e.value)
        } else {
            self.forget(slot);
            None
        }
    }

    fn expiry(&self, ttl: Option<u64>, now: f64) -> f64 {
        match ttl.unwrap_or(self.default_ttl) {
            0 => 0.0,
            t => now + t as f64,
        }
    }

    fn set_in(&mut self, ns: NsId, key: &str, value: V, ttl: Option<u64>) -> Result<()> {
        let size = key.len() as u64 + value.weigh();
        let now = self.now();
        let expires = self.expiry(ttl, now);
        if let Some(slot) = self.find(ns, key) {
            self.lru.update(slot, size, expires)?;
            self.entries[slot as usize]
                .as_mut()
                .expect("live slot")
                .value = value;
        } else {
            let ins = self.lru.insert(ns, size, expires, now)?;
            self.forget_removed();
            let slot = ins.slot;
            if self.entries.len() <= slot as usize {
                self.entries.resize_with(slot as usize + 1, || None);
            }
            self.entries[slot as usize] = Some(Entry {
                ns,
                key: key.into(),
                value,
            });
            let h = hash_key(&self.hasher, ns, key);
            let (entries, hasher) = (&self.entries, &self.hasher);
            self.table.insert_unique(h, slot, |&s| {
                let e = entries[s as usize].as_ref().expect("indexed slot is live");
                hash_key(hasher, e.ns, &e.key)
            });
            return Ok(());
        }
        self.forget_removed();
        Ok(())
    }

    fn has_in(&mut self, ns: NsId, key: &str) -> bool {
        let Some(slot) = self.find(ns, key) else {
            return false;
        };
        let alive = self.lru.alive(slot, self.now());
        if !alive {
            self.forget(slot);
        }
        alive
    }

    fn delete_in(&mut self, ns: NsId, key: &str) -> bool {
        let Some(slot) = self.find(ns, key) else {
            return false;
        };
        let was_alive = self.lru.remove(slot, self.now());
        self.forget(slot);
        was_alive
    }

    fn ttl_in(&mut self, ns: NsId, key: &str) -> Option<u64> {
        let slot = self.find(ns, key)?;
        match self.lru.ttl(slot, self.now()) {
            None => {
                self.forget(slot);
                None
            }
            Some(t) if t.is_infinite() => Some(u64::MAX),
            Some(t) => Some(t as u64),
        }
    }

    fn keys_in(&mut self, ns: NsId, pattern: &str) -> Vec<String> {
        let glob = Glob::new(pattern);
        let now = self.now();
        let slots: Vec<Slot> = self
            .lru
            .iter()
            .filter(|&s| self.lru.slot_ns(s) == ns)
            .collect();
        let mut out = Vec::new();
        for s in slots {
            if !self.lru.alive(s, now) {
                self.forget(s);
                continue;
            }
            let e = self.entries[s as usize].as_ref().expect("live slot");
            if glob.matches(&e.key) {
                out.push(e.key.to_string());
            }
        }
        out
    }

    fn delete_pattern_in(&mut self, ns: NsId, pattern: &str) -> usize {
        let keys = self.keys_in(ns, pattern);
        keys.iter().filter(|k| self.delete_in(ns, k)).count()
    }

    fn clear_in(&mut self, ns: NsId) {
        let slots: Vec<Slot> = self
            .lru
            .iter()
            .filter(|&s| self.lru.slot_ns(s) == ns)
            .collect();
        for s in slots {
            self.lru.discard(s);
            self.forget(s);
        }
    }

    /// `incr` on an entry that exists and is alive; `None` otherwise (an
    /// expired entry is removed first, which may close its namespace).
    fn incr_existing(&mut self, ns: NsId, key: &str, by: i64) -> Option<Result<i64>>
    where
        V: Counter,
    {
        let slot = self.find(ns, key)?;
        if !self.lru.alive(slot, self.now()) {
            self.forget(slot);
            return None;
        }
        let entry = self.entries[slot as usize].as_mut().expect("live slot");
        let Some(n) = entry.value.to_i64() else {
            return Some(Err(Error::NotAnInteger));
        };
        let Some(n) = n.checked_add(by) else {
            return Some(Err(Error::Overflow));
        };
        let value = V::from_i64(n);
        let size = key.len() as u64 + value.weigh();
        let expires = self.lru.expires_at(slot);
        if let Err(e) = self.lru.update(slot, size, expires) {
            return Some(Err(e));
        }
        self.entries[slot as usize]
            .as_mut()
            .expect("live slot")
            .value = value;
        self.forget_removed();
        Some(Ok(n))
    }

    // ---- the root keyspace ----

    /// The value of `key`, marking it most recently used.
    pub fn get(&mut self, key: &str) -> Option<&V> {
        self.get_in(ROOT, key)
    }

    /// Stores `value` under `key`, with `ttl` ms (`None`: the default TTL;
    /// `Some(0)`: no expiry). An entry larger than `maxBytes` is refused with
    /// [`Error::TooLarge`] and the cache is left unchanged.
    pub fn set(&mut self, key: &str, value: V, ttl: Option<u64>) -> Result<()> {
        self.set_in(ROOT, key, value, ttl)
    }

    /// Whether `key` holds a live value (recency unchanged).
    pub fn has(&mut self, key: &str) -> bool {
        self.has_in(ROOT, key)
    }

    /// Deletes `key`; `true` if it held a live value.
    pub fn delete(&mut self, key: &str) -> bool {
        self.delete_in(ROOT, key)
    }

    /// Milliseconds `key` has left: `None` if absent, `Some(u64::MAX)` if it
    /// never expires.
    pub fn ttl(&mut self, key: &str) -> Option<u64> {
        self.ttl_in(ROOT, key)
    }

    /// Root keys matching a Redis glob, most recently used first.
    pub fn keys(&mut self, pattern: &str) -> Vec<String> {
        self.keys_in(ROOT, pattern)
    }

    /// Deletes the root keys matching a Redis glob; returns how many.
    pub fn delete_pattern(&mut self, pattern: &str) -> usize {
        self.delete_pattern_in(ROOT, pattern)
    }

    /// Adds `by` to the integer under `key` (a missing key starts at 0) and
    /// returns the result; the TTL is kept.
    ///
    /// ```
    /// use edgecache::{Config, ManualClock, Store};
    /// let mut c: Store<i64, _> = Store::new(Config::default(), ManualClock::new(0));
    /// assert_eq!(c.incr("hits", 5).unwrap(), 5);
    /// assert_eq!(c.incr("hits", -2).unwrap(), 3);
    /// c.set("max", i64::MAX, None).unwrap();
    /// assert_eq!(c.incr("max", 1).unwrap_err().code(), "OVERFLOW");
    /// ```
    pub fn incr(&mut self, key: &str, by: i64) -> Result<i64>
    where
        V: Counter,
    {
        match self.incr_existing(ROOT, key, by) {
            Some(r) => r,
            None => self.set_in(ROOT, key, V::from_i64(by), None).map(|()| by),
        }
    }

    /// Removes every entry of every scope.
    pub fn clear(&mut self) {
        self.lru.clear();
        self.table.clear();
        self.entries.clear();
        for (_, ns) in self.scopes.drain() {
            self.lru.close_ns(ns);
        }
        self.names.clear();
    }

    /// Statistics of the whole cache.
    pub fn stats(&self) -> Stats {
        Stats::new(self.lru.totals(), self.lru.limits())
    }

    /// Number of entries, all scopes together (expired ones not yet
    /// reclaimed included).
    pub fn len(&self) -> usize {
        self.lru.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.lru.is_empty()
    }
}

/// A view of one [`Scope`] of a [`Store`]: the same operations, on keys no
/// other scope or the root can see.
pub struct Scoped<'a, V, C: Clock> {
    store: &'a mut Store<V, C>,
    encoded: String,
}

impl<V: Weigh, C: Clock> Scoped<'_, V, C> {
    fn ns(&self) -> Option<NsId> {
        self.store.scopes.get(&self.encoded).copied()
    }

    fn ns_or_open(&mut self) -> NsId {
        if let Some(ns) = self.ns() {
            return ns;
        }
        let ns = self.store.lru.open_ns();
        self.store.scopes.insert(self.encoded.clone(), ns);
        self.store.names.insert(ns, self.encoded.clone());
        ns
    }

    /// See [`Store::get`].
    pub fn get(&mut self, key: &str) -> Option<&V> {
        match self.ns() {
            Some(ns) => self.store.get_in(ns, key),
            None => {
                self.store.lru.miss(NO_NS);
                None
            }
        }
    }

    /// See [`Store::set`].
    pub fn set(&mut self, key: &str, value: V, ttl: Option<u64>) -> Result<()> {
        let ns = self.ns_or_open();
        let r = self.store.set_in(ns, key, value, ttl);
        if self.store.lru.stats(ns).is_some_and(|c| c.entries == 0) {
            self.store.close_scope(ns);
        }
        r
    }

    /// See [`Store::has`].
    pub fn has(&mut self, key: &str) -> bool {
        self.ns().is_some_and(|ns| self.store.has_in(ns, key))
    }

    /// See [`Store::delete`].
    pub fn delete(&mut self, key: &str) -> bool {
        self.ns().is_some_and(|ns| self.store.delete_in(ns, key))
    }

    /// See [`Store::ttl`].
    pub fn ttl(&mut self, key: &str) -> Option<u64> {
        self.ns().and_then(|ns| self.store.ttl_in(ns, key))
    }

    /// See [`Store::keys`].
    pub fn keys(&mut self, pattern: &str) -> Vec<String> {
        self.ns()
            .map(|ns| self.store.keys_in(ns, pattern))
            .unwrap_or_default()
    }

    /// See [`Store::delete_pattern`].
    pub fn delete_pattern(&mut self, pattern: &str) -> usize {
        self.ns()
            .map_or(0, |ns| self.store.delete_pattern_in(ns, pattern))
    }

    /// See [`Store::incr`].
    pub fn incr(&mut self, key: &str, by: i64) -> Result<i64>
    where
        V: Counter,
    {
        if let Some(r) = self
            .ns()
            .and_then(|ns| self.store.incr_existing(ns, key, by))
        {
            return r;
        }
        self.set(key, V::from_i64(by), None).map(|()| by)
    }

    /// Removes every entry of this scope.
    pub fn clear(&mut self) {
        if let Some(ns) = self.ns() {
            self.store.clear_in(ns);
        }
    }

    /// Statistics of this scope; zero while it holds nothing (a scope that
    /// empties is forgotten, counters included).
    pub fn stats(&self) -> Stats {
        let counters = self
            .ns()
            .and_then(|ns| self.store.lru.stats(ns))
            .unwrap_or_default();
        Stats::new(counters, self.store.lru.limits())
    }
}
