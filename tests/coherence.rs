//! The reader's state machine ([`edgecache::Lease`]) against a model: a
//! simulated Redis (values with versions, the log stream with Redis's id
//! rule, the epoch) shared by another isolate that writes and one that
//! reads. Random interleavings of writes (each command of a pipeline run
//! at its own step), trims, flushes, restarts with the clock set back, log
//! reads beginning, running command by command, finishing or failing out
//! of order, L1 fills and clock advances. After every step:
//!
//! * **the guarantee**: no L1 entry of the reader is older than a write of
//!   its key acknowledged before the lease's start (so an L1 hit served
//!   while `needs_read` is false never returns a value older than a write
//!   acknowledged more than `max_staleness` before it);
//! * **no silent loss**: a read that reports no gap names every entry
//!   appended since what the reader had accounted for when it began;
//! * **the lease**: it starts at the latest start of a successful read,
//!   never later, whatever the order of completion.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashMap;

use edgecache::{Arg, Glob, Layout, Lease, LeaseConfig, Log, Op, Reply, StreamId};
use proptest::prelude::*;

const KEYS: [&str; 4] = ["app:v:r|a", "app:v:r|b", "app:v:t4:acme|c", "app:n:r|a"];
const GLOBS: [&str; 3] = ["app:[vn]:r|*", "app:[vn]:[rtub]*", "app:[vn]:t4:acme|*"];
const BATCH: u32 = 3;
const STALE: u64 = 10;
const AWAY: u64 = 60;

#[derive(Clone, Debug)]
enum Action {
    /// Another isolate begins a mutation: `Set`/`Delete` of a key, or a
    /// pattern delete.
    Write(bool, usize),
    WritePattern(usize),
    /// The next command of a write in flight runs on the server.
    WriteStep(usize),
    ReadBegin,
    /// A read that begins, runs and finishes with nothing in between.
    ReadAll,
    ReadStep(usize),
    ReadFinish(usize),
    ReadFail(usize),
    /// The reader fills L1 with a key's current value (an L2 read).
    Fill(usize),
    Tick(u64),
    /// A trim that keeps at least `batch + 1` entries (what
    /// `MAXLEN ~ LOG_MAXLEN` guarantees with a batch under it).
    Trim(usize),
    /// A trim from outside edgecache that keeps this many entries (at
    /// least 0). Only while the reader's position is an entry: a foreign
    /// trim of a log the reader last saw empty is the documented limit.
    ForeignTrim(usize),
    Flush,
    /// Restarted empty, the server's clock set back by this many ms.
    Restart(u64),
}

fn step() -> impl Strategy<Value = Action> {
    prop_oneof![
        12 => (any::<bool>(), 0..KEYS.len()).prop_map(|(s, k)| Action::Write(s, k)),
        3 => (0..GLOBS.len()).prop_map(Action::WritePattern),
        36 => any::<usize>().prop_map(Action::WriteStep),
        6 => Just(Action::ReadBegin),
        8 => Just(Action::ReadAll),
        15 => any::<usize>().prop_map(Action::ReadStep),
        12 => any::<usize>().prop_map(Action::ReadFinish),
        1 => any::<usize>().prop_map(Action::ReadFail),
        9 => (0..KEYS.len()).prop_map(Action::Fill),
        6 => (1u64..8).prop_map(Action::Tick),
        1 => Just(Action::Tick(AWAY + 5)),
        3 => (1usize..6).prop_map(Action::Trim),
        2 => (0usize..3).prop_map(Action::ForeignTrim),
        1 => Just(Action::Flush),
        1 => (0u64..40).prop_map(Action::Restart),
    ]
}

/// An entry in the simulated stream, with the serial of its append.
struct Stored {
    id: StreamId,
    serial: u64,
    fields: Vec<Vec<u8>>,
}

/// The simulated Redis.
#[derive(Default)]
struct Server {
    /// Current version of each key (a delete is a version too).
    versions: HashMap<&'static str, u64>,
    version: u64,
    epoch: Option<String>,
    /// `None`: the stream key does not exist.
    stream: Option<(Vec<Stored>, StreamId)>,
    /// Appends so far (a global serial), and each one's targets.
    appended: Vec<(Op, Vec<String>)>,
    /// ms added to the test clock to make ids.
    offset: i64,
}

impl Server {
    fn mutate(&mut self, keys: &[&'static str]) -> Vec<(&'static str, u64)> {
        self.version += 1;
        keys.iter()
            .map(|k| {
                self.versions.insert(k, self.version);
                (*k, self.version)
            })
            .collect()
    }

    /// Runs one command, as Redis would.
    fn run(&mut self, args: &[Arg<'_>], now: u64) -> Result<Reply, String> {
        let s = |i: usize| match args[i] {
            Arg::Str(s) => s.to_string(),
            Arg::Int(n) => n.to_string(),
        };
        match s(0).as_str() {
            "GET" => Ok(self
                .epoch
                .as_ref()
                .map_or(Reply::Nil, |e| Reply::Bytes(e.as_bytes().to_vec()))),
            "SET" => {
                assert_eq!(s(3), "NX");
                if self.epoch.is_none() {
                    self.epoch = Some(s(2));
                }
                Ok(Reply::Nil)
            }
            "XADD" => {
                assert_eq!(
                    (s(2), s(3), s(5)),
                    ("MAXLEN".into(), "~".into(), "*".into())
                );
                // Coarse ids (8 test ms to one), so that ids of streams before and
                // after a flush often meet, as on a busy server.
                let ms = (now as i64 + self.offset).max(0) as u64 / 8;
                let (entries, last) = self
                    .stream
                    .get_or_insert_with(|| (Vec::new(), StreamId::ZERO));
                let id = if ms > last.ms {
                    StreamId { ms, seq: 0 }
                } else {
                    StreamId {
                        ms: last.ms,
                        seq: last.seq + 1,
                    }
                };
                *last = id;
                let fields: Vec<Vec<u8>> = (6..args.len()).map(|i| s(i).into_bytes()).collect();
                let op = match s(9).as_str() {
                    "set" => Op::Set,
                    "del" => Op::Delete,
                    "pat" => Op::Pattern,
                    other => panic!("op {other}"),
                };
                let targets = (11..args.len()).step_by(2).map(s).collect();
                self.appended.push((op, targets));
                entries.push(Stored {
                    id,
                    serial: self.appended.len() as u64,
                    fields,
                });
                Ok(Reply::Bytes(id.to_string().into_bytes()))
            }
            "XREVRANGE" => {
                let count: usize = s(5).parse().unwrap();
                let start = s(3);
                let Some((entries, _)) = &self.stream else {
                    return Ok(Reply::Array(vec![]));
                };
                let from: StreamId = if start == "-" {
                    StreamId::ZERO
                } else {
                    start.parse().unwrap()
                };
                Ok(Reply::Array(
                    entries
                        .iter()
                        .rev()
                        .filter(|e| e.id >= from)
                        .take(count)
                        .map(|e| {
                            Reply::Array(vec![
                                Reply::Bytes(e.id.to_string().into_bytes()),
                                Reply::Array(e.fields.iter().cloned().map(Reply::Bytes).collect()),
                            ])
                        })
                        .collect(),
                ))
            }
            other => panic!("unexpected command {other}"),
        }
    }
}

/// A mutation of another isolate in flight: its pipeline, the next
/// command, and what its mutation did once run.
struct Write {
    keys: Vec<&'static str>,
    commands: Vec<edgecache::Command>,
    next: usize,
    done: Vec<(&'static str, u64)>,
}

struct Read {
    ticket: edgecache::ReadTicket,
    /// The reader's position when it began.
    from: Option<StreamId>,
    replies: Vec<Result<Reply, String>>,
    /// What the reader had accounted for when it began (an append serial).
    base: u64,
    /// Appends made before its XREVRANGE ran.
    upto: u64,
}

/// Runs `steps` against the lease and the model, checking after each.
fn check(steps: Vec<Action>) -> Result<(), TestCaseError> {
    let log = Log::new(&Layout::new("app").unwrap());
    let mut writer = Lease::new(log.clone(), "writer0123456789", LeaseConfig::default()).unwrap();
    let config = LeaseConfig {
        max_staleness: STALE,
        max_away: AWAY,
        batch: BATCH,
        strict: false,
    };
    let mut lease = Lease::new(log, "reader0123456789", config).unwrap();
    let mut server = Server::default();
    let mut now = 0u64;
    let mut writes: Vec<Write> = Vec::new();
    let mut reads: Vec<Read> = Vec::new();
    // The reader's L1: key -> version.
    let mut l1: HashMap<&'static str, u64> = HashMap::new();
    // Acknowledged writes: (ack time, key, version).
    let mut acked: Vec<(u64, &'static str, u64)> = Vec::new();
    let mut accounted = 0u64;
    let mut fresh: Option<u64> = None;

    // A Redis already in use: an epoch, and an entry in the log.
    for c in writer.append(Op::Set, &[KEYS[0]]).unwrap() {
        server.run(&c.args(), now).unwrap();
    }
    let debug = std::env::var_os("COHERENCE_DEBUG").is_some();
    let steps = steps.into_iter().flat_map(|st| match st {
        // Pushed last, it is the read that ReadStep/ReadFinish with
        // index usize::MAX pick (the last eligible one).
        Action::ReadAll => vec![
            Action::ReadBegin,
            Action::ReadStep(usize::MAX),
            Action::ReadStep(usize::MAX),
            Action::ReadStep(usize::MAX),
            Action::ReadFinish(usize::MAX),
        ],
        other => vec![other],
    });
    for st in steps {
        if debug {
            eprintln!(
                "{st:?} now={now} accounted={accounted} pos={:?} stream={:?} epoch={:?}",
                lease.position(),
                server
                    .stream
                    .as_ref()
                    .map(|(e, _)| e.iter().map(|x| (x.id, x.serial)).collect::<Vec<_>>()),
                server.epoch
            );
        }
        match st {
            Action::Write(set, k) => {
                let op = if set { Op::Set } else { Op::Delete };
                let commands = writer.append(op, &[KEYS[k]]).unwrap();
                writes.push(Write {
                    keys: vec![KEYS[k]],
                    commands,
                    next: 0,
                    done: vec![],
                });
            }
            Action::WritePattern(g) => {
                let glob = Glob::new(GLOBS[g]);
                let keys = KEYS.iter().copied().filter(|k| glob.matches(k)).collect();
                let commands = writer.append(Op::Pattern, &[GLOBS[g]]).unwrap();
                writes.push(Write {
                    keys,
                    commands,
                    next: 0,
                    done: vec![],
                });
            }
            Action::WriteStep(i) if !writes.is_empty() => {
                let i = i % writes.len();
                let w = &mut writes[i];
                // Action 0 is the mutation itself; then the log's commands.
                if w.next == 0 {
                    w.done = server.mutate(&w.keys);
                } else {
                    let args = w.commands[w.next - 1].args();
                    server.run(&args, now).unwrap();
                }
                w.next += 1;
                if w.next > w.commands.len() {
                    let w = writes.remove(i);
                    acked.extend(w.done.iter().map(|(k, v)| (now, *k, *v)));
                }
            }
            Action::ReadBegin => {
                let from = lease.position();
                let ticket = lease.begin_read(now);
                reads.push(Read {
                    ticket,
                    from,
                    replies: vec![],
                    base: accounted,
                    upto: 0,
                });
            }
            Action::ReadStep(i) if !reads.is_empty() => {
                let n = reads.iter().filter(|r| r.replies.len() < 3).count().max(1);
                let pick = if i == usize::MAX { n - 1 } else { i % n };
                let r = reads.iter_mut().filter(|r| r.replies.len() < 3).nth(pick);
                if let Some(r) = r {
                    let args = r.ticket.commands()[r.replies.len()].args();
                    if r.replies.len() == 1 {
                        // the XREVRANGE: what it can see
                        r.upto = server.appended.len() as u64;
                    }
                    r.replies.push(server.run(&args, now));
                }
            }
            Action::ReadFinish(i) if reads.iter().any(|r| r.replies.len() == 3) => {
                let done: Vec<usize> = (0..reads.len())
                    .filter(|&j| reads[j].replies.len() == 3)
                    .collect();
                let i = if i == usize::MAX {
                    done[done.len() - 1]
                } else {
                    done[i % done.len()]
                };
                {
                    let r = reads.remove(i);
                    let started = r.ticket.started();
                    let out = lease.finish_read(r.ticket, &r.replies).unwrap();
                    if debug {
                        eprintln!(
                            "  finished base={} upto={} {out:?} replies={:?}",
                            r.base, r.upto, r.replies
                        );
                    }
                    if out.everything {
                        l1.clear();
                        accounted = server.appended.len() as u64;
                    } else {
                        // No silent loss: every append since `base`,
                        // up to the range's run, is named.
                        for (op, targets) in &server.appended[r.base as usize..r.upto as usize] {
                            let named = if op.globs() { &out.globs } else { &out.keys };
                            for t in targets {
                                prop_assert!(named.contains(t), "{t} missing from {out:?}");
                            }
                        }
                        for k in &out.keys {
                            l1.retain(|key, _| key != k);
                        }
                        for g in &out.globs {
                            let g = Glob::new(g);
                            l1.retain(|key, _| !g.matches(key));
                        }
                        accounted = accounted.max(r.upto);
                    }
                    fresh = Some(fresh.map_or(started, |f| f.max(started)));
                }
            }
            Action::ReadFail(i) if !reads.is_empty() => {
                let r = reads.remove(i % reads.len());
                lease.failed_read(r.ticket);
            }
            Action::Fill(k) => {
                l1.insert(KEYS[k], server.versions.get(KEYS[k]).copied().unwrap_or(0));
            }
            Action::Tick(d) => now += d,
            Action::Trim(n) => {
                if let Some((entries, _)) = &mut server.stream {
                    let keep = BATCH as usize + 1;
                    let cut = n.min(entries.len().saturating_sub(keep));
                    entries.drain(..cut);
                }
            }
            Action::ForeignTrim(keep) => {
                let at_empty = |p: Option<StreamId>| p == Some(StreamId::ZERO);
                let allowed =
                    !at_empty(lease.position()) && !reads.iter().any(|r| at_empty(r.from));
                if let (true, Some((entries, _))) = (allowed, &mut server.stream) {
                    let cut = entries.len().saturating_sub(keep);
                    entries.drain(..cut);
                }
            }
            Action::Flush | Action::Restart(_) => {
                if let Action::Restart(back) = st {
                    server.offset -= back as i64;
                }
                server.epoch = None;
                server.stream = None;
                // The values are gone too: a delete of every key.
                server.mutate(&KEYS);
            }
            _ => {}
        }

        // The lease starts at the latest start of a successful read.
        prop_assert_eq!(lease.fresh_from(), fresh);
        // The guarantee: L1 holds nothing older than a write of its key
        // acknowledged before the lease's start.
        if let Some(t) = lease.fresh_from() {
            for (at, k, v) in &acked {
                if *at < t {
                    if let Some(have) = l1.get(k) {
                        prop_assert!(have >= v, "L1 has {k} at version {have}, older than {v} acknowledged at {at} < lease start {t}");
                    }
                }
            }
        }
        let _ = lease.needs_read(now);
    }
    if std::env::var_os("COHERENCE_STATS").is_some() {
        eprintln!("STATS {:?}", lease.stats());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn lease_follows_the_model(steps in prop::collection::vec(step(), 1..200)) {
        check(steps)?;
    }
}

/// A flush between a read's XREVRANGE and its second GET of the epoch,
/// and a new stream whose first id is the old stream's newest: the read
/// must not keep the old stream's id as its position, or the new entry
/// with that id is skipped.
#[test]
fn a_flush_inside_a_read_does_not_carry_the_old_position_over() {
    use Action::*;
    let last = usize::MAX;
    check(vec![
        ReadAll,
        ReadBegin,
        ReadStep(last),
        ReadStep(last),
        Flush,
        Write(true, 1),
        WriteStep(0),
        WriteStep(0),
        ReadStep(last),
        ReadFinish(last),
        WriteStep(0),
        ReadAll,
    ])
    .unwrap();
}
