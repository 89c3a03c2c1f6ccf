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
    /// Answers 503 with `"partial": true`, as the bridge does on a Redis
    /// Cluster for the slots of a master that is down.
    partial: Rc<Cell<bool>>,
    calls: Rc<Cell<u32>>,
}

impl Transport for FakeRedis {
    fn post(&self, body: String) -> BoxFuture<'_, Result<(u16, Vec<u8>)>> {
        self.calls.set(self.calls.get() + 1);
        let answer = if self.wrong_token.get() {
            Ok((401, br#"{"error":"WRONGPASS invalid token"}"#.to_vec()))
        } else if self.partial.get() {
            Ok((
                503,
                br#"{"error":"no master serves slot 866, not sent","partial":true}"#.to_vec(),
            ))
        } else if self.down.get() {
            Err(Error::L2Http {
                status: 0,
                message: "connection refused".into(),
                partial: false,
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
                "MGET" => json!((1..cmd.len())
                    .map(|i| d.get(&s(i)).map(|v| json!(b64(v.as_bytes()))))
                    .collect::<Vec<_>>()),
                "UNLINK" => json!((1..cmd.len())
                    .filter(|&i| d.remove(&s(i)).is_some())
                    .count()),
                "INCR" => {
                    let n: i64 = d.get(&s(1)).map(|v| v.parse().unwrap()).unwrap_or(0) + 1;
                    d.insert(s(1), n.to_string());
                    json!(n)
                }
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

    /// Each command as [`Self::post`] runs it (coherence is off in these
    /// tests: only a tagged set sends pipelines, its `SET` and `MGET`).
    fn pipeline(&self, body: String) -> BoxFuture<'_, Result<(u16, Vec<u8>)>> {
        let cmds: Vec<Value> = serde_json::from_str(&body).unwrap();
        let mut out = Vec::new();
        for c in cmds {
            match run(self.post(c.to_string())) {
                Ok((_, b)) => out.push(serde_json::from_slice::<Value>(&b).unwrap()),
                Err(e) => return Box::pin(std::future::ready(Err(e))),
            }
        }
        let answer = Ok((200, serde_json::to_vec(&out).unwrap()));
        Box::pin(std::future::ready(answer))
    }
}

/// Settings for the tests on the fake Redis: coherence off (the log
/// needs streams: the coherence tests below run on a real redis-server).
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
    s.max_staleness = None;
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
fn a_tagged_envelope_sealed_as_js_seals_it_is_checked_not_rejected() {
    // A tagged entry (format version 3, as the JS tier writes one): opened,
    // and served only while its tags' versions in Redis are not above the
    // ones it recorded; never kept in L1.
    let signer = signing_keys(KEY).unwrap();
    let tagged = signer
        .seal_tagged_in(
            APP,
            None,
            "page",
            crate::Payload::Json("\"old\""),
            0,
            &[("product:7", 1)],
        )
        .unwrap();
    let redis = FakeRedis::default();
    redis
        .data
        .borrow_mut()
        .insert("app:v:r|page".into(), tagged);
    let clock = crate::ManualClock::new(1_000);
    let (a, logs) = cache(&redis, &clock);
    let hit = run(a.lookup::<Value>("page")).unwrap().unwrap();
    assert_eq!((hit.value, hit.tier), (json!("old"), Tier::L2));
    assert_eq!(
        run(a.lookup::<Value>("page")).unwrap().unwrap().tier,
        Tier::L2
    );
    redis
        .data
        .borrow_mut()
        .insert("app:g:r|product:7".into(), "1".into());
    assert_eq!(run(a.get::<Value>("page")).unwrap(), Some(json!("old")));
    redis
        .data
        .borrow_mut()
        .insert("app:g:r|product:7".into(), "2".into());
    assert_eq!(run(a.get::<Value>("page")).unwrap(), None);
    let s = a.stats();
    assert_eq!((s.l2.unwrap().rejected, s.tags.invalidated), (0, 1));
    assert!(logs.borrow().is_empty(), "{:?}", logs.borrow());
    assert!(redis.data.borrow().contains_key("app:v:r|page"));
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
fn a_cluster_master_down_fails_its_calls_without_opening_the_breaker() {
    let redis = FakeRedis::default();
    let clock = crate::ManualClock::new(1_000);
    let (a, _) = cache(&redis, &clock);
    redis.partial.set(true);
    for i in 0..10 {
        let e = run(a.get::<String>(&format!("k{i}"))).map(|_| ()).err();
        // Failing open (a miss) or with the bridge's error, never the breaker's.
        assert!(e.as_ref().is_none_or(|e| e.code() == "L2_HTTP"), "{e:?}");
    }
    assert_eq!(redis.calls.get(), 10, "every call reached the tier");
    let s = a.stats();
    assert_eq!(s.breaker.unwrap().0, BreakerState::Closed);
    assert_eq!(s.l2.unwrap().errors["L2_HTTP"], 10);
    let e = run(a.delete("k0")).unwrap_err();
    assert!(
        matches!(
            e,
            Error::L2Http {
                status: 503,
                partial: true,
                ..
            }
        ),
        "{e:?}"
    );
    // The same answers without `partial` (one server down) open it.
    redis.partial.set(false);
    redis.down.set(true);
    for i in 0..3 {
        let _ = run(a.get::<String>(&format!("k{i}")));
    }
    assert_eq!(a.stats().breaker.unwrap().0, BreakerState::Open);
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
struct Gated<T = FakeRedis> {
    redis: T,
    open: Rc<Cell<bool>>,
    hold: &'static str,
}

impl<T: Transport> Transport for Gated<T> {
    fn post(&self, body: String) -> BoxFuture<'_, Result<(u16, Vec<u8>)>> {
        let answer = self.redis.post(body.clone());
        if !body.starts_with(&format!("[\"{}\"", self.hold)) {
            return answer;
        }
        self.hold(answer)
    }

    fn pipeline(&self, body: String) -> BoxFuture<'_, Result<(u16, Vec<u8>)>> {
        let answer = self.redis.pipeline(body.clone());
        if !body.starts_with(&format!("[[\"{}\"", self.hold)) {
            return answer;
        }
        self.hold(answer)
    }
}

impl<T> Gated<T> {
    fn hold<'a>(
        &self,
        answer: BoxFuture<'a, Result<(u16, Vec<u8>)>>,
    ) -> BoxFuture<'a, Result<(u16, Vec<u8>)>> {
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

// ---- Coherence across isolates, on a real redis-server ----
//
// The caches below speak the Upstash REST protocol as on Workers; `Resp`
// carries each request to a redis-server of the test's own (started on a
// free loopback port, stopped when dropped), as the bridge would: the
// commands run as sent, in order, and the replies come back as the
// protocol encodes them (strings in base64, `OK` as is, errors as
// `{"error": ...}`). The bridge itself is tested in bridge/ and, with this
// binding in workerd, by tests/js/rust-worker.test.mjs.

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// A connection to the test's redis-server, and what the caches sent.
#[derive(Clone)]
struct Resp {
    conn: Rc<RefCell<BufReader<TcpStream>>>,
    /// Every request fails (`L2_HTTP`), as when Redis is unreachable.
    down: Rc<Cell<bool>>,
    /// The bodies of the requests, `POST /` and `POST /pipeline` alike.
    sent: Rc<RefCell<Vec<String>>>,
}

/// A redis-server for one test; stopped when dropped.
struct TestRedis {
    _server: redis_server::RedisServer,
    resp: Resp,
}

impl TestRedis {
    /// With one entry in the log already (so its epoch is named: the
    /// first write to an empty Redis is a gap for readers that saw none).
    fn start() -> TestRedis {
        let (server, conn) = redis_server::RedisServer::start();
        let redis = TestRedis {
            _server: server,
            resp: Resp {
                conn: Rc::new(RefCell::new(BufReader::new(conn))),
                down: Rc::default(),
                sent: Rc::default(),
            },
        };
        redis.append_as_js(Op::Set, "app:v:r|_");
        redis
    }

    /// A log entry of another writer (a JS TieredCache), straight to Redis.
    fn append_as_js(&self, op: Op, target: &str) {
        let layout = Layout::new("app").unwrap();
        let id = crate::new_writer_id().unwrap();
        let mut js = Lease::new(Log::new(&layout), &id, LeaseConfig::default()).unwrap();
        let cmds: Vec<Vec<Value>> = js
            .append(op, &[target])
            .unwrap()
            .iter()
            .map(|c| serde_json::from_str(&c.body()).unwrap())
            .collect();
        for r in self.resp.run(&cmds) {
            assert!(r.get("result").is_some(), "{r}");
        }
    }

    /// A command straight to Redis (not through a cache, not logged).
    fn call(&self, args: &[&str]) -> Value {
        let args: Vec<Value> = args.iter().map(|a| json!(a)).collect();
        self.resp.run(&[args]).remove(0)
    }

    fn xlen(&self) -> i64 {
        self.call(&["XLEN", "app:c:{app:0}:log"])["result"]
            .as_i64()
            .unwrap()
    }

    /// A cache of prefix `app` on this Redis, with its own writer id.
    fn cache(&self, clock: &crate::ManualClock, tune: impl FnOnce(&mut Settings)) -> EdgeCache {
        let mut s = settings(true);
        s.max_staleness = Some(crate::DEFAULT_MAX_STALENESS);
        tune(&mut s);
        let c = clock.clone();
        EdgeCache::new(
            &s,
            Some(Box::new(self.resp.clone())),
            Now::new(move || c.now_ms()),
            Box::new(|_| {}),
        )
        .unwrap()
    }
}

impl Resp {
    /// Runs the commands in order on the connection; each `{"result"}` or
    /// `{"error"}` as the REST protocol answers it.
    fn run(&self, commands: &[Vec<Value>]) -> Vec<Value> {
        let mut conn = self.conn.borrow_mut();
        let mut req = Vec::new();
        for c in commands {
            req.extend_from_slice(format!("*{}\r\n", c.len()).as_bytes());
            for a in c {
                let a = match a {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                req.extend_from_slice(a.as_bytes());
                req.extend_from_slice(b"\r\n");
            }
        }
        conn.get_mut().write_all(&req).unwrap();
        commands
            .iter()
            .map(|_| match read_resp(&mut conn) {
                Ok(v) => json!({ "result": v }),
                Err(e) => json!({ "error": e }),
            })
            .collect()
    }
}

/// One RESP reply as the REST protocol encodes it (base64 strings).
fn read_resp(conn: &mut BufReader<TcpStream>) -> std::result::Result<Value, String> {
    let mut line = Vec::new();
    conn.read_until(b'\n', &mut line).unwrap();
    let body = String::from_utf8_lossy(&line[1..line.len() - 2]).to_string();
    Ok(match line[0] {
        b'+' if body == "OK" => json!("OK"),
        b'+' => json!(b64(body.as_bytes())),
        b':' => json!(body.parse::<i64>().unwrap()),
        b'-' => return Err(body),
        b'$' | b'*' if body == "-1" => Value::Null,
        b'$' => {
            let n: usize = body.parse().unwrap();
            let mut buf = vec![0; n + 2];
            conn.read_exact(&mut buf).unwrap();
            json!(b64(&buf[..n]))
        }
        b'*' => {
            let n: usize = body.parse().unwrap();
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                // An error inside an array does not occur in these replies.
                items.push(read_resp(conn)?);
            }
            Value::Array(items)
        }
        other => panic!("unexpected RESP type {other}"),
    })
}

impl Transport for Resp {
    fn post(&self, body: String) -> BoxFuture<'_, Result<(u16, Vec<u8>)>> {
        self.sent.borrow_mut().push(body.clone());
        let answer = if self.down.get() {
            Err(Error::L2Http {
                status: 0,
                message: "connection refused".into(),
                partial: false,
            })
        } else {
            let cmd: Vec<Value> = serde_json::from_str(&body).unwrap();
            let out = self.run(&[cmd]).remove(0);
            let status = if out.get("error").is_some() { 400 } else { 200 };
            Ok((status, serde_json::to_vec(&out).unwrap()))
        };
        Box::pin(std::future::ready(answer))
    }

    fn pipeline(&self, body: String) -> BoxFuture<'_, Result<(u16, Vec<u8>)>> {
        self.sent.borrow_mut().push(body.clone());
        let answer = if self.down.get() {
            Err(Error::L2Http {
                status: 0,
                message: "connection refused".into(),
                partial: false,
            })
        } else {
            let cmds: Vec<Vec<Value>> = serde_json::from_str(&body).unwrap();
            Ok((200, serde_json::to_vec(&self.run(&cmds)).unwrap()))
        };
        Box::pin(std::future::ready(answer))
    }
}

fn tier<T: DeserializeOwned>(c: &EdgeCache, key: &str) -> Option<(T, Tier)> {
    run(c.lookup::<T>(key)).unwrap().map(|h| (h.value, h.tier))
}

/// Reads `key` until L1 has it: a read whose log read (riding along) names
/// the key does not promote what it read, so it may take two.
fn warm<T: DeserializeOwned + std::fmt::Debug + PartialEq>(c: &EdgeCache, key: &str, want: T) {
    for _ in 0..3 {
        let (v, t) = tier::<T>(c, key).expect("a value");
        assert_eq!(v, want);
        if t == Tier::L1 {
            return;
        }
    }
    panic!("{key} never reached L1");
}

fn coherence(c: &EdgeCache) -> CoherenceFigures {
    c.stats().coherence.expect("coherence on")
}

/// Each mutation kind in one cache is not served from another's L1 once
/// `maxStaleness` has passed, and is, before (the lease, not a miss).
#[test]
fn coherence_each_mutation_elsewhere_leaves_l1_within_max_staleness() {
    let redis = TestRedis::start();
    let clock = crate::ManualClock::new(1_000_000);
    let writer = redis.cache(&clock, |_| {});
    let reader = redis.cache(&clock, |_| {});
    let acme = Scope::tenant("acme").unwrap();
    type Mutation = fn(&EdgeCache, &Scope);
    let cases: [(&str, Mutation); 5] = [
        ("delete", |w, _| assert!(run(w.delete("k")).unwrap())),
        ("overwrite", |w, _| run(w.set("k", &"new")).unwrap()),
        ("bytes over JSON", |w, _| {
            run(w.set_bytes("k", &[1])).unwrap()
        }),
        ("delete_pattern at the root", |w, _| {
            assert_eq!(run(w.delete_pattern("k*")).unwrap(), 1)
        }),
        ("delete_pattern in another scope", |w, s| {
            // A pattern delete of acme does not touch the root's k.
            run(w.scope(s).unwrap().delete_pattern("*")).unwrap();
            run(w.set("k", &"new")).unwrap();
        }),
    ];
    let mut stale = Vec::new();
    for (name, mutate) in cases {
        run(writer.set("k", &"old")).unwrap();
        run(writer.scope(&acme).unwrap().set("k", &"scoped")).unwrap();
        // Into the reader's L1.
        warm(&reader, "k", "old".to_string());
        let r_acme = reader.scope(&acme).unwrap();
        warm(&r_acme, "k", "scoped".to_string());
        clock.advance(1);
        mutate(&writer, &acme);
        // Within maxStaleness of its last log read: L1 still serves it.
        assert_eq!(
            tier(&reader, "k"),
            Some(("old".to_string(), Tier::L1)),
            "{name}: the lease"
        );
        clock.advance(crate::DEFAULT_MAX_STALENESS);
        let got = run(reader.lookup_raw("k"))
            .unwrap()
            .map(|h| (h.value, h.tier));
        if got == Some((Raw::Json(br#""old""#.to_vec()), Tier::L1)) {
            stale.push(name);
        }
        if name == "delete_pattern in another scope"
            && run(r_acme.get::<String>("k")).unwrap().is_some()
        {
            stale.push("the scope's value");
        }
        clock.advance(crate::DEFAULT_MAX_STALENESS);
    }
    assert!(
        stale.is_empty(),
        "served from L1 past maxStaleness: {stale:?}"
    );
    let c = coherence(&reader);
    assert!(c.log.entries >= 5 && c.invalidated >= 5, "{c:?}");
    assert_eq!(c.log.gaps, 0, "{c:?}");
}

/// Counters: an increment elsewhere is not served from L1 past the bound.
#[test]
fn coherence_an_incr_elsewhere_leaves_the_counter_in_l1() {
    let redis = TestRedis::start();
    let clock = crate::ManualClock::new(1_000_000);
    let writer = redis.cache(&clock, |_| {});
    let reader = redis.cache(&clock, |_| {});
    assert_eq!(run(writer.incr("hits", 1)).unwrap(), 1);
    assert_eq!(run(reader.counter("hits")).unwrap(), Some(1));
    let sent = redis.resp.sent.borrow().len();
    assert_eq!(run(reader.counter("hits")).unwrap(), Some(1));
    assert_eq!(redis.resp.sent.borrow().len(), sent, "from L1");
    assert_eq!(run(writer.incr("hits", 5)).unwrap(), 6);
    assert_eq!(run(reader.counter("hits")).unwrap(), Some(1), "the lease");
    clock.advance(crate::DEFAULT_MAX_STALENESS);
    assert_eq!(run(reader.counter("hits")).unwrap(), Some(6));
    assert!(run(writer.delete("hits")).unwrap());
    clock.advance(crate::DEFAULT_MAX_STALENESS);
    assert_eq!(run(reader.counter("hits")).unwrap(), None);
}

/// A clear of the whole cache or of a scope (what the JS TieredCache
/// appends; this binding has no clear) drops what it covers from L1.
#[test]
fn coherence_a_clear_from_js_drops_l1() {
    let redis = TestRedis::start();
    let clock = crate::ManualClock::new(1_000_000);
    let writer = redis.cache(&clock, |_| {});
    let reader = redis.cache(&clock, |_| {});
    let acme = Scope::tenant("acme").unwrap();
    let layout = Layout::new("app").unwrap();
    let append = |glob: String| redis.append_as_js(Op::Clear, &glob);
    run(writer.set("root", &1)).unwrap();
    run(writer.scope(&acme).unwrap().set("a", &2)).unwrap();
    let r_acme = reader.scope(&acme).unwrap();
    warm(&reader, "root", 1);
    warm(&r_acme, "a", 2);
    // A scope's clear: acme's keys go, the root's stay (no L2 change here,
    // so L1 is what tells).
    append(layout.pattern(Some(&acme), "*"));
    clock.advance(crate::DEFAULT_MAX_STALENESS);
    assert_eq!(tier::<i64>(&reader, "root").unwrap().1, Tier::L1);
    assert_eq!(tier::<i64>(&r_acme, "a").unwrap().1, Tier::L2);
    // The cache's clear: everything.
    append(layout.everything());
    clock.advance(crate::DEFAULT_MAX_STALENESS);
    assert_eq!(tier::<i64>(&reader, "root").unwrap().1, Tier::L2);
    assert_eq!(tier::<i64>(&r_acme, "a").unwrap().1, Tier::L2);
    assert_eq!(coherence(&reader).log.gaps, 0);
}

/// Gaps: the log deleted, or Redis flushed: L1 is dropped and counted.
#[test]
fn coherence_gaps_drop_l1() {
    let redis = TestRedis::start();
    let clock = crate::ManualClock::new(1_000_000);
    let writer = redis.cache(&clock, |_| {});
    let reader = redis.cache(&clock, |_| {});
    let fill = |v: &str| {
        run(writer.set("k", &v)).unwrap();
        clock.advance(crate::DEFAULT_MAX_STALENESS);
        warm(&reader, "k", v.to_string());
    };
    // The log deleted (its entries lost), then the value changed.
    fill("a");
    redis.call(&["DEL", "app:c:{app:0}:log"]);
    run(writer.set("k", &"b")).unwrap();
    redis.call(&["DEL", "app:c:{app:0}:log"]);
    clock.advance(crate::DEFAULT_MAX_STALENESS);
    assert_eq!(tier(&reader, "k"), Some(("b".to_string(), Tier::L2)));
    let c = coherence(&reader);
    assert_eq!((c.log.gaps, c.log.lost), (1, 1), "{c:?}");
    // FLUSHALL, then a new write (it names a new epoch).
    fill("c");
    redis.call(&["FLUSHALL"]);
    run(writer.set("k", &"d")).unwrap();
    clock.advance(crate::DEFAULT_MAX_STALENESS);
    assert_eq!(tier(&reader, "k"), Some(("d".to_string(), Tier::L2)));
    let c = coherence(&reader);
    assert_eq!((c.log.gaps, c.log.epoch), (2, 1), "{c:?}");
    assert!(c.invalidated >= 2, "{c:?}");
}

/// Redis unreachable with an expired lease: served and counted by default,
/// refused in strict mode; served without a read while the lease is fresh.
#[test]
fn coherence_unreachable_serves_stale_by_default_and_strict_refuses() {
    for strict in [false, true] {
        let redis = TestRedis::start();
        let clock = crate::ManualClock::new(1_000_000);
        let cache = redis.cache(&clock, |s| s.stale_while_unreachable = !strict);
        run(cache.set("k", &"v")).unwrap();
        redis.resp.down.set(true);
        assert_eq!(
            tier(&cache, "k"),
            Some(("v".to_string(), Tier::L1)),
            "fresh"
        );
        assert_eq!(coherence(&cache).log.failures, 0);
        clock.advance(crate::DEFAULT_MAX_STALENESS);
        let got = tier::<String>(&cache, "k");
        let c = coherence(&cache);
        if strict {
            assert_eq!(got, None, "refused, then a failed-open miss");
            assert_eq!((c.log.refused, c.log.stale_served), (1, 0));
            assert!(
                run(cache.counter("k")).is_err(),
                "an outage is not no counter"
            );
        } else {
            assert_eq!(got, Some(("v".to_string(), Tier::L1)));
            assert_eq!((c.log.refused, c.log.stale_served), (0, 1));
        }
        // Back: the log is read, and L1 serves again.
        redis.resp.down.set(false);
        clock.advance(5_000); // past the breaker's cooldown
        assert_eq!(tier(&cache, "k"), Some(("v".to_string(), Tier::L1)));
        let j = cache.stats().to_json();
        assert_eq!(j["coherence"]["refused"], u64::from(strict));
        assert_eq!(j["coherence"]["staleServed"], u64::from(!strict));
        assert_eq!(j["coherence"]["maxStaleness"], 1000);
    }
}

/// A mutation's log entry travels in its own pipeline (one request), after
/// it; a log read rides along a request made anyway.
#[test]
fn coherence_the_write_pipeline_carries_the_xadd_and_reads_ride_along() {
    let redis = TestRedis::start();
    let clock = crate::ManualClock::new(1_000_000);
    let cache = redis.cache(&clock, |_| {});
    run(cache.set("warm", &0)).unwrap(); // the first log read, alone
    let sent = || redis.resp.sent.borrow().len();
    let before = sent();
    run(cache.set("k", &"v")).unwrap();
    assert_eq!(sent(), before + 1, "one request");
    let body = redis.resp.sent.borrow().last().unwrap().clone();
    assert!(
        body.starts_with(r#"[["SET","app:v:r|k","#)
            && body.contains(r#"["XADD","app:c:{app:0}:log","MAXLEN","~",10000,"*","w","#),
        "{body}"
    );
    assert_eq!(redis.xlen(), 3, "the primer's, warm's, k's");
    run(cache.delete("k")).unwrap();
    run(cache.incr("n", 1)).unwrap();
    run(cache.delete_pattern("x*")).unwrap();
    assert_eq!(redis.xlen(), 6);
    // Half-way to expiry: a miss's GET carries the log read.
    let reads = coherence(&cache).log.reads;
    clock.advance(crate::DEFAULT_MAX_STALENESS / 2);
    let before = sent();
    assert_eq!(run(cache.get::<i64>("nothing")).unwrap(), None);
    assert_eq!(sent(), before + 1);
    let body = redis.resp.sent.borrow().last().unwrap().clone();
    assert!(
        body.starts_with(r#"[["GET","app:v:r|nothing"],["GET","app:c:{app:0}:epoch"]"#),
        "{body}"
    );
    assert_eq!(coherence(&cache).log.reads, reads + 1);
    // Renewed: an L1 hit a full maxStaleness after the last read alone
    // needs none.
    clock.advance(crate::DEFAULT_MAX_STALENESS / 2);
    let before = sent();
    assert_eq!(tier(&cache, "warm"), Some((0, Tier::L1)));
    assert_eq!(sent(), before, "no request");
    assert_eq!(coherence(&cache).log.own, 5, "its own entries, skipped");
}

/// The append's error makes the mutation fail (others would not learn of
/// it), though the write itself happened.
#[test]
fn coherence_a_failed_append_fails_the_mutation() {
    let redis = TestRedis::start();
    let clock = crate::ManualClock::new(1_000_000);
    let cache = redis.cache(&clock, |_| {});
    run(cache.set("k", &"v")).unwrap();
    run(cache.incr("n", 1)).unwrap();
    // The stream's key holds a string: XADD answers WRONGTYPE.
    redis.call(&["SET", "app:c:{app:0}:log", "not a stream"]);
    let e = run(cache.delete("k")).unwrap_err();
    assert_eq!(e.code(), "L2_REDIS", "{e}");
    assert_eq!(redis.call(&["EXISTS", "app:v:r|k"])["result"], 0, "deleted");
    assert_eq!(run(cache.incr("n", 1)).unwrap_err().code(), "L2_REDIS");
    assert_eq!(
        run(cache.delete_pattern("*")).unwrap_err().code(),
        "L2_REDIS"
    );
    let writes = cache.stats().l2.unwrap().writes;
    run(cache.set("k", &"w")).unwrap(); // fails open, counted
    let l2 = cache.stats().l2.unwrap();
    assert_eq!(l2.writes, writes);
    assert!(l2.errors["L2_REDIS"] >= 4, "{:?}", l2.errors);
}

/// Coherence off: today's behaviour, no log commands at all.
#[test]
fn coherence_off_sends_no_log_command() {
    let redis = TestRedis::start();
    let clock = crate::ManualClock::new(1_000_000);
    let cache = redis.cache(&clock, |s| s.max_staleness = None);
    run(cache.set("k", &"v")).unwrap();
    clock.advance(DEFAULT_L1_TTL - 1);
    assert_eq!(tier(&cache, "k"), Some(("v".to_string(), Tier::L1)));
    run(cache.delete("k")).unwrap();
    assert!(
        redis
            .resp
            .sent
            .borrow()
            .iter()
            .all(|b| !b.contains(":c:{app:0}:")),
        "{:?}",
        redis.resp.sent.borrow()
    );
    assert_eq!(cache.stats().coherence, None);
    assert_eq!(cache.stats().to_json()["coherence"], Value::Null);
}

/// Once `armed`, holds the answer of the next pipeline whose body starts
/// with `prefix` until `open` is set (Redis has run it already); the rest
/// pass.
struct HoldFirst {
    inner: Resp,
    prefix: &'static str,
    armed: Rc<Cell<bool>>,
    open: Rc<Cell<bool>>,
}

impl Transport for HoldFirst {
    fn post(&self, body: String) -> BoxFuture<'_, Result<(u16, Vec<u8>)>> {
        self.inner.post(body)
    }

    fn pipeline(&self, body: String) -> BoxFuture<'_, Result<(u16, Vec<u8>)>> {
        let hold = self.armed.get() && body.starts_with(self.prefix);
        let answer = self.inner.pipeline(body);
        if !hold {
            return answer;
        }
        self.armed.set(false);
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

/// Two requests of one isolate whose L1 hits both find the lease expired:
/// each reads the log itself (the second does not wait on the first's
/// I/O), and the older read, finishing last, brings nothing back.
#[test]
fn coherence_concurrent_lease_reads_neither_wait_nor_undo_each_other() {
    let redis = TestRedis::start();
    let clock = crate::ManualClock::new(1_000_000);
    let writer = redis.cache(&clock, |_| {});
    let (armed, open) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
    let c = clock.clone();
    let mut s = settings(true);
    s.max_staleness = Some(crate::DEFAULT_MAX_STALENESS);
    let reader = EdgeCache::new(
        &s,
        Some(Box::new(HoldFirst {
            inner: redis.resp.clone(),
            // A log read alone.
            prefix: r#"[["GET","app:c:{app:0}:epoch"]"#,
            armed: armed.clone(),
            open: open.clone(),
        })),
        Now::new(move || c.now_ms()),
        Box::new(|_| {}),
    )
    .unwrap();
    run(writer.set("k", &"old")).unwrap();
    warm(&reader, "k", "old".to_string());
    let from = coherence(&reader).log.reads;
    armed.set(true);
    clock.advance(crate::DEFAULT_MAX_STALENESS);
    let got = overlapped(reader.get::<String>("k"), &open, || {
        // Its log read ran in Redis before this delete, answered later.
        assert!(run(writer.delete("k")).unwrap());
        clock.advance(1);
        // Another request meanwhile: its own read, which sees the delete.
        assert_eq!(run(reader.get::<String>("k")).unwrap(), None);
    });
    assert_eq!(
        got.unwrap(),
        None,
        "the first request looked at L1 again after its read"
    );
    let c = coherence(&reader);
    assert_eq!(c.log.reads, from + 2, "{c:?}");
    assert_eq!(
        run(reader.get::<String>("k")).unwrap(),
        None,
        "nothing came back"
    );
}

/// An isolate that starts with Redis unreachable tries its first log read
/// alone once; later reads ride along, so an outage costs each request no
/// more than one request.
#[test]
fn coherence_a_first_read_that_fails_is_not_tried_alone_again() {
    let redis = TestRedis::start();
    let clock = crate::ManualClock::new(1_000_000);
    let cache = redis.cache(&clock, |s| s.breaker_threshold = 100);
    let sent = || redis.resp.sent.borrow().len();
    redis.resp.down.set(true);
    assert_eq!(run(cache.get::<i64>("a")).unwrap(), None);
    assert_eq!(
        sent(),
        2,
        "the first read alone, then the GET with a read along"
    );
    for (i, key) in ["b", "c"].iter().enumerate() {
        assert_eq!(run(cache.get::<i64>(key)).unwrap(), None);
        assert_eq!(sent(), 3 + i, "one request each");
    }
    run(cache.set("k", &1)).unwrap();
    assert_eq!(sent(), 5);
    let c = coherence(&cache);
    assert_eq!((c.log.reads, c.log.failures), (0, 5), "{c:?}");
    // Back: the L1 hit reads the log first; that first read cannot vouch
    // for what L1 took in meanwhile (the set's value, which never reached
    // Redis): dropped, and the GET finds nothing.
    redis.resp.down.set(false);
    assert_eq!(run(cache.get::<i64>("k")).unwrap(), None);
    let c = coherence(&cache);
    assert_eq!((c.log.reads, c.invalidated), (1, 1), "{c:?}");
    let sent = redis.resp.sent.borrow();
    assert!(
        sent[sent.len() - 2].starts_with(r#"[["GET","app:c:{app:0}:epoch"]"#),
        "{sent:?}"
    );
    assert_eq!(
        sent[sent.len() - 1],
        r#"["GET","app:v:r|k"]"#,
        "the lease is fresh: no read along"
    );
}

// ---- tags (issue 15), on the real redis-server ----

/// What Redis holds for `key` at the root of prefix `app`, opened as the
/// JS side opens it: (tag, version) pairs, empty for version 2.
fn stored_tags(redis: &TestRedis, scope: Option<&Scope>, key: &str) -> Vec<(String, u64)> {
    let rk = Layout::new("app").unwrap().key(Kind::Value, scope, key);
    let answer = serde_json::to_vec(&redis.call(&["GET", &rk])).unwrap();
    let Ok(Reply::Bytes(raw)) = decode_command(200, &answer, true) else {
        panic!("no value in redis for {rk}")
    };
    let signer = signing_keys(KEY).unwrap();
    // A reader that cannot check tags does not open it.
    assert_eq!(
        signer.open_in(APP, scope, key, &raw, 0).unwrap_err().code(),
        "MALFORMED_ENVELOPE"
    );
    signer
        .open_tagged_in(APP, scope, key, &raw, 0)
        .unwrap()
        .unwrap()
        .tags()
        .to_vec()
}

fn tag_stats(c: &EdgeCache) -> TagStats {
    c.stats().tags
}

/// An invalidation in one isolate is a miss in every other at once (no
/// waiting for the lease: tagged entries are read from Redis each time),
/// for the tag's scope only, and an entry set after it is served.
#[test]
fn tags_invalidate_then_miss_everywhere_and_set_after_is_served() {
    let redis = TestRedis::start();
    let clock = crate::ManualClock::new(1_000_000);
    let a = redis.cache(&clock, |_| {});
    let b = redis.cache(&clock, |_| {});
    let acme = Scope::tenant("acme").unwrap();
    run(a.set("plain", &"p")).unwrap();
    run(a.set_with_tags("k", &"old", 0, &["product:7", "list", "product:7"])).unwrap();
    run(a
        .scope(&acme)
        .unwrap()
        .set_with_tags("k", &"acme's", 0, &["product:7"]))
    .unwrap();
    assert_eq!(
        stored_tags(&redis, None, "k"),
        [("product:7".to_string(), 0), ("list".to_string(), 0)],
        "deduplicated, each under version 0"
    );
    // Tagged: from Redis, every time, and never into L1.
    for _ in 0..3 {
        assert_eq!(tier(&b, "k"), Some(("old".to_string(), Tier::L2)));
    }
    assert_eq!(b.stats().l1.counters.entries, 0);
    warm(&b, "plain", "p".to_string());

    assert_eq!(
        run(a.invalidate_tags(&["product:7", "product:7"])).unwrap(),
        1
    );
    assert_eq!(
        redis.call(&["GET", "app:g:r|product:7"])["result"],
        b64(b"1")
    );
    // No clock advance: the lease is fresh, yet neither serves it.
    assert_eq!(run(b.get::<String>("k")).unwrap(), None);
    assert_eq!(run(a.get::<String>("k")).unwrap(), None);
    assert_eq!(run(b.get::<String>("plain")).unwrap().as_deref(), Some("p"));
    // Another scope's tag of the same name is another tag.
    let b_acme = b.scope(&acme).unwrap();
    assert_eq!(
        run(b_acme.get::<String>("k")).unwrap().as_deref(),
        Some("acme's")
    );
    assert_eq!(
        tag_stats(&b),
        TagStats {
            invalidations: 0,
            invalidated: 1,
            rollbacks: 0
        }
    );
    assert_eq!(tag_stats(&a).invalidations, 1);
    assert_eq!(tag_stats(&a).invalidated, 1);

    // Set after the invalidation: under version 1, served.
    run(b.set_with_tags("k", &"new", 0, &["product:7", "list"])).unwrap();
    assert_eq!(
        stored_tags(&redis, None, "k"),
        [("product:7".to_string(), 1), ("list".to_string(), 0)]
    );
    assert_eq!(tier(&a, "k"), Some(("new".to_string(), Tier::L2)));
    // And invalidated again by its other tag.
    assert_eq!(run(b.invalidate_tags(&["list"])).unwrap(), 1);
    assert_eq!(run(a.get::<String>("k")).unwrap(), None);

    let j = b.stats().to_json();
    assert_eq!(
        j["tags"],
        json!({ "invalidations": 1, "invalidated": 1, "rollbacks": 0 })
    );
}

/// Bytes carry tags too; a tagged set drops the older untagged value from
/// L1 (it would otherwise be served over the tagged one).
#[test]
fn tags_bytes_and_an_older_untagged_value_in_l1() {
    let redis = TestRedis::start();
    let clock = crate::ManualClock::new(1_000_000);
    let a = redis.cache(&clock, |_| {});
    run(a.set_bytes("b", &[1, 2])).unwrap();
    assert_eq!(run(a.lookup_bytes("b")).unwrap().unwrap().tier, Tier::L1);
    run(a.set_bytes_with_tags("b", &[3], 60_000, &["t"])).unwrap();
    let hit = run(a.lookup_bytes("b")).unwrap().unwrap();
    assert_eq!((hit.value, hit.tier), (vec![3], Tier::L2));
    let pttl = redis.call(&["PTTL", "app:v:r|b"])["result"]
        .as_i64()
        .unwrap();
    assert!(pttl > 59_000 && pttl <= 60_000, "{pttl}");
    assert!(matches!(
        run(a.lookup_raw("b")).unwrap().unwrap().value,
        Raw::Bytes(_)
    ));
    assert_eq!(run(a.invalidate_tags(&["t"])).unwrap(), 1);
    assert_eq!(run(a.get_bytes("b")).unwrap(), None);
    assert_eq!(run(a.lookup_raw("b")).unwrap(), None);
    // No tags: an ordinary (version 2) set.
    run(a.set_with_tags("plain", &1, 0, &[])).unwrap();
    warm(&a, "plain", 1);
}

/// A writer that holds a version as known while another raised it (no log
/// read in between) seals under the old one, sees the new one in the
/// `MGET` after its `SET`, and sets again under it; a writer whose log says
/// the tag moved reads the version first and sets once.
#[test]
fn tags_a_set_racing_an_invalidation_is_sealed_again() {
    let redis = TestRedis::start();
    let clock = crate::ManualClock::new(1_000_000);
    let a = redis.cache(&clock, |_| {});
    let b = redis.cache(&clock, |_| {});
    run(a.set_with_tags("k", &1, 0, &["t"])).unwrap(); // a knows t = 0
                                                       // Raised behind a's back: not through a cache, not logged.
    redis.call(&["INCR", "app:g:r|t"]);
    let sets = |from: usize| {
        redis.resp.sent.borrow()[from..]
            .iter()
            .filter(|b| b.contains(r#"["SET","app:v:r|k""#))
            .count()
    };
    let from = redis.resp.sent.borrow().len();
    run(a.set_with_tags("k", &2, 0, &["t"])).unwrap();
    assert_eq!(sets(from), 2, "sealed and set again");
    assert_eq!(stored_tags(&redis, None, "k"), [("t".to_string(), 1)]);
    assert_eq!(tier(&b, "k"), Some((2, Tier::L2)));

    // b invalidates through its cache (logged); a's log read names the
    // tag, so its next write reads the version before it seals.
    assert_eq!(run(b.invalidate_tags(&["t"])).unwrap(), 1);
    clock.advance(crate::DEFAULT_MAX_STALENESS);
    run(a.set("other", &0)).unwrap(); // its log read rides along
    let from = redis.resp.sent.borrow().len();
    run(a.set_with_tags("k", &3, 0, &["t"])).unwrap();
    assert_eq!(sets(from), 1, "once");
    assert!(
        redis.resp.sent.borrow()[from].starts_with(r#"[["MGET","app:g:r|t"]"#)
            || redis.resp.sent.borrow()[from].starts_with(r#"["MGET","app:g:r|t"]"#),
        "{:?}",
        redis.resp.sent.borrow()[from]
    );
    assert_eq!(stored_tags(&redis, None, "k"), [("t".to_string(), 2)]);
    assert_eq!(tier(&b, "k"), Some((3, Tier::L2)));
}

/// A version that goes back (an attacker's write, or a restore) is counted
/// and not believed by an isolate that saw the higher one; a malformed
/// version serves nothing of the tag.
#[test]
fn tags_a_rollback_is_counted_not_believed_and_a_malformed_version_serves_nothing() {
    let redis = TestRedis::start();
    let clock = crate::ManualClock::new(1_000_000);
    let a = redis.cache(&clock, |_| {});
    let b = redis.cache(&clock, |_| {});
    run(a.set_with_tags("k", &"old", 0, &["t"])).unwrap();
    run(a.invalidate_tags(&["t"])).unwrap();
    assert_eq!(run(b.get::<String>("k")).unwrap(), None); // b saw t = 1
    redis.call(&["SET", "app:g:r|t", "0"]);
    assert_eq!(run(b.get::<String>("k")).unwrap(), None, "not believed");
    assert_eq!(tag_stats(&b).rollbacks, 1);
    assert_eq!(tag_stats(&b).invalidated, 2);
    // The documented limit: an isolate that never saw 1 cannot know.
    let fresh = redis.cache(&clock, |_| {});
    assert_eq!(
        run(fresh.get::<String>("k")).unwrap().as_deref(),
        Some("old")
    );
    redis.call(&["SET", "app:g:r|t", "01"]);
    assert_eq!(run(fresh.get::<String>("k")).unwrap(), None);
    assert!(fresh.stats().l2.unwrap().errors["L2_PROTOCOL"] >= 1);
    // A write under it fails open (counted), and stores nothing.
    redis.call(&["SET", "app:g:r|t", "x"]);
    let writes = fresh.stats().l2.unwrap().writes;
    run(fresh.set_with_tags("j", &1, 0, &["t"])).unwrap();
    assert_eq!(fresh.stats().l2.unwrap().writes, writes);
    assert_eq!(run(fresh.get::<i64>("j")).unwrap(), None);
    // INCR of a non-integer: Redis's error, returned.
    assert_eq!(
        run(fresh.invalidate_tags(&["t"])).unwrap_err().code(),
        "L2_REDIS"
    );
}

/// Bad tags are refused before any request; Redis failing fails an
/// invalidation (the entries would stay valid elsewhere), while a tagged
/// set fails open and caches nothing (not even in L1); without Redis,
/// tagged values are not cached.
#[test]
fn tags_errors_outages_and_l1_alone() {
    let redis = TestRedis::start();
    let clock = crate::ManualClock::new(1_000_000);
    let a = redis.cache(&clock, |_| {});
    run(a.set("warm", &0)).unwrap();
    let sent = redis.resp.sent.borrow().len();
    for bad in ["a,b", "", "\n"] {
        let e = run(a.set_with_tags("k", &1, 0, &[bad])).unwrap_err();
        assert_eq!(e.code(), "INVALID_TAG", "{e}");
        let e = run(a.invalidate_tags(&["ok", bad])).unwrap_err();
        assert_eq!(e.code(), "INVALID_TAG", "{e}");
    }
    let many: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(
        run(a.set_bytes_with_tags("k", &[1], 0, &many))
            .unwrap_err()
            .code(),
        "INVALID_TAG"
    );
    assert_eq!(run(a.invalidate_tags(&[])).unwrap(), 0);
    assert_eq!(redis.resp.sent.borrow().len(), sent, "no request");

    redis.resp.down.set(true);
    assert_eq!(
        run(a.invalidate_tags(&["t"])).unwrap_err().code(),
        "L2_HTTP"
    );
    run(a.set_with_tags("k", &1, 0, &["t"])).unwrap();
    assert_eq!(a.stats().l1.counters.entries, 1, "warm only");
    redis.resp.down.set(false);
    assert_eq!(run(a.get::<i64>("k")).unwrap(), None);
    assert_eq!(tag_stats(&a).invalidations, 0);

    let l1 = EdgeCache::new(&settings(false), None, Now::new(|| 1), Box::new(|_| {})).unwrap();
    run(l1.set("k", &1)).unwrap();
    run(l1.set_with_tags("k", &2, 0, &["t"])).unwrap();
    assert_eq!(run(l1.get::<i64>("k")).unwrap(), None, "not cached");
    assert_eq!(run(l1.invalidate_tags(&["t", "u"])).unwrap(), 2);
    assert_eq!(l1.stats().tags.invalidations, 2);
}

/// Concurrent requests of one isolate: a tag-version read answered after
/// the isolate learned a higher version (its own invalidation, sent later
/// and answered first) is an older answer, not a rollback; the entry is
/// held to the higher version all the same.
#[test]
fn tags_an_older_answer_is_no_rollback() {
    let redis = FakeRedis::default();
    let clock = crate::ManualClock::new(0);
    let (writer, _) = cache(&redis, &clock);
    run(writer.set_with_tags("k", &"v", 0, &["t"])).unwrap();
    let open = Rc::new(Cell::new(false));
    let c = clock.clone();
    let reader = EdgeCache::new(
        &settings(true),
        Some(Box::new(Gated {
            redis: redis.clone(),
            open: open.clone(),
            hold: "MGET",
        })),
        Now::new(move || c.now_ms()),
        Box::new(|_| {}),
    )
    .unwrap();
    let waker = Waker::from(Arc::new(NoopWake));
    let mut cx = Context::from_waker(&waker);
    // The GET passes; the MGET after it reads t = 0, its answer held.
    let mut read = Box::pin(reader.get::<String>("k"));
    assert!(read.as_mut().poll(&mut cx).is_pending());
    assert_eq!(run(reader.invalidate_tags(&["t"])).unwrap(), 1);
    open.set(true);
    let Poll::Ready(got) = read.as_mut().poll(&mut cx) else {
        panic!("still pending")
    };
    assert_eq!(got.unwrap(), None, "held to t = 1, which it learned");
    let t = reader.stats().tags;
    assert_eq!((t.rollbacks, t.invalidated, t.invalidations), (0, 1, 1));
    // A lower version read by a request sent after it learned 1 is one.
    redis
        .data
        .borrow_mut()
        .insert("app:g:r|t".into(), "0".into());
    assert_eq!(run(reader.get::<String>("k")).unwrap(), None);
    assert_eq!(reader.stats().tags.rollbacks, 1);
}

/// FLUSHALL resets versions to 0: an isolate that saw higher ones keeps
/// them (as JS does), so an entry another isolate writes under 0 misses
/// for it (counted as a rollback), while its own writes seal the higher
/// version and are served everywhere.
#[test]
fn tags_after_a_flush_the_highest_version_seen_is_kept() {
    let redis = TestRedis::start();
    let clock = crate::ManualClock::new(1_000_000);
    let a = redis.cache(&clock, |_| {});
    run(a.set("warm", &0)).unwrap();
    for _ in 0..3 {
        run(a.invalidate_tags(&["t"])).unwrap();
    }
    redis.call(&["FLUSHALL"]);
    redis.append_as_js(Op::Set, "app:v:r|_"); // the new epoch, named
    clock.advance(crate::DEFAULT_MAX_STALENESS);
    let fresh = redis.cache(&clock, |_| {});
    run(fresh.set_with_tags("k", &"under 0", 0, &["t"])).unwrap();
    assert_eq!(stored_tags(&redis, None, "k"), [("t".to_string(), 0)]);
    assert_eq!(run(a.get::<String>("k")).unwrap(), None);
    assert!(coherence(&a).log.epoch >= 1, "{:?}", coherence(&a));
    assert_eq!(a.stats().tags.rollbacks, 1);
    run(a.set_with_tags("k", &"under 3", 0, &["t"])).unwrap();
    assert_eq!(stored_tags(&redis, None, "k"), [("t".to_string(), 3)]);
    assert_eq!(
        run(fresh.get::<String>("k")).unwrap().as_deref(),
        Some("under 3")
    );
    assert_eq!(
        run(a.get::<String>("k")).unwrap().as_deref(),
        Some("under 3")
    );
}
