//! wasm-bindgen glue for coherence across isolates (js/tiered.ts): the
//! invalidation log's commands and the reader's [`Lease`]. Thin: the core
//! decides what to send and what a reply means; this module converts
//! commands to JSON text (the body `RedisRest.pipeline` would send) and
//! replies from the JS values `RedisRest` decodes.

use js_sys::{Array, Reflect};
use wasm_bindgen::prelude::*;

use crate::coherence::lease::{new_writer_id, Lease, LeaseConfig, ReadTicket};
use crate::coherence::log::{Command, Log, Op};
use crate::error::Error;
use crate::layout::Layout;
use crate::rest::Reply;
use crate::wasm::to_js;

fn commands_json(commands: &[Command]) -> String {
    let mut out = String::from("[");
    for (i, c) in commands.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&c.body());
    }
    out.push(']');
    out
}

/// A JS value as `RedisRest` decodes a reply (`null`, a string, a number,
/// an array of those) back into a [`Reply`].
fn reply(v: &JsValue) -> Result<Reply, Error> {
    if v.is_null() || v.is_undefined() {
        Ok(Reply::Nil)
    } else if let Some(s) = v.as_string() {
        Ok(Reply::Bytes(s.into_bytes()))
    } else if let Some(n) = v.as_f64() {
        if n.fract() != 0.0 || n.abs() > 9_007_199_254_740_991.0 {
            // (No float formatting here: it would cost the package 15 KiB.)
            return Err(Error::L2Protocol(
                "an integer reply is not a safe integer".into(),
            ));
        }
        Ok(Reply::Int(n as i64))
    } else if Array::is_array(v) {
        let a = Array::from(v);
        a.iter()
            .map(|x| reply(&x))
            .collect::<Result<_, _>>()
            .map(Reply::Array)
    } else {
        Err(Error::L2Protocol(
            "a reply must be null, a string, a number or an array".into(),
        ))
    }
}

/// `RedisRest.pipeline`'s `{ ok, value }` / `{ ok: false, error }` entries.
fn replies(entries: &Array) -> Result<Vec<Result<Reply, String>>, Error> {
    let get =
        |o: &JsValue, k: &str| Reflect::get(o, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED);
    entries
        .iter()
        .map(|e| {
            if get(&e, "ok").as_bool() == Some(true) {
                reply(&get(&e, "value")).map(Ok)
            } else {
                Ok(Err(get(&e, "error")
                    .as_string()
                    .unwrap_or_else(|| "error".into())))
            }
        })
        .collect()
}

/// The coherence state of one `TieredCache`: its writer id, its position
/// in the log, its lease. Reads in flight are tickets (numbers).
#[wasm_bindgen(js_name = CoherenceCore)]
pub struct WasmCoherence {
    lease: Lease,
    /// Reads in flight (few at once: a Vec costs the package less than a map).
    tickets: Vec<(u32, ReadTicket)>,
    next: u32,
}

impl WasmCoherence {
    fn take(&mut self, ticket: u32) -> Option<ReadTicket> {
        let i = self.tickets.iter().position(|t| t.0 == ticket)?;
        Some(self.tickets.swap_remove(i).1)
    }
}

#[wasm_bindgen(js_class = CoherenceCore)]
impl WasmCoherence {
    /// Throws `INVALID_OPTION` for a bad prefix or configuration,
    /// `RANDOM_UNAVAILABLE` without a secure random source.
    #[wasm_bindgen(constructor)]
    pub fn new(prefix: &str, max_staleness: f64, strict: bool) -> Result<WasmCoherence, JsValue> {
        let layout = Layout::new(prefix).map_err(to_js)?;
        let id = new_writer_id().map_err(to_js)?;
        let max_staleness = max_staleness as u64;
        let defaults = LeaseConfig::default();
        let config = LeaseConfig {
            max_staleness,
            max_away: defaults.max_away.max(max_staleness),
            strict,
            ..defaults
        };
        let lease = Lease::new(Log::new(&layout), &id, config).map_err(to_js)?;
        Ok(WasmCoherence {
            lease,
            tickets: Vec::new(),
            next: 0,
        })
    }

    /// The channel pushed entries go to.
    #[wasm_bindgen(getter, js_name = pushChannel)]
    pub fn push_channel(&self) -> String {
        self.lease.log().push_channel().to_owned()
    }

    /// This cache's writer id.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.lease.id().to_owned()
    }

    /// Until when (ms of the clock given to `beginRead`) an L1 hit may be
    /// served without reading the log: `-Infinity` before the first read.
    #[wasm_bindgen(js_name = freshUntil)]
    pub fn fresh_until(&self) -> f64 {
        match self.lease.fresh_from() {
            Some(t) => (t + self.lease.config().max_staleness) as f64,
            None => f64::NEG_INFINITY,
        }
    }

    /// When the last successful read started (`-Infinity`: never).
    #[wasm_bindgen(js_name = freshFrom)]
    pub fn fresh_from(&self) -> f64 {
        self.lease
            .fresh_from()
            .map_or(f64::NEG_INFINITY, |t| t as f64)
    }

    /// A log read begins at `now` (whole ms of a monotonic clock): its
    /// ticket; its commands are `commands(ticket)`.
    #[wasm_bindgen(js_name = beginRead)]
    pub fn begin_read(&mut self, now: f64) -> u32 {
        self.next = self.next.wrapping_add(1);
        let ticket = self.lease.begin_read(now as u64);
        self.tickets.push((self.next, ticket));
        self.next
    }

    /// The commands of a read in flight, as a JSON array of commands.
    pub fn commands(&self, ticket: u32) -> String {
        self.tickets
            .iter()
            .find(|t| t.0 == ticket)
            .map_or_else(|| "[]".into(), |t| commands_json(t.1.commands()))
    }

    /// The read failed (Redis unreachable, a timeout).
    #[wasm_bindgen(js_name = failedRead)]
    pub fn failed_read(&mut self, ticket: u32) {
        if let Some(t) = self.take(ticket) {
            self.lease.failed_read(t);
        }
    }

    /// The read's replies (`RedisRest.pipeline` entries, in order) came:
    /// `[everything, gap | null, keys, globs, tags]`: what to drop from L1
    /// (`tags`: the keys of tags' versions raised elsewhere, whose known
    /// versions are no longer current; `everything` also drops every tag
    /// version held).
    /// Throws `L2_PROTOCOL`/`L2_REDIS` for a reply that is not what Redis
    /// answers (counted as a failed read).
    #[wasm_bindgen(js_name = finishRead)]
    pub fn finish_read(&mut self, ticket: u32, entries: &Array) -> Result<Array, JsValue> {
        let t = self
            .take(ticket)
            .ok_or_else(|| to_js(Error::L2Protocol("no such log read".into())))?;
        let r = match replies(entries) {
            Ok(r) => r,
            Err(e) => {
                self.lease.failed_read(t);
                return Err(to_js(e));
            }
        };
        let out = self.lease.finish_read(t, &r).map_err(to_js)?;
        let strings = |v: &[String]| v.iter().map(|s| JsValue::from_str(s)).collect::<Array>();
        Ok(Array::of5(
            &JsValue::from_bool(out.everything),
            &out.gap
                .map_or(JsValue::NULL, |g| JsValue::from_str(g.name())),
            &strings(&out.keys),
            &strings(&out.globs),
            &strings(&out.tags),
        ))
    }

    /// An expired lease whose read failed: may the L1 hit be served?
    #[wasm_bindgen(js_name = serveUnreachable)]
    pub fn serve_unreachable(&mut self) -> bool {
        self.lease.serve_unreachable()
    }

    /// The commands that append a mutation to the log (`op`: `set`, `del`,
    /// `incr`, `pat`, `clear`, `tag`), as a JSON array (an entry per 64
    /// targets), then its `PUBLISH` for caches that push.
    pub fn append(&mut self, op: &str, targets: Vec<String>) -> Result<String, JsValue> {
        let op = Op::from_name(op.as_bytes()).ok_or_else(|| {
            to_js(Error::InvalidOption {
                name: "op",
                reason: op.into(),
            })
        })?;
        let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
        let mut all = self.lease.append(op, &refs).map_err(to_js)?;
        all.push(self.lease.log().publish(self.lease.id(), op, &refs));
        Ok(commands_json(&all))
    }

    /// The counters: `[reads, failures, entries, own, gaps, trimmed, behind,
    /// lost, epoch, away, unreadable, staleServed, refused]`.
    pub fn stats(&self) -> Vec<f64> {
        let s = self.lease.stats();
        [
            s.reads,
            s.failures,
            s.entries,
            s.own,
            s.gaps,
            s.trimmed,
            s.behind,
            s.lost,
            s.epoch,
            s.away,
            s.unreadable,
            s.stale_served,
            s.refused,
        ]
        .iter()
        .map(|&n| n as f64)
        .collect()
    }
}
