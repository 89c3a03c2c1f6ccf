//! wasm-bindgen tests: the core and its JS glue, run inside a real JS engine.
//! `scripts/test.sh` runs this file twice: in Node, and in headless
//! Chromium (WASM_BINDGEN_USE_BROWSER=1 with Debian's chromedriver).
#![cfg(target_arch = "wasm32")]

use edgecache::wasm::{encode_scope, WasmGlob, WasmLru};
use edgecache::{Clock, Config, Scope, Store};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;

fn code_of(e: &JsValue) -> String {
    js_sys::Reflect::get(e, &"code".into())
        .unwrap()
        .as_string()
        .unwrap()
}

#[wasm_bindgen_test]
fn lru_packs_slot_and_removals_into_one_small_integer() {
    let mut lru = WasmLru::new(2.0, 1e9).unwrap();
    assert_eq!(lru.insert(0, 10.0, 0.0, 0.0), 0);
    assert_eq!(lru.insert(0, 10.0, 0.0, 0.0), 1);
    assert!(lru.touch(0, 0.0));
    // the third insert evicts slot 1 (least recently used) and reuses it
    assert_eq!(lru.insert(0, 10.0, 0.0, 0.0), 1 | 1 << 29);
    assert_eq!(lru.removed(), vec![1]);
    assert_eq!(lru.totals()[4], 1.0, "one eviction");
    // an entry that needs the room of both: several removed
    let mut lru = WasmLru::new(10.0, 3.0 * 74.0).unwrap();
    lru.insert(0, 10.0, 0.0, 0.0);
    lru.insert(0, 10.0, 0.0, 0.0);
    // both are evicted, oldest first, and the last one freed is reused
    assert_eq!(lru.insert(0, 140.0, 0.0, 0.0), 1 | 1 << 30);
    assert_eq!(lru.removed(), vec![0, 1]);
    let e = WasmLru::new(f64::from(1u32 << 29), 1e9)
        .err()
        .expect("over 2^29 - 1 entries");
    assert_eq!(code_of(&e), "INVALID_OPTION");
}

#[wasm_bindgen_test]
fn lookups_recorded_in_the_io_block_are_applied_before_any_other_call() {
    use edgecache::wasm::MISS;
    let mut lru = WasmLru::new(2.0, 1e9).unwrap();
    assert_eq!(lru.insert(0, 10.0, 0.0, 0.0), 0);
    assert_eq!(lru.insert(0, 10.0, 0.0, 0.0), 1);
    // what js/cache.ts does on a hit of slot 0 and a miss in the root:
    // write the records after the count, then the count
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    let heap = js_sys::Uint32Array::new(&memory.buffer());
    let io = lru.io() / 4;
    heap.set_index(io + 3, 0);
    heap.set_index(io + 4, MISS);
    heap.set_index(io + 2, 2);
    // slot 0 is now the most recently used: the next insert evicts slot 1
    assert_eq!(lru.insert(0, 10.0, 0.0, 0.0), 1 | 1 << 29);
    assert_eq!(heap.get_index(io + 2), 0, "applied and emptied");
    let t = lru.totals();
    assert_eq!((t[0], t[1]), (1.0, 1.0), "one hit, one miss");
    // several removed: their list is read in place through the block
    let mut lru = WasmLru::new(10.0, 3.0 * 74.0).unwrap();
    lru.insert(0, 10.0, 0.0, 0.0);
    lru.insert(0, 10.0, 0.0, 0.0);
    assert_eq!(lru.insert(0, 140.0, 0.0, 0.0), 1 | 1 << 30);
    let heap = js_sys::Uint32Array::new(&memory.buffer());
    let io = lru.io() / 4;
    let (at, len) = (heap.get_index(io) / 4, heap.get_index(io + 1));
    let listed: Vec<u32> = (0..len).map(|i| heap.get_index(at + i)).collect();
    assert_eq!(listed, vec![0, 1]);
}

#[wasm_bindgen_test]
fn lru_expiry_uses_the_given_time() {
    let now = js_sys::Date::now();
    let mut lru = WasmLru::new(10.0, 1e9).unwrap();
    let slot = lru.insert(0, 1.0, now + 50.0, now) as u32;
    assert_eq!(slot, 0);
    assert_eq!(lru.ttl(slot, now + 20.0), 30.0);
    assert!(lru.touch(slot, now + 49.0));
    assert!(!lru.touch(slot, now + 50.0));
}

#[wasm_bindgen_test]
fn errors_cross_the_boundary_with_a_code() {
    let e = WasmLru::new(0.0, 1e9)
        .err()
        .expect("maxEntries 0 is refused");
    assert_eq!(code_of(&e), "INVALID_OPTION");
    assert!(e.is_instance_of::<js_sys::Error>());
    let e = encode_scope(None, None).unwrap_err();
    assert_eq!(code_of(&e), "INVALID_SCOPE");
    assert_eq!(encode_scope(Some("acme".into()), None).unwrap(), "t4:acme|");
    let mut lru = WasmLru::new(10.0, 100.0).unwrap();
    assert_eq!(lru.insert(0, 1000.0, 0.0, 0.0), -1, "too large");
    assert_eq!(lru.totals()[6], 0.0, "nothing stored");
}

#[wasm_bindgen_test]
fn glob_matches_utf8_bytes() {
    assert!(WasmGlob::new("user:*:profile").matches("user:é:profile"));
    assert!(
        !WasmGlob::new("user:?:profile").matches("user:é:profile"),
        "é is two bytes"
    );
    assert!(WasmGlob::new("user:??:profile").matches("user:é:profile"));
}

struct JsClock;
impl Clock for JsClock {
    fn now_ms(&self) -> u64 {
        js_sys::Date::now() as u64
    }
}

#[wasm_bindgen_test]
fn store_runs_on_wasm_with_a_js_clock() {
    let mut store: Store<String, _> = Store::new(Config::default(), JsClock);
    store.set("k", "v".into(), Some(60_000)).unwrap();
    let left = store.ttl("k").unwrap();
    assert!(left > 59_000 && left <= 60_000, "{left}");
    let t = Scope::tenant("acme").unwrap();
    assert!(store.scoped(&t).get("k").is_none());
    assert_eq!(store.stats().counters.entries, 1);
}
