//! The coherence corpus (`tests/fixtures/coherence.json`): the log's keys,
//! the exact bytes of every command, how entries decode, and the lease's
//! decisions on given answers. The JS side can run the same file.
#![cfg(not(target_arch = "wasm32"))]

use edgecache::{decode_pipeline, Layout, Lease, LeaseConfig, Log, Op, ReadTicket, StreamId};
use serde_json::Value;

fn corpus() -> Value {
    serde_json::from_str(include_str!("fixtures/coherence.json")).unwrap()
}

fn log(case: &Value) -> Log {
    Log::new(&Layout::new(case["prefix"].as_str().unwrap()).unwrap())
}

fn op(name: &str) -> Op {
    match name {
        "set" => Op::Set,
        "del" => Op::Delete,
        "incr" => Op::Incr,
        "pat" => Op::Pattern,
        "clear" => Op::Clear,
        other => panic!("op {other}"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn keys() {
    let c = corpus();
    for case in c["keys"].as_array().unwrap() {
        let l = log(case);
        assert_eq!(l.stream_key(), case["stream"].as_str().unwrap());
        assert_eq!(l.epoch_key(), case["epoch"].as_str().unwrap());
        let layout = Layout::new(case["prefix"].as_str().unwrap()).unwrap();
        assert_eq!(layout.parse(l.stream_key()), None);
        assert_eq!(layout.parse(l.epoch_key()), None);
    }
}

#[test]
fn appends_and_reads_byte_for_byte() {
    let c = corpus();
    for case in c["append"].as_array().unwrap() {
        let targets = strings(&case["targets"]);
        let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
        let got = log(case).append(
            case["writer"].as_str().unwrap(),
            case["epoch"].as_str().unwrap(),
            op(case["op"].as_str().unwrap()),
            &refs,
        );
        match case["error"].as_str() {
            Some(code) => assert_eq!(got.unwrap_err().code(), code, "{}", case["why"]),
            None => {
                let bodies: Vec<String> = got.unwrap().iter().map(|c| c.body()).collect();
                assert_eq!(bodies, strings(&case["bodies"]));
            }
        }
    }
    for case in c["read"].as_array().unwrap() {
        let from = case["from"]
            .as_str()
            .map(|f| f.parse::<StreamId>().unwrap());
        let batch = case["batch"].as_u64().unwrap() as u32;
        let bodies: Vec<String> = log(case)
            .read(from, batch)
            .iter()
            .map(|c| c.body())
            .collect();
        assert_eq!(bodies, strings(&case["bodies"]));
    }
}

#[test]
fn ids_and_entries() {
    let c = corpus();
    for case in c["ids"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let parsed = text.parse::<StreamId>();
        assert_eq!(parsed.is_ok(), case["ok"].as_bool().unwrap(), "{text:?}");
        if let Ok(id) = parsed {
            assert_eq!(id.to_string(), text);
        }
    }
    let l = Log::new(&Layout::new("app").unwrap());
    for case in c["entries"].as_array().unwrap() {
        let fields: Vec<Vec<u8>> = strings(&case["fields"])
            .into_iter()
            .map(String::into_bytes)
            .collect();
        let got = l.decode_entry(&fields);
        match case["error"].as_str() {
            Some(code) => assert_eq!(got.unwrap_err().code(), code, "{}", case["why"]),
            None => {
                let e = got.unwrap();
                let want = &case["expect"];
                assert_eq!(e.writer, want["writer"].as_str().unwrap());
                assert_eq!(e.op.name(), want["op"].as_str().unwrap());
                assert_eq!(e.targets, strings(&want["targets"]));
            }
        }
    }
}

#[test]
fn lease_decisions() {
    let c = corpus();
    let mut n = 0;
    for case in c["lease"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let cfg = &case["config"];
        let config = LeaseConfig {
            max_staleness: cfg["maxStaleness"].as_u64().unwrap(),
            max_away: cfg["maxAway"].as_u64().unwrap(),
            batch: cfg["batch"].as_u64().unwrap() as u32,
            strict: cfg["strict"].as_bool().unwrap(),
        };
        let mut lease = Lease::new(log(case), case["id"].as_str().unwrap(), config).unwrap();
        let mut tickets: Vec<Option<ReadTicket>> = Vec::new();
        for step in case["steps"].as_array().unwrap() {
            if let Some(t) = step["begin"].as_u64() {
                let ticket = lease.begin_read(t);
                let bodies: Vec<String> = ticket.commands().iter().map(|c| c.body()).collect();
                assert_eq!(bodies, strings(&step["bodies"]), "{name}");
                tickets.push(Some(ticket));
                continue;
            }
            let i = step["finish"].as_u64().unwrap() as usize;
            let ticket = tickets[i].take().expect("finished once");
            let answer = step["answer"].as_str().unwrap().as_bytes();
            let replies = decode_pipeline(200, answer, ticket.commands().len(), false).unwrap();
            let got = lease.finish_read(ticket, &replies);
            let position = |v: &Value| v.as_str().map(|p| p.parse::<StreamId>().unwrap());
            let fresh = |v: &Value| v.as_u64();
            match step["error"].as_str() {
                Some(code) => {
                    assert_eq!(got.unwrap_err().code(), code, "{name}");
                    assert_eq!(lease.position(), position(&step["position"]), "{name}");
                    assert_eq!(lease.fresh_from(), fresh(&step["fresh_from"]), "{name}");
                }
                None => {
                    let out = got.unwrap();
                    let want = &step["outcome"];
                    assert_eq!(out.keys, strings(&want["keys"]), "{name}");
                    assert_eq!(out.globs, strings(&want["globs"]), "{name}");
                    assert_eq!(
                        out.everything,
                        want["everything"].as_bool().unwrap(),
                        "{name}"
                    );
                    assert_eq!(out.gap.map(|g| g.name()), want["gap"].as_str(), "{name}");
                    assert_eq!(out.first, want["first"].as_bool().unwrap(), "{name}");
                    assert_eq!(out.renewed, want["renewed"].as_bool().unwrap(), "{name}");
                    assert_eq!(lease.position(), position(&want["position"]), "{name}");
                    assert_eq!(lease.fresh_from(), fresh(&want["fresh_from"]), "{name}");
                }
            }
        }
        n += 1;
    }
    assert!(n >= 10, "the corpus has {n} lease cases");
}
