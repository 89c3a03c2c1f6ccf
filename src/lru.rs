//! The slot engine: recency order, expiry, byte accounting and statistics.
//!
//! [`Lru`] knows nothing about keys or values. It hands out *slots* (dense
//! `u32` indexes) and keeps, per slot, a place in a doubly linked recency list
//! (`u32` links, no pointers, no `unsafe`), a charged size, an optional
//! expiry time and the namespace (scope) the entry belongs to. Whoever owns
//! the keys keeps a `key -> slot` index next to it:
//!
//! * [`Store`](crate::Store) does so in Rust with a `hashbrown` table;
//! * the JavaScript `MemoryCache` does so with a JS `Map`, because looking a
//!   JS string up in a JS `Map` is several times cheaper than copying it
//!   into wasm memory on every `get`.
//!
//! Every operation is O(1) except [`Lru::clear`]. Removals that happen as a
//! side effect of [`Lru::insert`] or [`Lru::update`] (evictions, and expired
//! entries reclaimed by the incremental purge) are reported through
//! [`Lru::removed`], so the owner can drop its keys and values too.
//!
//! Times are milliseconds as `f64` (the unit of `Date.now()`); an expiry of
//! `0.0` means "never". An entry with expiry `e` is alive while `now < e`.

use crate::error::{Error, Result};

/// A dense index naming one entry of an [`Lru`].
pub type Slot = u32;
/// A namespace (scope) id. [`ROOT`] always exists.
pub type NsId = u32;
/// The namespace of unscoped keys.
pub const ROOT: NsId = 0;
/// Passed to [`Lru::miss`] for a lookup in a scope that holds nothing yet.
pub const NO_NS: NsId = u32::MAX;

/// Bytes charged for every entry on top of its key and value: the index
/// entry, the recency links, the size and expiry words, and the owner's
/// per-slot references. It is an estimate of the real per-entry cost of the
/// JavaScript cache (measured by `make bench`, see README), so that
/// `maxBytes` bounds memory and not just payload.
pub const ENTRY_OVERHEAD: u64 = 64;

/// The default `maxEntries`.
pub const DEFAULT_MAX_ENTRIES: u32 = 10_000;
/// The default `maxBytes`: 32 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 32 << 20;

const NIL: u32 = u32::MAX;
/// Marks a free slot in `prev`.
const FREE: u32 = u32::MAX - 1;
/// Slots the incremental purge examines per insert.
const PURGE_STEP: u32 = 4;
/// The slot arrays start with room for this many entries and grow by half
/// as entries arrive, up to `max_entries`: an idle cache costs almost
/// nothing. (Half, not double: wasm memory never shrinks, and a smaller
/// step lets the allocator reuse the blocks that earlier steps left.)
const FIRST_CAPACITY: usize = 8;

/// The bounds of a cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// At most this many entries.
    pub max_entries: u32,
    /// At most this many charged bytes (see [`ENTRY_OVERHEAD`]).
    pub max_bytes: u64,
}

impl Limits {
    /// Checked constructor: both bounds must be at least 1.
    ///
    /// ```
    /// use edgecache::Limits;
    /// assert!(Limits::new(0, 1024).is_err());
    /// assert_eq!(Limits::new(10, 1024).unwrap().max_entries, 10);
    /// ```
    pub fn new(max_entries: u32, max_bytes: u64) -> Result<Self> {
        if max_entries == 0 {
            return Err(Error::InvalidOption {
                name: "maxEntries",
                reason: "must be an integer >= 1".into(),
            });
        }
        if max_entries >= FREE {
            return Err(Error::InvalidOption {
                name: "maxEntries",
                reason: format!("must be below {FREE}"),
            });
        }
        if max_bytes == 0 {
            return Err(Error::InvalidOption {
                name: "maxBytes",
                reason: "must be an integer >= 1".into(),
            });
        }
        Ok(Limits {
            max_entries,
            max_bytes,
        })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// Statistics of a namespace, or of the whole cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Lookups that found nothing (or an expired entry).
    pub misses: u64,
    /// Writes (new entries and overwrites, counters included).
    pub sets: u64,
    /// Explicit deletions of live entries.
    pub deletes: u64,
    /// Live entries removed to make room.
    pub evictions: u64,
    /// Entries removed because their TTL ran out.
    pub expirations: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes charged now.
    pub bytes: u64,
}

impl Counters {
    /// Adds the event counters of `other` (not `entries` or `bytes`).
    fn add_events(&mut self, other: &Counters) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.sets += other.sets;
        self.deletes += other.deletes;
        self.evictions += other.evictions;
        self.expirations += other.expirations;
    }
}

/// What an [`Lru::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inserted {
    /// The slot of the new entry.
    pub slot: Slot,
    /// How many entries were removed to make room or reclaimed as expired
    /// (listed by [`Lru::removed`]). The free list is LIFO, so when this is
    /// at least 1 the last removed slot is `slot` itself.
    pub removed: u32,
}

/// A slot's recency links. The size lives in an array of its own: a `get`
/// touches only the links, and 8-byte links never straddle a cache line.
#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cause {
    Deleted,
    Evicted,
    Expired,
    Cleared,
}

/// The slot engine. See the [module docs](self).
///
/// ```
/// use edgecache::{Limits, Lru, ROOT};
/// let mut lru = Lru::new(Limits::new(2, 1 << 20).unwrap());
/// let a = lru.insert(ROOT, 10, 0.0, 0.0).unwrap().slot;
/// let b = lru.insert(ROOT, 10, 0.0, 0.0).unwrap().slot;
/// assert!(lru.touch(a, 0.0)); // a is now the most recently used
/// let c = lru.insert(ROOT, 10, 0.0, 0.0).unwrap();
/// assert_eq!(lru.removed(), &[b]); // so b was evicted, and its slot reused
/// assert_eq!(c.slot, b);
/// ```
#[derive(Clone, Debug)]
pub struct Lru {
    limits: Limits,
    /// Recency links, interleaved so one cache line holds both of a slot's.
    links: Vec<Link>,
    size: Vec<u32>,
    /// Empty until the first entry with an expiry arrives.
    expires: Vec<f64>,
    /// Empty until the first entry outside [`ROOT`] arrives.
    ns: Vec<NsId>,
    head: u32,
    tail: u32,
    free: u32,
    /// Entries and bytes of the whole cache (its other counters are the sum
    /// of `spaces` and `retired`, so a hit updates one counter, not two).
    total: Counters,
    /// Event counters of closed namespaces and of misses in no namespace.
    retired: Counters,
    spaces: Vec<Option<Counters>>,
    free_spaces: Vec<NsId>,
    removed: Vec<Slot>,
    cursor: u32,
}

impl Lru {
    /// An empty engine with the given bounds.
    ///
    /// Nothing is reserved up front: the slot arrays grow on demand (by
    /// half, never past `max_entries`), so a cache that holds little
    /// costs little, however large its bounds.
    pub fn new(limits: Limits) -> Self {
        Lru {
            limits,
            links: Vec::new(),
            size: Vec::new(),
            expires: Vec::new(),
            ns: Vec::new(),
            head: NIL,
            tail: NIL,
            free: NIL,
            total: Counters::default(),
            retired: Counters::default(),
            spaces: vec![Some(Counters::default())],
            free_spaces: Vec::new(),
            removed: Vec::new(),
            cursor: 0,
        }
    }

    /// The bounds.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.total.entries as usize
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.total.entries == 0
    }

    /// Bytes an entry of `size` key+value bytes is charged.
    pub fn charge(size: u64) -> u64 {
        size.saturating_add(ENTRY_OVERHEAD)
    }

    #[inline(always)]
    fn check_size(&self, size: u64) -> Result<u32> {
        let charge = Self::charge(size);
        if charge > self.limits.max_bytes || charge > u64::from(u32::MAX) {
            return Err(Error::TooLarge {
                size: charge,
                max: self.limits.max_bytes,
            });
        }
        Ok(charge as u32)
    }

    /// Adds a new entry of `size` key+value bytes in namespace `ns`, evicting
    /// least recently used entries as needed. `expires_at` is an absolute
    /// time, `0.0` for none. Fails, changing nothing, if the entry alone is
    /// larger than `max_bytes`, or if memory for one more slot cannot be
    /// had ([`Error::OutOfMemory`]).
    pub fn insert(&mut self, ns: NsId, size: u64, expires_at: f64, now: f64) -> Result<Inserted> {
        let charge = self.check_size(size)?;
        self.reserve(ns, expires_at)?;
        self.removed.clear();
        self.purge_step(now);
        if let Some(slot) = self.recycle_tail(ns, charge) {
            self.set_expiry(slot, expires_at);
            return Ok(Inserted {
                slot,
                removed: self.removed.len() as u32,
            });
        }
        while self.total.entries >= u64::from(self.limits.max_entries)
            || self.total.bytes + u64::from(charge) > self.limits.max_bytes
        {
            self.evict_tail();
        }
        let slot = self.alloc();
        self.size[slot as usize] = charge;
        self.set_expiry(slot, expires_at);
        self.set_ns(slot, ns);
        self.link_front(slot);
        let c = self.counters_mut(ns);
        c.sets += 1;
        c.entries += 1;
        c.bytes += u64::from(charge);
        self.total.entries += 1;
        self.total.bytes += u64::from(charge);
        Ok(Inserted {
            slot,
            removed: self.removed.len() as u32,
        })
    }

    /// Overwrites the entry in `slot`: new size and expiry, most recently
    /// used. Returns how many other entries were evicted to make room
    /// (listed by [`Lru::removed`]). Fails, changing nothing, if the entry
    /// alone is larger than `max_bytes` (or memory for its expiry cannot be had).
    pub fn update(&mut self, slot: Slot, size: u64, expires_at: f64) -> Result<u32> {
        let charge = self.check_size(size)?;
        if expires_at != 0.0 && self.expires.is_empty() {
            self.grow(false, ROOT, expires_at)?;
        }
        self.removed.clear();
        let ns = self.slot_ns(slot);
        let old = u64::from(self.size[slot as usize]);
        self.size[slot as usize] = charge;
        self.set_expiry(slot, expires_at);
        self.move_front(slot);
        let c = self.counters_mut(ns);
        c.sets += 1;
        c.bytes = c.bytes - old + u64::from(charge);
        self.total.bytes = self.total.bytes - old + u64::from(charge);
        // `slot` is at the front and fits on its own, so it is never the tail here.
        while self.total.bytes > self.limits.max_bytes {
            self.evict_tail();
        }
        Ok(self.removed.len() as u32)
    }

    /// Changes the charged size of the entry in `slot`, keeping its expiry:
    /// an [`update`](Lru::update) for a value rewritten in place (a counter
    /// whose custom size changed).
    ///
    /// ```
    /// use edgecache::{Limits, Lru, ROOT};
    /// let mut lru = Lru::new(Limits::new(10, 1 << 20).unwrap());
    /// let s = lru.insert(ROOT, 10, 500.0, 0.0).unwrap().slot;
    /// lru.resize(s, 20).unwrap();
    /// assert_eq!(lru.expires_at(s), 500.0);
    /// assert_eq!(lru.totals().bytes, 20 + edgecache::ENTRY_OVERHEAD);
    /// ```
    pub fn resize(&mut self, slot: Slot, size: u64) -> Result<u32> {
        self.update(slot, size, self.expires_at(slot))
    }

    /// A lookup of `slot`: if the entry is alive, it becomes the most
    /// recently used, a hit is counted and `true` returned; if it has
    /// expired, it is removed and `false` returned.
    pub fn touch(&mut self, slot: Slot, now: f64) -> bool {
        let ns = self.slot_ns(slot);
        if self.is_expired(slot, now) {
            self.remove_slot(slot, Cause::Expired);
            self.counters_mut(ns).misses += 1;
            return false;
        }
        self.move_front(slot);
        self.counters_mut(ns).hits += 1;
        true
    }

    /// A lookup hit on an entry known to have no expiry (a cache that has
    /// never had a TTL): most recently used, one more hit. [`touch`](Lru::touch)
    /// without the expiry check.
    #[inline(always)]
    pub fn hit(&mut self, slot: Slot) {
        debug_assert!(self.is_occupied(slot) && self.expires_at(slot) == 0.0);
        let ns = self.slot_ns(slot);
        self.move_front(slot);
        self.counters_mut(ns).hits += 1;
    }

    /// Counts a lookup that found no slot, in namespace `ns` ([`NO_NS`] for
    /// a scope that holds nothing).
    pub fn miss(&mut self, ns: NsId) {
        match self.spaces.get_mut(ns as usize) {
            Some(Some(c)) => c.misses += 1,
            _ => self.retired.misses += 1,
        }
    }

    /// Whether the entry is alive, without changing its recency or the
    /// statistics. An expired entry is removed (and `false` returned).
    pub fn alive(&mut self, slot: Slot, now: f64) -> bool {
        if self.is_expired(slot, now) {
            self.remove_slot(slot, Cause::Expired);
            return false;
        }
        true
    }

    /// Marks a write to an alive entry (a counter update): most recently
    /// used, one more set.
    pub fn write(&mut self, slot: Slot) {
        self.move_front(slot);
        let ns = self.slot_ns(slot);
        self.counters_mut(ns).sets += 1;
    }

    /// Deletes the entry. Returns `true` if it was alive (a delete is
    /// counted), `false` if it had already expired (an expiration is).
    pub fn remove(&mut self, slot: Slot, now: f64) -> bool {
        if self.is_expired(slot, now) {
            self.remove_slot(slot, Cause::Expired);
            false
        } else {
            self.remove_slot(slot, Cause::Deleted);
            true
        }
    }

    /// Removes the entry without counting anything (used by `clear`).
    pub fn discard(&mut self, slot: Slot) {
        self.remove_slot(slot, Cause::Cleared);
    }

    /// Milliseconds the entry has left: `Some(f64::INFINITY)` if it never
    /// expires, `None` if it has expired (it is then removed).
    pub fn ttl(&mut self, slot: Slot, now: f64) -> Option<f64> {
        if self.is_expired(slot, now) {
            self.remove_slot(slot, Cause::Expired);
            return None;
        }
        match self.expires.get(slot as usize) {
            Some(&e) if e != 0.0 => Some(e - now),
            _ => Some(f64::INFINITY),
        }
    }

    /// The absolute expiry of an entry, `0.0` for none.
    pub fn expires_at(&self, slot: Slot) -> f64 {
        self.expires.get(slot as usize).copied().unwrap_or(0.0)
    }

    /// Slots removed as a side effect of the last [`insert`](Lru::insert) or
    /// [`update`](Lru::update), oldest first.
    pub fn removed(&self) -> &[Slot] {
        &self.removed
    }

    /// The namespace an entry belongs to.
    #[inline(always)]
    pub fn slot_ns(&self, slot: Slot) -> NsId {
        self.ns.get(slot as usize).copied().unwrap_or(ROOT)
    }

    /// Whether `slot` currently holds an entry (alive or expired).
    pub fn is_occupied(&self, slot: Slot) -> bool {
        self.links
            .get(slot as usize)
            .is_some_and(|l| l.prev != FREE)
    }

    /// Statistics of one namespace, `None` if it is not open.
    pub fn stats(&self, ns: NsId) -> Option<Counters> {
        self.spaces.get(ns as usize).copied().flatten()
    }

    /// Statistics of the whole cache, all namespaces together.
    pub fn totals(&self) -> Counters {
        let mut t = self.retired;
        for c in self.spaces.iter().flatten() {
            t.add_events(c);
        }
        t.entries = self.total.entries;
        t.bytes = self.total.bytes;
        t
    }

    /// Opens a new, empty namespace and returns its id.
    pub fn open_ns(&mut self) -> NsId {
        if let Some(id) = self.free_spaces.pop() {
            self.spaces[id as usize] = Some(Counters::default());
            id
        } else {
            self.spaces.push(Some(Counters::default()));
            (self.spaces.len() - 1) as NsId
        }
    }

    /// Closes an empty namespace so its id can be reused. Returns `false`
    /// (and does nothing) for [`ROOT`], an unknown id, or a namespace that
    /// still holds entries.
    pub fn close_ns(&mut self, ns: NsId) -> bool {
        match self.spaces.get(ns as usize) {
            Some(Some(c)) if ns != ROOT && c.entries == 0 => {
                let c = *c;
                self.retired.add_events(&c);
                self.spaces[ns as usize] = None;
                self.free_spaces.push(ns);
                true
            }
            _ => false,
        }
    }

    /// Removes every entry, keeping the statistics counters (but `entries`
    /// and `bytes`) and the namespaces.
    pub fn clear(&mut self) {
        self.links.clear();
        self.size.clear();
        self.expires.clear();
        self.ns.clear();
        self.head = NIL;
        self.tail = NIL;
        self.free = NIL;
        self.cursor = 0;
        self.removed.clear();
        self.total.entries = 0;
        self.total.bytes = 0;
        for c in self.spaces.iter_mut().flatten() {
            c.entries = 0;
            c.bytes = 0;
        }
    }

    /// Slots from most to least recently used.
    pub fn iter(&self) -> impl Iterator<Item = Slot> + '_ {
        let mut at = self.head;
        core::iter::from_fn(move || {
            if at == NIL {
                return None;
            }
            let s = at;
            at = self.links[s as usize].next;
            Some(s)
        })
    }

    // ---- internals ----

    #[inline(always)]
    fn counters_mut(&mut self, ns: NsId) -> &mut Counters {
        self.spaces[ns as usize]
            .as_mut()
            .expect("namespace is open while it holds entries")
    }

    #[inline(always)]
    fn is_expired(&self, slot: Slot, now: f64) -> bool {
        match self.expires.get(slot as usize) {
            Some(&e) => e != 0.0 && now >= e,
            None => false,
        }
    }

    #[inline(always)]
    fn set_expiry(&mut self, slot: Slot, at: f64) {
        if self.expires.is_empty() {
            if at == 0.0 {
                return;
            }
            self.start_expiry();
        }
        self.expires[slot as usize] = at;
    }

    #[cold]
    fn start_expiry(&mut self) {
        // Room was reserved by `reserve` (or `update`).
        self.expires.resize(self.links.len(), 0.0);
    }

    /// Makes room, before anything changes, for what an insert may add: one
    /// more slot in every slot array, and the expiry or namespace array if
    /// this entry is the first to need it. The arrays grow by half (at least
    /// [`FIRST_CAPACITY`], at most `max_entries`) with fallible
    /// reservations, so running out of memory is an [`Error::OutOfMemory`]
    /// and not an abort (a trap in wasm).
    #[inline(always)]
    fn reserve(&mut self, ns: NsId, expires_at: f64) -> Result<()> {
        let len = self.links.len();
        let full = self.free == NIL && len == self.links.capacity();
        let starts =
            (expires_at != 0.0 && self.expires.is_empty()) || (ns != ROOT && self.ns.is_empty());
        if full || starts {
            self.grow(full, ns, expires_at)?;
        }
        Ok(())
    }

    #[cold]
    fn grow(&mut self, full: bool, ns: NsId, expires_at: f64) -> Result<()> {
        let len = self.links.len();
        let max = self.limits.max_entries as usize;
        let cap = if full && len < max {
            (len + len / 2).max(FIRST_CAPACITY).min(max)
        } else {
            self.links.capacity().max(len)
        };
        grow_to(&mut self.links, cap)?;
        grow_to(&mut self.size, cap)?;
        if !self.expires.is_empty() || expires_at != 0.0 {
            grow_to(&mut self.expires, cap)?;
        }
        if !self.ns.is_empty() || ns != ROOT {
            grow_to(&mut self.ns, cap)?;
        }
        Ok(())
    }

    fn set_ns(&mut self, slot: Slot, ns: NsId) {
        if self.ns.is_empty() {
            if ns == ROOT {
                return;
            }
            // Room was reserved by `reserve`.
            self.ns.resize(self.links.len(), ROOT);
        }
        self.ns[slot as usize] = ns;
    }

    fn alloc(&mut self) -> Slot {
        if self.free != NIL {
            let s = self.free;
            self.free = self.links[s as usize].next;
            return s;
        }
        let s = self.links.len() as Slot;
        self.links.push(Link {
            prev: NIL,
            next: NIL,
        });
        self.size.push(0);
        if !self.expires.is_empty() {
            self.expires.push(0.0);
        }
        if !self.ns.is_empty() {
            self.ns.push(ROOT);
        }
        s
    }

    #[inline(always)]
    fn link_front(&mut self, s: Slot) {
        let l = &mut self.links[s as usize];
        l.prev = NIL;
        l.next = self.head;
        if self.head != NIL {
            self.links[self.head as usize].prev = s;
        } else {
            self.tail = s;
        }
        self.head = s;
    }

    #[inline(always)]
    fn unlink(&mut self, s: Slot) {
        let Link { prev: p, next: n } = self.links[s as usize];
        if p != NIL {
            self.links[p as usize].next = n;
        } else {
            self.head = n;
        }
        if n != NIL {
            self.links[n as usize].prev = p;
        } else {
            self.tail = p;
        }
    }

    #[inline(always)]
    fn move_front(&mut self, s: Slot) {
        if self.head != s {
            self.unlink(s);
            self.link_front(s);
        }
    }

    fn remove_slot(&mut self, s: Slot, cause: Cause) {
        debug_assert!(self.is_occupied(s), "slot {s} is free");
        self.unlink(s);
        let ns = self.slot_ns(s);
        let bytes = u64::from(self.size[s as usize]);
        self.total.entries -= 1;
        self.total.bytes -= bytes;
        let c = self.counters_mut(ns);
        c.entries -= 1;
        c.bytes -= bytes;
        match cause {
            Cause::Deleted => c.deletes += 1,
            Cause::Evicted => c.evictions += 1,
            Cause::Expired => c.expirations += 1,
            Cause::Cleared => {}
        }
        if let Some(e) = self.expires.get_mut(s as usize) {
            *e = 0.0;
        }
        let l = &mut self.links[s as usize];
        l.prev = FREE;
        l.next = self.free;
        self.free = s;
    }

    /// The common case of an insert into a full cache (by entries or by
    /// bytes): evicting the least recently used entry alone makes room, and
    /// the new entry takes over its slot in place. Same effect as
    /// `evict_tail` + `alloc`, without the free-list round trip. `None`
    /// (nothing done) when that is not the case.
    #[inline(always)]
    fn recycle_tail(&mut self, ns: NsId, charge: u32) -> Option<Slot> {
        let s = self.tail;
        if s == NIL
            || (self.total.entries < u64::from(self.limits.max_entries)
                && self.total.bytes + u64::from(charge) <= self.limits.max_bytes)
        {
            return None;
        }
        let old = self.size[s as usize];
        let bytes = self.total.bytes - u64::from(old) + u64::from(charge);
        let old_ns = self.slot_ns(s);
        if bytes > self.limits.max_bytes || old_ns != ns {
            return None;
        }
        let c = self.counters_mut(ns);
        c.evictions += 1;
        c.sets += 1;
        c.bytes = c.bytes - u64::from(old) + u64::from(charge);
        self.total.bytes = bytes;
        self.size[s as usize] = charge;
        self.move_front(s);
        self.removed.push(s);
        Some(s)
    }

    fn evict_tail(&mut self) {
        let s = self.tail;
        debug_assert!(s != NIL, "evicting from an empty cache");
        self.remove_slot(s, Cause::Evicted);
        self.removed.push(s);
    }

    /// Reclaims expired entries a few slots at a time, so memory held by
    /// expired entries that are never read again is bounded without timers.
    fn purge_step(&mut self, now: f64) {
        let len = self.links.len() as u32;
        if self.expires.is_empty() || len == 0 {
            return;
        }
        for _ in 0..PURGE_STEP.min(len) {
            if self.cursor >= len {
                self.cursor = 0;
            }
            let s = self.cursor;
            self.cursor += 1;
            if self.links[s as usize].prev != FREE && self.is_expired(s, now) {
                self.remove_slot(s, Cause::Expired);
                self.removed.push(s);
            }
        }
    }
}

/// Reserves room for `cap` elements in `v` without aborting when memory
/// cannot be had.
fn grow_to<T>(v: &mut Vec<T>, cap: usize) -> Result<()> {
    if v.capacity() >= cap {
        return Ok(());
    }
    v.try_reserve_exact(cap - v.len())
        .map_err(|_| Error::OutOfMemory {
            bytes: cap.saturating_mul(core::mem::size_of::<T>()) as u64,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lru(max_entries: u32, max_bytes: u64) -> Lru {
        Lru::new(Limits::new(max_entries, max_bytes).unwrap())
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let mut l = lru(3, 1 << 20);
        let a = l.insert(ROOT, 1, 0.0, 0.0).unwrap().slot;
        let b = l.insert(ROOT, 1, 0.0, 0.0).unwrap().slot;
        let c = l.insert(ROOT, 1, 0.0, 0.0).unwrap().slot;
        assert!(l.touch(a, 0.0));
        let d = l.insert(ROOT, 1, 0.0, 0.0).unwrap();
        assert_eq!(d.removed, 1);
        assert_eq!(l.removed(), &[b]);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![d.slot, a, c]);
        assert_eq!(l.totals().evictions, 1);
    }

    #[test]
    fn byte_bound_evicts_several() {
        let mut l = lru(100, 3 * (ENTRY_OVERHEAD + 10));
        for _ in 0..3 {
            l.insert(ROOT, 10, 0.0, 0.0).unwrap();
        }
        let big = l.insert(ROOT, 2 * ENTRY_OVERHEAD + 20, 0.0, 0.0).unwrap();
        assert_eq!(big.removed, 3);
        assert_eq!(l.len(), 1);
        assert_eq!(*l.removed().last().unwrap(), big.slot);
    }

    #[test]
    fn a_byte_bound_insert_recycles_the_tail_and_reports_every_removal() {
        let e = ENTRY_OVERHEAD;
        let mut l = lru(100, 4 * (e + 10));
        // two entries that expire at 5, then two that never do
        let a = l.insert(ROOT, 10, 5.0, 0.0).unwrap().slot;
        let b = l.insert(ROOT, 10, 5.0, 0.0).unwrap().slot;
        let c = l.insert(ROOT, 10, 0.0, 0.0).unwrap().slot;
        let d = l.insert(ROOT, 10, 0.0, 0.0).unwrap().slot;
        assert!(l.touch(a, 1.0) && l.touch(b, 1.0));
        // full by bytes, not by entries: the tail (c) alone makes room
        let r = l.insert(ROOT, 10, 0.0, 1.0).unwrap();
        assert_eq!((r.slot, r.removed), (c, 1));
        assert_eq!(l.removed(), &[c]);
        // at 6 the purge reclaims a and b before the tail (d) is recycled:
        // all three are reported, the recycled slot last
        let big = l.insert(ROOT, 10 + 2 * (e + 10), 0.0, 6.0).unwrap();
        assert_eq!(big.removed as usize, l.removed().len());
        assert_eq!(*l.removed().last().unwrap(), big.slot);
        assert_eq!(big.slot, d, "the tail's slot is taken over");
        assert!(l.removed().contains(&a) && l.removed().contains(&b));
        assert!(l.totals().bytes <= 4 * (e + 10));
        assert_eq!(l.totals().expirations, 2);
    }

    #[test]
    fn oversized_is_refused_and_changes_nothing() {
        let mut l = lru(10, 200);
        l.insert(ROOT, 10, 0.0, 0.0).unwrap();
        let before = l.totals();
        let err = l.insert(ROOT, 200, 0.0, 0.0).unwrap_err();
        assert_eq!(err.code(), "VALUE_TOO_LARGE");
        assert_eq!(l.totals(), before);
        let s = l.iter().next().unwrap();
        assert!(l.update(s, 1000, 0.0).is_err());
        assert_eq!(l.totals(), before);
    }

    #[test]
    fn expiry_on_touch_and_ttl() {
        let mut l = lru(10, 1 << 20);
        let s = l.insert(ROOT, 1, 100.0, 0.0).unwrap().slot;
        assert_eq!(l.ttl(s, 40.0), Some(60.0));
        assert!(l.touch(s, 99.0));
        assert!(!l.touch(s, 100.0));
        assert!(!l.is_occupied(s));
        assert_eq!(l.totals().expirations, 1);
        assert_eq!(l.totals().misses, 1);
    }

    #[test]
    fn purge_reclaims_untouched_expired_entries() {
        let mut l = lru(100, 1 << 20);
        for _ in 0..8 {
            l.insert(ROOT, 1, 10.0, 0.0).unwrap();
        }
        let r = l.insert(ROOT, 1, 0.0, 20.0).unwrap();
        assert_eq!(r.removed, PURGE_STEP);
        let r = l.insert(ROOT, 1, 0.0, 20.0).unwrap();
        assert_eq!(r.removed, PURGE_STEP);
        assert_eq!(l.len(), 2);
        assert_eq!(l.totals().expirations, 8);
    }

    #[test]
    fn slot_arrays_grow_on_demand_never_past_max_entries() {
        let mut l = lru(10_000, 1 << 30);
        assert_eq!(l.links.capacity(), 0, "nothing reserved up front");
        l.insert(ROOT, 1, 0.0, 0.0).unwrap();
        assert_eq!(l.links.capacity(), FIRST_CAPACITY);
        for _ in 1..9 {
            l.insert(ROOT, 1, 0.0, 0.0).unwrap();
        }
        assert_eq!(l.links.capacity(), FIRST_CAPACITY + FIRST_CAPACITY / 2);
        for _ in 9..10_000 {
            l.insert(ROOT, 1, 5.0, 0.0).unwrap();
        }
        assert_eq!(l.links.capacity(), 10_000);
        assert!(l.expires.capacity() >= l.links.len());
        l.insert(ROOT, 1, 0.0, 0.0).unwrap();
        assert_eq!(l.links.capacity(), 10_000, "a full cache recycles");
        let t = l.open_ns();
        l.insert(t, 1, 0.0, 0.0).unwrap();
        assert_eq!(l.ns.len(), 10_000);
    }

    #[test]
    fn grow_to_reports_out_of_memory() {
        let mut v: Vec<u64> = Vec::new();
        let err = grow_to(&mut v, usize::MAX / 4).unwrap_err();
        assert_eq!(err.code(), "OUT_OF_MEMORY");
        assert_eq!(v.capacity(), 0);
    }

    #[test]
    fn namespaces_count_separately() {
        let mut l = lru(10, 1 << 20);
        let t = l.open_ns();
        let a = l.insert(ROOT, 1, 0.0, 0.0).unwrap().slot;
        let b = l.insert(t, 1, 0.0, 0.0).unwrap().slot;
        assert_eq!(l.slot_ns(a), ROOT);
        assert_eq!(l.slot_ns(b), t);
        l.touch(b, 0.0);
        l.miss(t);
        let s = l.stats(t).unwrap();
        assert_eq!((s.hits, s.misses, s.entries), (1, 1, 1));
        assert_eq!(l.stats(ROOT).unwrap().entries, 1);
        assert_eq!(l.totals().entries, 2);
        assert!(!l.close_ns(t), "not empty");
        assert!(l.remove(b, 0.0));
        assert!(l.close_ns(t));
        assert_eq!(l.stats(t), None);
        assert_eq!(l.open_ns(), t, "ids are reused");
    }
}
