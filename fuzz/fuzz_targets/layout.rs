//! The Redis key layout and glob escaping on arbitrary names: keys are
//! injective, `escape_glob` makes any string match itself and only itself,
//! and a scope's pattern matches exactly the keys of that scope whose
//! cache key matches the glob.
//!
//! Input: bytes split at 0xFF into prefix, tenant, user, key, other key, glob.
//!
//!     cargo +nightly fuzz run layout fuzz/corpus/layout -- -max_total_time=600
#![no_main]

use edgecache::{escape_glob, glob_match, Glob, Kind, Layout, Scope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0xFF).map(String::from_utf8_lossy);
    let mut next = || parts.next().map(|c| c.into_owned()).unwrap_or_default();
    let (prefix, tenant, user, key, other, glob) = (next(), next(), next(), next(), next(), next());

    // escape_glob: a literal matches itself, and a different string never.
    let lit = Glob::new(&escape_glob(&key));
    assert!(lit.matches(&key));
    if other != key {
        assert!(!lit.matches(&other));
    }

    let Ok(layout) = Layout::new(&prefix) else {
        return;
    };
    let scope = match (tenant.is_empty(), user.is_empty()) {
        (true, true) => None,
        (t, u) => Scope::new((!t).then_some(tenant.as_str()), (!u).then_some(user.as_str())).ok(),
    };
    let a = layout.key(Kind::Value, scope.as_ref(), &key);
    let b = layout.key(Kind::Counter, scope.as_ref(), &key);
    let c = layout.key(Kind::Value, None, &other);
    assert_ne!(a, b);
    if scope.is_some() || other != key {
        assert_ne!(a, c);
    }
    let pattern = Glob::new(&layout.pattern(scope.as_ref(), &glob));
    let tail = glob_match(format!("x{glob}").as_bytes(), format!("x{key}").as_bytes());
    assert_eq!(pattern.matches(&a), tail);
    assert_eq!(pattern.matches(&b), tail);
    if scope.is_some() {
        // A scope's pattern never reaches the root's keys.
        assert!(!pattern.matches(&c));
    }
    assert!(Glob::new(&layout.everything()).matches(&a));
});
