//! wasm-bindgen glue for the JavaScript package. Thin on purpose: every
//! decision is made in the pure-Rust core, and errors become JS `Error`s
//! with a `code` property only here, at the boundary (the JS wrapper turns
//! them into `EdgeCacheError`).
//!
//! The hot methods of [`WasmLru`] take and return plain numbers so that a
//! call costs no allocation and no string copy.

use wasm_bindgen::prelude::*;

use crate::error::Error;
use crate::glob::Glob;
use crate::lru::{Counters, Limits, Lru};
use crate::scope::Scope;

/// Converts a core error into a JS `Error` carrying `code`.
pub(crate) fn to_js(e: Error) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(
        &err,
        &JsValue::from_str("code"),
        &JsValue::from_str(e.code()),
    );
    err.into()
}

/// `insert` packs its answer into one small integer, so that V8 receives a
/// Smi (no heap number is allocated per call): the slot in the low 29 bits,
/// [`ONE_REMOVED`] if one entry was removed (its slot is the one returned),
/// [`SEVERAL_REMOVED`] if more were (read them with `removed()`).
const SLOT_BITS: u32 = 29;
/// The most entries the JS cache may hold (the slot must fit in 29 bits).
pub const MAX_JS_ENTRIES: u32 = (1 << SLOT_BITS) - 1;
const ONE_REMOVED: i32 = 1 << SLOT_BITS;
const SEVERAL_REMOVED: i32 = 1 << (SLOT_BITS + 1);

/// `insert`/`update`/`resize`: the entry is larger than `maxBytes` (or the
/// engine's own per-entry limit of 2^32 - 1 bytes).
pub const TOO_LARGE: i32 = -1;
/// `insert`/`update`/`resize`: the wasm memory could not grow.
pub const OUT_OF_MEMORY: i32 = -2;

fn failure(e: Error) -> i32 {
    match e {
        Error::OutOfMemory { .. } => OUT_OF_MEMORY,
        _ => TOO_LARGE,
    }
}

fn counters(c: Counters) -> Vec<f64> {
    [
        c.hits,
        c.misses,
        c.sets,
        c.deletes,
        c.evictions,
        c.expirations,
        c.entries,
        c.bytes,
    ]
    .map(|n| n as f64)
    .to_vec()
}

/// Lookups js/cache.ts may record in [`WasmLru::io`] before they are applied.
pub const BATCH: u32 = 256;
/// Words of the `io` block: where the removed slots are, how many, how many
/// lookups are pending, then the pending lookups.
const IO_REMOVED_AT: usize = 0;
const IO_REMOVED_LEN: usize = 1;
const IO_PENDING: usize = 2;
const IO_FIRST: usize = 3;
/// A pending lookup with this bit set is a miss in namespace `x & !MISS`
/// (all bits set: [`NO_NS`](crate::lru::NO_NS)); without it, a hit on slot `x`.
pub const MISS: u32 = 1 << 31;

/// The slot engine, for `MemoryCache` (js/cache.ts).
///
/// Besides its methods, it shares a block of wasm memory with JS (its
/// address: [`WasmLru::io`]), so that the two most frequent things cost no
/// call across the boundary:
///
/// * **Lookups are batched.** While a cache has never had a TTL, a `get` hit
///   cannot find an expired entry, so JS records the slot (or, for a miss,
///   `MISS | ns`) in the block and counts it in its third word instead of
///   calling `touch`/`miss`. Every method here first applies the pending
///   lookups in order ([`WasmLru::sync`]), so recency, statistics and
///   evictions are exactly those of immediate calls; JS calls `sync` itself
///   when [`BATCH`] are pending.
/// * **Removed slots are read in place.** When an insert or update removes
///   several entries, the block's first two words give the address and
///   length of the engine's list of removed slots, which JS reads from
///   memory instead of asking for a copy.
#[wasm_bindgen(js_name = Lru)]
pub struct WasmLru {
    lru: Lru,
    /// The shared block; empty until JS first asks for its address or an
    /// insert first removes several entries, so an idle cache costs nothing
    /// more. Once allocated it never moves.
    io: Vec<u32>,
}

#[wasm_bindgen(js_class = Lru)]
impl WasmLru {
    /// `maxEntries` (1 to 2^29 - 1), `maxBytes` (an integer >= 1).
    #[wasm_bindgen(constructor)]
    pub fn new(max_entries: f64, max_bytes: f64) -> Result<WasmLru, JsValue> {
        if max_entries > f64::from(MAX_JS_ENTRIES) {
            return Err(to_js(Error::InvalidOption {
                name: "maxEntries",
                reason: format!("must be at most {MAX_JS_ENTRIES}"),
            }));
        }
        let entries = if max_entries.fract() == 0.0 && max_entries >= 1.0 {
            max_entries as u32
        } else {
            0
        };
        let bytes = if max_bytes.fract() == 0.0 && max_bytes >= 1.0 {
            max_bytes as u64
        } else {
            0
        };
        Limits::new(entries, bytes)
            .map(|l| WasmLru {
                lru: Lru::new(l),
                io: Vec::new(),
            })
            .map_err(to_js)
    }

    /// A new entry: the slot, with `ONE_REMOVED` or `SEVERAL_REMOVED` set
    /// when entries were removed to make room; [`TOO_LARGE`] if the entry
    /// is too large, [`OUT_OF_MEMORY`] if the slot arrays cannot grow.
    pub fn insert(&mut self, ns: u32, size: f64, expires: f64, now: f64) -> i32 {
        self.sync();
        match self.lru.insert(ns, size as u64, expires, now) {
            Ok(i) => {
                let flag = match i.removed {
                    0 => 0,
                    1 => ONE_REMOVED,
                    _ => {
                        self.publish_removed();
                        SEVERAL_REMOVED
                    }
                };
                i.slot as i32 | flag
            }
            Err(e) => failure(e),
        }
    }

    /// Overwrite: how many entries were evicted, or [`TOO_LARGE`] /
    /// [`OUT_OF_MEMORY`].
    pub fn update(&mut self, slot: u32, size: f64, expires: f64) -> i32 {
        self.sync();
        match self.lru.update(slot, size as u64, expires) {
            Ok(n) => {
                self.publish_removed();
                n as i32
            }
            Err(e) => failure(e),
        }
    }

    /// New size, same expiry (a counter re-measured by a custom `sizeOf`):
    /// as `update`.
    pub fn resize(&mut self, slot: u32, size: f64) -> i32 {
        self.sync();
        match self.lru.resize(slot, size as u64) {
            Ok(n) => {
                self.publish_removed();
                n as i32
            }
            Err(e) => failure(e),
        }
    }

    /// Lookup hit (true) or expired and removed (false).
    pub fn touch(&mut self, slot: u32, now: f64) -> bool {
        self.sync();
        self.lru.touch(slot, now)
    }

    /// A lookup that found no slot.
    pub fn miss(&mut self, ns: u32) {
        self.sync();
        self.lru.miss(ns)
    }

    /// Alive (true) or expired and removed (false); recency unchanged.
    pub fn alive(&mut self, slot: u32, now: f64) -> bool {
        self.sync();
        self.lru.alive(slot, now)
    }

    /// A counter write to an alive entry.
    pub fn write(&mut self, slot: u32) {
        self.sync();
        self.lru.write(slot)
    }

    /// Delete; true if the entry was alive.
    pub fn remove(&mut self, slot: u32, now: f64) -> bool {
        self.sync();
        self.lru.remove(slot, now)
    }

    /// Remove without counting (clear).
    pub fn discard(&mut self, slot: u32) {
        self.sync();
        self.lru.discard(slot)
    }

    /// Remaining ms, `Infinity` for no expiry, -1 if expired (and removed).
    pub fn ttl(&mut self, slot: u32, now: f64) -> f64 {
        self.sync();
        self.lru.ttl(slot, now).unwrap_or(-1.0)
    }

    /// Slots removed by the last insert or update.
    pub fn removed(&mut self) -> Vec<u32> {
        self.sync();
        self.lru.removed().to_vec()
    }

    /// `[hits, misses, sets, deletes, evictions, expirations, entries, bytes]`
    /// of a namespace (all zero if it is not open).
    pub fn stats(&mut self, ns: u32) -> Vec<f64> {
        self.sync();
        counters(self.lru.stats(ns).unwrap_or_default())
    }

    /// The same for the whole cache.
    pub fn totals(&mut self) -> Vec<f64> {
        self.sync();
        counters(self.lru.totals())
    }

    /// A new namespace id.
    #[wasm_bindgen(js_name = openNs)]
    pub fn open_ns(&mut self) -> u32 {
        self.sync();
        self.lru.open_ns()
    }

    /// Frees an empty namespace id.
    #[wasm_bindgen(js_name = closeNs)]
    pub fn close_ns(&mut self, ns: u32) -> bool {
        self.sync();
        self.lru.close_ns(ns)
    }

    /// The address of the block shared with JS (see the type's docs): `BATCH
    /// + 3` words, at a fixed address for the life of this engine.
    pub fn io(&mut self) -> u32 {
        self.io_block().as_ptr() as usize as u32
    }

    fn io_block(&mut self) -> &mut [u32] {
        if self.io.is_empty() {
            self.io = vec![0; IO_FIRST + BATCH as usize];
        }
        &mut self.io
    }

    /// Applies the lookups JS recorded in the block, oldest first, and
    /// empties it. Every other method does this first.
    pub fn sync(&mut self) {
        let n = self
            .io
            .get(IO_PENDING)
            .map_or(0, |&n| (n as usize).min(BATCH as usize));
        if n == 0 {
            return;
        }
        self.io[IO_PENDING] = 0;
        for &x in &self.io[IO_FIRST..IO_FIRST + n] {
            if x & MISS == 0 {
                self.lru.hit(x);
            } else if x == u32::MAX {
                self.lru.miss(crate::lru::NO_NS);
            } else {
                self.lru.miss(x & !MISS);
            }
        }
    }

    /// Where JS finds the slots the last insert or update removed.
    fn publish_removed(&mut self) {
        let at = self.lru.removed().as_ptr() as usize as u32;
        let len = self.lru.removed().len() as u32;
        let io = self.io_block();
        io[IO_REMOVED_AT] = at;
        io[IO_REMOVED_LEN] = len;
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.sync();
        self.lru.clear()
    }
}

/// A compiled Redis glob.
#[wasm_bindgen(js_name = Glob)]
pub struct WasmGlob(Glob);

#[wasm_bindgen(js_class = Glob)]
impl WasmGlob {
    /// Compiles `pattern`.
    #[wasm_bindgen(constructor)]
    pub fn new(pattern: &str) -> WasmGlob {
        WasmGlob(Glob::new(pattern))
    }

    /// Whether `key` matches (byte-wise on its UTF-8 form, as Redis).
    pub fn matches(&self, key: &str) -> bool {
        self.0.matches(key)
    }

    /// Compiles a pattern given as bytes (the WTF-8 form of a string with
    /// lone surrogates, written by js/cache.ts).
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(pattern: &[u8]) -> WasmGlob {
        WasmGlob(Glob::from_bytes(pattern))
    }

    /// Whether a key given as bytes (WTF-8) matches.
    #[wasm_bindgen(js_name = matchesBytes)]
    pub fn matches_bytes(&self, key: &[u8]) -> bool {
        self.0.matches_bytes(key)
    }
}

/// The unambiguous encoding of a scope (see `Scope::encode`).
#[wasm_bindgen(js_name = encodeScope)]
pub fn encode_scope(tenant: Option<String>, user: Option<String>) -> Result<String, JsValue> {
    Scope::new(tenant.as_deref(), user.as_deref())
        .map(|s| s.encode())
        .map_err(to_js)
}
