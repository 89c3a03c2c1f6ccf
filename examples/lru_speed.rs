// Native speed of the slot engine's hot operations (not a test):
//   cargo run --release --example lru_speed
use edgecache::{Limits, Lru, ROOT};
use std::time::Instant;

fn main() {
    const CAP: u32 = 10_000;
    const N: u32 = match option_env!("N") {
        Some(_) => 200_000,
        None => 5_000_000,
    };
    let mut lru = Lru::new(Limits::new(CAP, u64::MAX / 2).unwrap());
    for _ in 0..CAP {
        lru.insert(ROOT, 10, 0.0, 0.0).unwrap();
    }
    let t = Instant::now();
    let mut sink = 0u64;
    for _ in 0..N {
        sink += u64::from(lru.insert(ROOT, 10, 0.0, 0.0).unwrap().slot);
    }
    println!(
        "insert+evict: {:.1} ns/op",
        t.elapsed().as_nanos() as f64 / f64::from(N)
    );
    let mut x: u32 = 2_463_534_242;
    let t = Instant::now();
    for _ in 0..N {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        sink += u64::from(lru.touch(x % CAP, 0.0));
    }
    println!(
        "touch: {:.1} ns/op ({sink})",
        t.elapsed().as_nanos() as f64 / f64::from(N)
    );
}
