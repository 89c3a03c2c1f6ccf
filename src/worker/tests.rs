//! The tier's logic on the host: an in-memory Redis behind [`Transport`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use serde_json::{json, Value};

use super::*;
use crate::glob::Glob;
use crate::rest::test_util::b64;

const KEY: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/// Runs a future whose I/O is synchronous (the fake Redis answers at once).
fn run<F: Future>(f: F) -> F::Output {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut f = Box::pin(f);
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the fake transport never waits"),
    }
}

/// A Redis of strings that speaks the Upstash REST protocol (base64 results).
#[derive(Clone, Default)]
struct FakeRedis {
    data: Rc<RefCell<HashMap<String, String>>>,
    down: Rc<Cell<bool>>,
    /// Answers 401 WRONGPASS, as the bridge does for a wrong token.
    wrong_token: Rc<Cell<bool>>,
    calls: Rc<Cell<u32>>,
}

impl Transport for FakeRedis {
    fn post(&self, body: String) -> BoxFuture<'_, Result<(u16, Vec<u8>)>> {
        self.calls.set(self.calls.get() + 1);
        let answer = if self.wrong_token.get() {
            Ok((401, br#"{"error":"WRONGPASS invalid token"}"#.to_vec()))
        } else if self.down.get() {
            Err(Error::L2Http {
                status: 0,
                message: "connection refused".into(),
            })
        } else {
            let cmd: Vec<Value> = serde_json::from_str(&body).unwrap();
            let s = |i: usize| cmd[i].as_str().unwrap().to_owned();
            let mut d = self.data.borrow_mut();
            let result = match s(0).as_str() {
                "GET" => d
                    .get(&s(1))
                    .map(|v| json!(b64(v.as_bytes())))
                    .unwrap_or(Value::Null),
                "SET" => {
                    d.insert(s(1), s(2));
                    json!("OK")
                }
                "UNLINK" => json!((1..cmd.len())
                    .filter(|&i| d.remove(&s(i)).is_some())
                    .count()),
                "INCRBY" => {
                    let n: i64 = d.get(&s(1)).map(|v| v.parse().unwrap()).unwrap_or(0)
                        + cmd[2].as_i64().unwrap();
                    d.insert(s(1), n.to_string());
                    json!(n)
                }
                "SCAN" => {
                    let g = Glob::new(&s(3));
                    let keys: Vec<Value> = d
                        .keys()
                        .filter(|k| g.matches(k))
                        .map(|k| json!(b64(k.as_bytes())))
                        .collect();
                    json!([b64(b"0"), keys])
                }
                c => panic!("unexpected command {c}"),
            };
            Ok((
                200,
                serde_json::to_vec(&json!({ "result": result })).unwrap(),
            ))
        };
        Box::pin(std::future::ready(answer))
    }
}

fn settings(tiered: bool) -> Settings {
    let mut s = Settings::from_lookup(|name| match name {
        "EDGECACHE_REDIS_URL" if tiered => Some("http://127.0.0.1:1".into()),
        "EDGECACHE_REDIS_TOKEN" if tiered => Some("t".into()),
        "EDGECACHE_SIGNING_KEYS" => Some(KEY.into()),
        "EDGECACHE_PREFIX" => Some("app".into()),
        _ => None,
    })
    .unwrap();
    s.breaker_threshold = 2;
    s
}

/// The context the caches of these tests (prefix `app`) seal values in.
const APP: crate::envelope::Context<'static> = crate::envelope::Context::Tier {
    prefix: "app",
    kind: Kind::Value,
};

fn cache(redis: &FakeRedis, clock: &crate::ManualClock) -> (EdgeCache, Rc<RefCell<Vec<String>>>) {
    cache_under("app", redis, clock)
}

fn cache_under(
    prefix: &str,
    redis: &FakeRedis,
    clock: &crate::ManualClock,
) -> (EdgeCache, Rc<RefCell<Vec<String>>>) {
    let logs = Rc::new(RefCell::new(Vec::new()));
    let l = logs.clone();
    let c = clock.clone();
    let mut settings = settings(true);
    settings.prefix = prefix.into();
    let cache = EdgeCache::new(
        &settings,
        Some(Box::new(redis.clone())),
        Now::new(move || c.now_ms()),
        Box::new(move |m| l.borrow_mut().push(m.to_owned())),
    )
    .unwrap();
    (cache, logs)
}

#[test]
fn values_are_signed_json_under_the_shared_layout() {
    let redis = FakeRedis::default();
    let clock = crate::ManualClock::new(1_000);
    let (a, _) = cache(&redis, &clock);
    run(a.set("user:1", &json!({ "name": "Ada" }))).unwrap();
    let acme = a.scope(&Scope::tenant("acme").unwrap()).unwrap();
    run(acme.set_with_ttl("user:1", &json!([1, 2]), 5_000)).unwrap();
    let raw = redis.data.borrow()["app:v:r|user:1"].clone();
    // What the JS Signer opens: a JSON payload bound to the prefix and the
    // key, at the root.
    let signer = signing_keys(KEY).unwrap();
    let opened = signer
        .open_in(APP, None, "user:1", &raw, 1_000)
        .unwrap()
        .unwrap();
    assert_eq!(opened.encoding(), Encoding::Json);
    assert_eq!(opened.json().unwrap(), r#"{"name":"Ada"}"#);
    let scoped = redis.data.borrow()["app:v:t4:acme|user:1"].clone();
    let opened = signer
        .open_in(
            APP,
            Some(&Scope::tenant("acme").unwrap()),
            "user:1",
            &scoped,
            1_000,
        )
        .unwrap()
        .unwrap();
    assert_eq!(opened.expires_at(), 6_000);
    // Another isolate reads it from L2, then from its L1.
    let (b, _) = cache(&redis, &clock);
    let hit = run(b.lookup::<Value>("user:1")).unwrap().unwrap();
    assert_eq!((hit.value, hit.tier), (json!({ "name": "Ada" }), Tier::L2));
    assert_eq!(
        run(b.lookup::<Value>("user:1")).unwrap().unwrap().tier,
        Tier::L1
    );
    let bacme = b.scope(&Scope::tenant("acme").unwrap()).unwrap();
    assert_eq!(
        run(bacme.get::<Vec<u32>>("user:1")).unwrap(),
        Some(vec![1, 2])
    );
    assert_eq!(
        run(b
            .scope(&Scope::tenant("other").unwrap())
            .unwrap()
            .get::<Value>("user:1"))
        .unwrap(),
        None
    );
    clock.advance(5_000);
    assert_eq!(
        run(bacme.get::<Vec<u32>>("user:1")).unwrap(),
        None,
        "expired"
    );
}

#[test]
fn a_tampered_or_moved_value_is_never_served() {
    let redis = FakeRedis::default();
    let clock = crate::ManualClock::new(1_000);
    let (a, _) = cache(&redis, &clock);
    run(a.set("a", &1)).unwrap();
    run(a.set("b", &2)).unwrap();
    let moved = redis.data.borrow()["app:v:r|a"].clone();
    redis.data.borrow_mut().insert("app:v:r|b".into(), moved);
    redis
        .data
        .borrow_mut()
        .insert("app:v:r|c".into(), "42".into());
    let (b, logs) = cache(&redis, &clock);
    assert_eq!(run(b.get::<i64>("b")).unwrap(), None);
    assert_eq!(run(b.get::<i64>("c")).unwrap(), None);
    assert_eq!(run(b.get::<i64>("a")).unwrap(), Some(1));
    let l2 = b.stats().l2.unwrap();
    assert_eq!((l2.rejected, l2.hits), (2, 1));
    assert_eq!(logs.borrow().len(), 1, "warned once: {:?}", logs.borrow());
}

#[test]
fn issue_14_a_value_copied_from_another_prefix_is_rejected() {
    // Two caches on one Redis with one signing key (staging and prod, or
    // two Workers): a value copied from admin's key to shop's is not served.
    let redis = FakeRedis::default();
    let clock = crate::ManualClock::new(1_000);
    let (admin, _) = cache_under("admin", &redis, &clock);
    let acme = Scope::tenant("acme").unwrap();
    run(admin.set("flags", &json!({ "beta": true }))).unwrap();
    run(admin.scope(&acme).unwrap().set("flags", &1)).unwrap();
    // Byte for byte the envelope docs/ENVELOPE.md gives for admin (and
    // tests/js/signer.test.mjs checks the JS tier writes).
    let written = redis.data.borrow()["admin:v:r|flags"].clone();
    assert!(
        include_str!("../../docs/ENVELOPE.md").contains(&format!("\"envelope\": \"{written}\"")),
        "{written} is not the documented vector"
    );
    for (from, to) in [
        ("admin:v:r|flags", "shop:v:r|flags"),
        ("admin:v:t4:acme|flags", "shop:v:t4:acme|flags"),
    ] {
        let v = redis.data.borrow()[from].clone();
        redis.data.borrow_mut().insert(to.into(), v);
    }
    let (shop, logs) = cache_under("shop", &redis, &clock);
    assert_eq!(run(shop.get::<Value>("flags")).unwrap(), None);
    let shop_acme = shop.scope(&acme).unwrap();
    assert_eq!(run(shop_acme.get::<Value>("flags")).unwrap(), None);
    let l2 = shop.stats().l2.unwrap();
    assert_eq!((l2.rejected, l2.hits), (2, 0));
    assert!(
        logs.borrow()[0].contains("BAD_SIGNATURE"),
        "{:?}",
        logs.borrow()
    );
    // Where they were written, they open.
    let (reader, _) = cache_under("admin", &redis, &clock);
    assert_eq!(
        run(reader.get::<Value>("flags")).unwrap(),
        Some(json!({ "beta": true }))
    );
    assert_eq!(
        run(reader.scope(&acme).unwrap().get::<i64>("flags")).unwrap(),
        Some(1)
    );
}

#[test]
fn a_version_1_envelope_is_a_rejected_miss() {
    // docs/ENVELOPE.md's first version 1 vector: KEY's secret, key id k1,
    // key user:1 at the root, written before envelopes bound the prefix.
    let v1 = "AQJrMQAAAAAAAAAAAQAAABR7Im5hbWUiOiJBZGEiLCJuIjoxfatoHMqKBoxkyvyhBGXRIBQTScDhzJKiHuHqzr3oUOou";
    let redis = FakeRedis::default();
    redis
        .data
        .borrow_mut()
        .insert("app:v:r|user:1".into(), v1.into());
    let clock = crate::ManualClock::new(1_000);
    let (a, logs) = cache(&redis, &clock);
    assert_eq!(run(a.get::<Value>("user:1")).unwrap(), None);
    assert_eq!(a.stats().l2.unwrap().rejected, 1);
    assert!(
        logs.borrow()[0].contains("OUTDATED_ENVELOPE"),
        "{:?}",
        logs.borrow()
    );
    // Not deleted: a miss, as for any value that fails to open.
    assert!(redis.data.borrow().contains_key("app:v:r|user:1"));
}

#[test]
fn redis_down_serves_l1_and_opens_the_breaker() {
    let redis = FakeRedis::default();
    let clock = crate::ManualClock::new(1_000);
    let (a, _) = cache(&redis, &clock);
    run(a.set("kept", &"v")).unwrap();
    redis.down.set(true);
    assert_eq!(run(a.get::<String>("kept")).unwrap().as_deref(), Some("v"));
    assert_eq!(run(a.get::<String>("x")).unwrap(), None);
    assert_eq!(run(a.get::<String>("y")).unwrap(), None);
    let calls = redis.calls.get();
    assert_eq!(run(a.get::<String>("z")).unwrap(), None);
    assert_eq!(redis.calls.get(), calls, "the open breaker fails fast");
    let s = a.stats();
    assert_eq!(s.breaker.unwrap().0, BreakerState::Open);
    assert_eq!(s.l2.unwrap().errors["L2_UNAVAILABLE"], 1);
    assert_eq!(run(a.delete("kept")).unwrap_err().code(), "L2_UNAVAILABLE");
    clock.advance(5_000);
    redis.down.set(false);
    assert_eq!(run(a.get::<String>("x")).unwrap(), None);
    assert_eq!(a.stats().breaker.unwrap().0, BreakerState::Closed);
}

#[test]
fn counters_deletes_and_patterns() {
    let redis = FakeRedis::default();
    let clock = crate::ManualClock::new(0);
    let (a, _) = cache(&redis, &clock);
    assert_eq!(run(a.incr("hits", 2)).unwrap(), 2);
    assert_eq!(run(a.incr("hits", 3)).unwrap(), 5);
    assert_eq!(redis.data.borrow()["app:n:r|hits"], "5");
    assert_eq!(run(a.counter("hits")).unwrap(), Some(5));
    let t = a.scope(&Scope::tenant("a*").unwrap()).unwrap();
    let tab = a.scope(&Scope::tenant("ab").unwrap()).unwrap();
    run(t.set("page:1", &1)).unwrap();
    run(tab.set("page:1", &1)).unwrap();
    run(a.set("page:2", &1)).unwrap();
    assert_eq!(run(t.delete_pattern("page:*")).unwrap(), 1);
    assert_eq!(run(t.get::<i64>("page:1")).unwrap(), None);
    assert_eq!(run(tab.get::<i64>("page:1")).unwrap(), Some(1));
    assert_eq!(run(a.get::<i64>("page:2")).unwrap(), Some(1));
    assert!(run(a.delete("hits")).unwrap());
    assert!(!redis.data.borrow().contains_key("app:n:r|hits"));
    assert_eq!(run(a.counter("hits")).unwrap(), None);
}

#[test]
fn l1_only_without_redis() {
    let cache = EdgeCache::new(&settings(false), None, Now::new(|| 0), Box::new(|_| {})).unwrap();
    assert!(!cache.is_tiered());
    run(cache.set("k", &json!({ "a": 1 }))).unwrap();
    assert_eq!(
        run(cache.lookup::<Value>("k")).unwrap().unwrap().tier,
        Tier::L1
    );
    assert_eq!(run(cache.incr("n", 1)).unwrap(), 1);
    assert_eq!(
        run(cache.delete_pattern("*")).unwrap(),
        2,
        "the value and the counter"
    );
    let j = cache.stats().to_json();
    assert_eq!(j["l2"], Value::Null);
    assert_eq!(j["l1"]["hits"], 1);
}

#[test]
fn settings_say_what_is_missing() {
    let e = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Settings::from_lookup(move |n| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
    };
    let err = e(&[
        ("EDGECACHE_REDIS_URL", "http://x"),
        ("EDGECACHE_REDIS_TOKEN", "t"),
    ])
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("wrangler secret put EDGECACHE_SIGNING_KEYS"),
        "{err}"
    );
    let ok = e(&[
        ("UPSTASH_REDIS_REST_URL", "https://x/"),
        ("UPSTASH_REDIS_REST_TOKEN", "t"),
        ("EDGECACHE_SIGNING_KEYS", KEY),
    ])
    .unwrap();
    assert_eq!(ok.redis.unwrap().url, "https://x");
    assert!(e(&[("EDGECACHE_SIGNING_KEYS", "k1:short")])
        .unwrap_err()
        .to_string()
        .contains("EDGECACHE_SIGNING_KEYS"));
    assert_eq!(
        e(&[("EDGECACHE_MAX_ENTRIES", "lots")]).unwrap_err().code(),
        "INVALID_OPTION"
    );
    assert_eq!(
        e(&[("EDGECACHE_PREFIX", "a:b")]).unwrap_err().code(),
        "INVALID_OPTION"
    );
    assert_eq!(e(&[("EDGECACHE_L1_TTL", "250")]).unwrap().l1_ttl, 250);
}

/// Holds the answers of one command (GET unless `hold` says otherwise)
/// until opened; other commands pass. The fake Redis runs the command when
/// it is sent, so a held answer is one already applied in Redis.
struct Gated {
    redis: FakeRedis,
    open: Rc<Cell<bool>>,
    hold: &'static str,
}

impl Transport for Gated {
    fn post(&self, body: String) -> BoxFuture<'_, Result<(u16, Vec<u8>)>> {
        let answer = self.redis.post(body.clone());
        if !body.starts_with(&format!("[\"{}\"", self.hold)) {
            return answer;
        }
        let open = self.open.clone();
        let mut answer = Some(answer);
        Box::pin(std::future::poll_fn(move |cx| {
            if !open.get() {
                return Poll::Pending;
            }
            answer.as_mut().unwrap().as_mut().poll(cx)
        }))
    }
}

#[test]
fn a_read_that_overlaps_a_write_does_not_put_its_older_value_in_l1() {
    let redis = FakeRedis::default();
    let clock = crate::ManualClock::new(0);
    let (writer, _) = cache(&redis, &clock);
    run(writer.set("k", &"old")).unwrap();
    let open = Rc::new(Cell::new(false));
    let c = clock.clone();
    let reader = EdgeCache::new(
        &settings(true),
        Some(Box::new(Gated {
            redis: redis.clone(),
            open: open.clone(),
            hold: "GET",
        })),
        Now::new(move || c.now_ms()),
        Box::new(|_| {}),
    )
    .unwrap();
    let waker = Waker::from(Arc::new(NoopWake));
    let mut cx = Context::from_waker(&waker);
    // The GET is answered "old" by the fake at once but held by the gate.
    let mut read = Box::pin(reader.get::<String>("k"));
    assert!(read.as_mut().poll(&mut cx).is_pending());
    run(reader.set("k", &"new")).unwrap();
    open.set(true);
    let Poll::Ready(got) = read.as_mut().poll(&mut cx) else {
        panic!("still pending")
    };
    assert_eq!(
        got.unwrap().as_deref(),
        Some("old"),
        "the read's own answer"
    );
    assert_eq!(
        run(reader.lookup::<String>("k")).unwrap().unwrap().value,
        "new",
        "L1 kept the write"
    );
}

struct NoopWake;
impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

/// A cache whose transport holds the answers of `hold` until `open` is set.
fn gated(
    redis: &FakeRedis,
    clock: &crate::ManualClock,
    hold: &'static str,
) -> (EdgeCache, Rc<Cell<bool>>) {
    let open = Rc::new(Cell::new(false));
    let c = clock.clone();
    let cache = EdgeCache::new(
        &settings(true),
        Some(Box::new(Gated {
            redis: redis.clone(),
            open: open.clone(),
            hold,
        })),
        Now::new(move || c.now_ms()),
        Box::new(|_| {}),
    )
    .unwrap();
    (cache, open)
}

/// Polls `f` once (it must be waiting on a held answer), runs `meanwhile`,
/// opens the gate and finishes `f`.
fn overlapped<T>(f: impl Future<Output = T>, open: &Cell<bool>, meanwhile: impl FnOnce()) -> T {
    let waker = Waker::from(Arc::new(NoopWake));
    let mut cx = Context::from_waker(&waker);
    let mut f = Box::pin(f);
    assert!(f.as_mut().poll(&mut cx).is_pending(), "the gate holds it");
    meanwhile();
    open.set(true);
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("still pending"),
    }
}

// Issue 14 #5: each of these put the deleted value or count back in L1,
// served for up to l1Ttl, before the one in-flight rule (src/fence.rs).

#[test]
fn a_counter_read_overlapping_a_delete_does_not_put_the_count_in_l1() {
    let redis = FakeRedis::default();
    let clock = crate::ManualClock::new(0);
    let (cache, open) = gated(&redis, &clock, "GET");
    redis
        .data
        .borrow_mut()
        .insert("app:n:r|hits".into(), "7".into());
    let got = overlapped(cache.counter("hits"), &open, || {
        assert!(run(cache.delete("hits")).unwrap());
    });
    assert_eq!(got.unwrap(), Some(7), "the read's own answer");
    assert!(redis.data.borrow().is_empty(), "the delete reached Redis");
    assert_eq!(
        run(cache.counter("hits")).unwrap(),
        None,
        "L1 kept no count"
    );
}

#[test]
fn a_set_overlapping_a_delete_does_not_put_its_value_in_l1() {
    let redis = FakeRedis::default();
    let clock = crate::ManualClock::new(0);
    let (cache, open) = gated(&redis, &clock, "SET");
    overlapped(cache.set("k", &"v"), &open, || {
        // Redis ran the SET; this delete begins and ends before its answer.
        run(cache.delete("k")).unwrap();
    })
    .unwrap();
    assert!(redis.data.borrow().is_empty(), "Redis holds nothing");
    assert_eq!(run(cache.get::<String>("k")).unwrap(), None, "nor does L1");
}

#[test]
fn an_incr_overlapping_a_delete_does_not_put_its_count_in_l1() {
    let redis = FakeRedis::default();
    let clock = crate::ManualClock::new(0);
    let (cache, open) = gated(&redis, &clock, "INCRBY");
    let n = overlapped(cache.incr("hits", 5), &open, || {
        run(cache.delete("hits")).unwrap();
    });
    assert_eq!(n.unwrap(), 5);
    assert!(redis.data.borrow().is_empty(), "Redis holds nothing");
    assert_eq!(run(cache.counter("hits")).unwrap(), None, "nor does L1");
}

#[test]
fn counter_text_follows_the_shared_corpus() {
    let corpus: Value =
        serde_json::from_str(include_str!("../../tests/fixtures/counters.json")).unwrap();
    let redis = FakeRedis::default();
    let clock = crate::ManualClock::new(0);
    let (cache, _) = cache(&redis, &clock);
    for c in corpus["cases"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        redis
            .data
            .borrow_mut()
            .insert("app:n:r|c".into(), text.into());
        let want = c["value"].as_str().map(|v| v.parse::<i64>().unwrap());
        assert_eq!(run(cache.counter("c")).unwrap(), want, "{text:?}");
        run(cache.delete("c")).unwrap();
    }
    assert!(
        cache.stats().l2.unwrap().rejected > 10,
        "refused text is counted"
    );
}

#[test]
fn raw_bytes_are_what_js_stores_for_a_uint8array_and_read_only_as_bytes() {
    use crate::envelope::Payload;
    let redis = FakeRedis::default();
    let clock = crate::ManualClock::new(1_000);
    // What the JS TieredCache seals for set('blob', new Uint8Array([0, 255, 7])).
    let signer = signing_keys(KEY).unwrap();
    let sealed = signer
        .seal_in(APP, None, "blob", Payload::Bytes(&[0, 255, 7]), 0)
        .unwrap();
    redis
        .data
        .borrow_mut()
        .insert("app:v:r|blob".into(), sealed);
    let (a, logs) = cache(&redis, &clock);
    // Read as JSON: a clear error, not a tampered value and not a miss.
    let e = run(a.get::<Value>("blob")).unwrap_err();
    assert_eq!(e.code(), "UNSERIALIZABLE_VALUE");
    assert!(e.to_string().contains("get_bytes"), "{e}");
    let hit = run(a.lookup_bytes("blob")).unwrap().unwrap();
    assert_eq!(
        (hit.value, hit.tier),
        (vec![0, 255, 7], Tier::L1),
        "kept in L1 by the first read"
    );
    let l2 = a.stats().l2.unwrap();
    assert_eq!((l2.rejected, l2.hits), (0, 1));
    assert!(
        logs.borrow().is_empty(),
        "no tampering warning: {:?}",
        logs.borrow()
    );

    // Bytes written here are what the JS side opens as a Uint8Array.
    run(a.set_bytes_with_ttl("out", &[1, 2, 3], 5_000)).unwrap();
    let raw = redis.data.borrow()["app:v:r|out"].clone();
    let opened = signer
        .open_in(APP, None, "out", &raw, 1_000)
        .unwrap()
        .unwrap();
    assert_eq!(
        (opened.encoding(), opened.expires_at()),
        (Encoding::Bytes, 6_000)
    );
    assert_eq!(opened.into_payload(), vec![1, 2, 3]);
    // From L1 and from another isolate's L2 read, the kind is kept.
    assert_eq!(run(a.get_bytes("out")).unwrap(), Some(vec![1, 2, 3]));
    let (b, _) = cache(&redis, &clock);
    assert_eq!(run(b.get_bytes("out")).unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(
        run(b.get::<Value>("out")).unwrap_err().code(),
        "UNSERIALIZABLE_VALUE",
        "the L1 copy keeps its kind too"
    );
    // A JSON write replaces the bytes, in L1 and in Redis.
    run(b.set("out", &json!("text"))).unwrap();
    assert_eq!(
        run(b.get::<String>("out")).unwrap().as_deref(),
        Some("text")
    );
    let e = run(b.get_bytes("out")).unwrap_err();
    assert!(e.to_string().contains("is JSON"), "{e}");
    assert_eq!(
        run(a.get::<String>("out")).unwrap_err().code(),
        "UNSERIALIZABLE_VALUE",
        "a's own L1 copy until it lapses"
    );
    clock.advance(DEFAULT_L1_TTL + 1);
    assert_eq!(
        run(a.get::<String>("out")).unwrap().as_deref(),
        Some("text")
    );
}

#[test]
fn lookup_raw_reads_either_kind_once_and_u0000_keys_are_refused() {
    let redis = FakeRedis::default();
    let clock = crate::ManualClock::new(1_000);
    let (a, _) = cache(&redis, &clock);
    run(a.set_bytes("b", &[9, 8])).unwrap();
    run(a.set("j", &json!({ "x": 1 }))).unwrap();
    let (b, _) = cache(&redis, &clock);
    let calls = redis.calls.get();
    let hit = run(b.lookup_raw("b")).unwrap().unwrap();
    assert_eq!((hit.value, hit.tier), (Raw::Bytes(vec![9, 8]), Tier::L2));
    assert_eq!(redis.calls.get(), calls + 1, "one GET");
    assert_eq!(run(b.lookup_raw("b")).unwrap().unwrap().tier, Tier::L1);
    let hit = run(b.lookup_raw("j")).unwrap().unwrap();
    assert_eq!(hit.value, Raw::Json(br#"{"x":1}"#.to_vec()));
    assert_eq!(run(b.lookup_raw("none")).unwrap(), None);

    // "\0n" would be the L1 entry of the counter "n": refused everywhere.
    run(a.incr("n", 5)).unwrap();
    for e in [
        run(a.set("\0n", &1)).unwrap_err(),
        run(a.set_bytes("\0n", &[1])).unwrap_err(),
        run(a.get::<Value>("\0n")).unwrap_err(),
        run(a.lookup_raw("\0n")).unwrap_err(),
        run(a.delete("\0n")).unwrap_err(),
        run(a.incr("\0n", 1)).unwrap_err(),
        run(a.counter("\0n")).unwrap_err(),
    ] {
        assert_eq!(e.code(), "INVALID_KEY", "{e}");
    }
    assert_eq!(
        run(a.counter("n")).unwrap(),
        Some(5),
        "the counter is untouched"
    );
    assert_eq!(
        run(a.get::<Value>("n\0")).unwrap(),
        None,
        "U+0000 elsewhere is fine"
    );
}

#[test]
fn an_outage_is_not_no_counter_and_a_wrong_token_is_said_at_once() {
    let redis = FakeRedis::default();
    let clock = crate::ManualClock::new(1_000);
    let (a, logs) = cache(&redis, &clock);
    run(a.incr("kept", 2)).unwrap();
    redis.down.set(true);
    assert_eq!(
        run(a.counter("kept")).unwrap(),
        Some(2),
        "L1 still serves it"
    );
    assert_eq!(run(a.counter("other")).unwrap_err().code(), "L2_HTTP");
    redis.down.set(false);
    assert_eq!(run(a.counter("never")).unwrap(), None, "a real miss");

    redis.wrong_token.set(true);
    assert_eq!(run(a.get::<Value>("x")).unwrap(), None, "reads fail open");
    let said = logs.borrow().clone();
    assert_eq!(said.len(), 1, "at the first refusal: {said:?}");
    assert!(
        said[0].contains("refused the token") && said[0].contains("EDGECACHE_REDIS_TOKEN"),
        "{}",
        said[0]
    );
    run(a.get::<Value>("y")).unwrap();
    let auth = logs
        .borrow()
        .iter()
        .filter(|l| l.contains("refused the token"))
        .count();
    assert_eq!(auth, 1, "once: {:?}", logs.borrow());
}

/// The JS fromEnv's rule for EDGECACHE_SIGNING_KEYS (js/workers.ts
/// signingKeys), case by case; both refuse what the other refuses.
#[test]
fn signing_keys_follow_the_js_rule() {
    const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";
    for ok in [KEY.to_string(), format!(" {KEY} , k2:{K2} ")] {
        assert_eq!(signing_keys(&ok).unwrap().current_key_id(), "k1", "{ok:?}");
    }
    for bad in [
        format!("{KEY},"),
        format!(" , {KEY}"),
        format!("{KEY},,k2:{K2}"),
        format!(":{K2}"),
        "k1:".to_string(),
        "k1".to_string(),
        String::new(),
        format!("{KEY},{KEY}"),
    ] {
        let e = signing_keys(&bad).unwrap_err();
        assert_eq!(e.code(), "INVALID_OPTION", "{bad:?}");
        assert!(
            e.to_string().contains("EDGECACHE_SIGNING_KEYS"),
            "{bad:?}: {e}"
        );
    }
}
