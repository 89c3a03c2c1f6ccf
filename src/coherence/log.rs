//! The invalidation log itself: where it lives in Redis, what an entry
//! says, the exact commands that append to it and read it, and the strict
//! decoding of what Redis answers. No state and no I/O: the reader's state
//! machine is [`Lease`](super::Lease).

use std::fmt;

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::rest::{Arg, Reply};

/// The most entries the log keeps: every append trims it with
/// `XADD ... MAXLEN ~ LOG_MAXLEN`, which keeps at least this many (Redis
/// trims whole nodes only, so a few more may stay). Part of the format,
/// not an option: a reader's batch must stay under it (see
/// [`LeaseConfig::batch`](crate::LeaseConfig::batch)), whichever isolate
/// wrote.
pub const LOG_MAXLEN: u32 = 10_000;

/// The most targets (keys or globs) in one entry; a mutation of more
/// keys appends several entries.
pub const MAX_TARGETS: usize = 64;

fn protocol(why: impl Into<String>) -> Error {
    Error::L2Protocol(why.into())
}

/// A Redis stream entry id, `<ms>-<seq>`, ordered as Redis orders them.
///
/// ```
/// use edgecache::StreamId;
/// let id: StreamId = "1700000000000-3".parse().unwrap();
/// assert_eq!(id, StreamId { ms: 1_700_000_000_000, seq: 3 });
/// assert!(id < "1700000000001-0".parse().unwrap());
/// assert_eq!(id.to_string(), "1700000000000-3");
/// assert!("01-0".parse::<StreamId>().is_err()); // Redis never writes that
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    /// The milliseconds part.
    pub ms: u64,
    /// The sequence within the millisecond.
    pub seq: u64,
}

impl StreamId {
    /// `0-0`: before every entry (Redis never gives an entry this id).
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Decimal digits as Redis prints a `u64`: `0`, or no leading zero.
fn canonical_u64(s: &str) -> Option<u64> {
    let ok =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if ok {
        s.parse().ok()
    } else {
        None
    }
}

impl std::str::FromStr for StreamId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let parsed = s.split_once('-').and_then(|(ms, seq)| {
            Some(StreamId {
                ms: canonical_u64(ms)?,
                seq: canonical_u64(seq)?,
            })
        });
        parsed.ok_or_else(|| protocol(format!("{s:?} is not a stream entry id")))
    }
}

/// The kind of mutation an entry records. Keys or globs follow from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `set`, `setMany`: value keys.
    Set,
    /// `delete`, `deleteMany`: keys of either kind.
    Delete,
    /// `incr`, `decr`: counter keys.
    Incr,
    /// `deletePattern`: Redis globs ([`Layout::pattern`]).
    Pattern,
    /// `clear` of the cache ([`Layout::everything`]) or of a scope
    /// ([`Layout::pattern`] with `*`): Redis globs.
    Clear,
    /// `invalidateTags`: the keys of the tags' versions ([`Kind::Tag`],
    /// `<prefix>:g:<space><tag>`), whose `INCR` the entry follows.
    ///
    /// [`Kind::Tag`]: crate::Kind::Tag
    Tag,
}

impl Op {
    /// The name an entry carries.
    pub fn name(self) -> &'static str {
        match self {
            Op::Set => "set",
            Op::Delete => "del",
            Op::Incr => "incr",
            Op::Pattern => "pat",
            Op::Clear => "clear",
            Op::Tag => "tag",
        }
    }

    /// Whether its targets are Redis globs (else Redis keys).
    pub fn globs(self) -> bool {
        matches!(self, Op::Pattern | Op::Clear)
    }

    /// The op an entry names (`set`, `del`, `incr`, `pat`, `clear`, `tag`).
    ///
    /// ```
    /// use edgecache::Op;
    /// assert_eq!(Op::from_name(b"tag"), Some(Op::Tag));
    /// assert_eq!(Op::from_name(b"TAG"), None);
    /// ```
    pub fn from_name(name: &[u8]) -> Option<Op> {
        Some(match name {
            b"set" => Op::Set,
            b"del" => Op::Delete,
            b"incr" => Op::Incr,
            b"pat" => Op::Pattern,
            b"clear" => Op::Clear,
            b"tag" => Op::Tag,
            _ => return None,
        })
    }
}

/// One command, owned, to send as is (in a pipeline with others).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command(Vec<Part>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Str(String),
    Int(i64),
}

impl Command {
    fn new() -> Self {
        Command(Vec::with_capacity(8))
    }

    fn s(mut self, s: impl Into<String>) -> Self {
        self.0.push(Part::Str(s.into()));
        self
    }

    fn n(mut self, n: i64) -> Self {
        self.0.push(Part::Int(n));
        self
    }

    /// Its arguments, for [`command_body`](crate::command_body) and
    /// [`pipeline_body`](crate::pipeline_body).
    pub fn args(&self) -> Vec<Arg<'_>> {
        self.0
            .iter()
            .map(|p| match p {
                Part::Str(s) => Arg::Str(s),
                Part::Int(n) => Arg::Int(*n),
            })
            .collect()
    }

    /// The body of `POST /` for it (what the corpus pins byte for byte).
    pub fn body(&self) -> String {
        crate::rest::command_body(&self.args())
    }
}

/// What an entry says: who wrote it, the kind of mutation, and the Redis
/// keys (or globs) it touched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The writer's id ([`Lease::id`](crate::Lease::id)): a reader skips
    /// its own entries.
    pub writer: String,
    /// The kind of mutation.
    pub op: Op,
    /// Redis keys of the layout, or Redis globs over them when
    /// [`Op::globs`].
    pub targets: Vec<String>,
}

/// The log of one prefix, shard 0: its keys and the commands on it.
///
/// ```
/// use edgecache::{Layout, Log};
/// let log = Log::new(&Layout::new("app").unwrap());
/// assert_eq!(log.stream_key(), "app:c:{app:0}:log");
/// assert_eq!(log.epoch_key(), "app:c:{app:0}:epoch");
/// // Not a key of the cache: `clear()` never deletes the log.
/// assert_eq!(Layout::new("app").unwrap().parse(log.stream_key()), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log {
    layout: Layout,
    stream: String,
    epoch: String,
    channel: String,
}

/// Whether `id` may name a writer: 16 to 64 of `A-Z a-z 0-9 _ -`.
pub(crate) fn valid_writer_id(id: &str) -> bool {
    (16..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Log {
    /// The log of `layout`'s prefix.
    pub fn new(layout: &Layout) -> Self {
        Self::shard(layout, 0)
    }

    /// Shard `n` of the log. Only shard 0 is used in this version; the
    /// number is in the format so that a sharded log (a Redis Cluster, where
    /// one stream is one hot slot) keeps the same key shape.
    fn shard(layout: &Layout, n: u32) -> Self {
        let p = layout.prefix();
        // `{p:n}` is a Redis Cluster hash tag: the stream and its epoch
        // share a slot, so one pipeline reads both from one node.
        let base = format!("{p}:c:{{{p}:{n}}}:");
        Log {
            layout: layout.clone(),
            stream: format!("{base}log"),
            epoch: format!("{base}epoch"),
            channel: format!("{base}push"),
        }
    }

    /// The pub/sub channel that writers publish each entry on, for caches
    /// that hold a stream open (push): `<prefix>:c:{<prefix>:0}:push`.
    pub fn push_channel(&self) -> &str {
        &self.channel
    }

    /// The `PUBLISH` of an entry to [`Log::push_channel`], sent after the
    /// entry's `XADD` (in the same pipeline): the message is the JSON array
    /// `[writer, op, target...]`. Push only speeds invalidation up: a
    /// message lost (pub/sub keeps nothing) is still in the log, and one
    /// planted by whoever can publish can only drop entries from L1.
    ///
    /// ```
    /// use edgecache::{Layout, Log, Op};
    /// let log = Log::new(&Layout::new("app").unwrap());
    /// let c = log.publish("w0123456789abcdef", Op::Delete, &["app:v:r|k"]);
    /// assert_eq!(c.body(), r#"["PUBLISH","app:c:{app:0}:push","[\"w0123456789abcdef\",\"del\",\"app:v:r|k\"]"]"#);
    /// ```
    pub fn publish(&self, writer: &str, op: Op, targets: &[&str]) -> Command {
        let mut message = String::from("[");
        crate::rest::push_json_string(&mut message, writer);
        message.push(',');
        crate::rest::push_json_string(&mut message, op.name());
        for t in targets {
            message.push(',');
            crate::rest::push_json_string(&mut message, t);
        }
        message.push(']');
        Command::new()
            .s("PUBLISH")
            .s(self.channel.as_str())
            .s(message)
    }

    /// The Redis key of the stream.
    pub fn stream_key(&self) -> &str {
        &self.stream
    }

    /// The Redis key of the epoch (a string set once, `NX`, by a writer).
    pub fn epoch_key(&self) -> &str {
        &self.epoch
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Whether `target` may be named by an entry of `op`: a key of an
    /// entry of the layout, a glob over the layout's keys (it starts with
    /// the prefix, `:`, and `[vn]:`, as [`Layout::pattern`] and
    /// [`Layout::everything`] write them), or for [`Op::Tag`] the key of a
    /// tag's version (and nothing else).
    fn check_target(&self, op: Op, target: &str) -> bool {
        if op.globs() {
            target
                .strip_prefix(self.layout.prefix())
                .and_then(|t| t.strip_prefix(":[vn]:"))
                .is_some()
        } else if op == Op::Tag {
            self.layout
                .parse_tag(target)
                .is_some_and(|(_, tag)| crate::tags::check_tag(tag).is_ok())
        } else {
            self.layout.parse(target).is_some()
        }
    }

    /// The commands a writer appends to its mutation's pipeline, after the
    /// mutation: `SET <epoch> <candidate> NX` (the first write after a
    /// flush names the new epoch; `candidate` must never have been used
    /// before, see [`Lease::append`](crate::Lease::append)), then one
    /// `XADD <stream> MAXLEN ~ 10000 * w <writer> op <op> 0 <t0> 1 <t1> ...`
    /// per [`MAX_TARGETS`] targets.
    ///
    /// `INVALID_OPTION` if there is no target, a key is not of the layout
    /// (or a glob not over it), or the writer id is not 16 to 64 of
    /// `A-Z a-z 0-9 _ -`.
    ///
    /// ```
    /// use edgecache::{Layout, Log, Op};
    /// let log = Log::new(&Layout::new("app").unwrap());
    /// let cmds = log.append("w0123456789abcdef", "w0123456789abcdef.1", Op::Delete, &["app:v:r|k"]).unwrap();
    /// assert_eq!(cmds[0].body(), r#"["SET","app:c:{app:0}:epoch","w0123456789abcdef.1","NX"]"#);
    /// assert_eq!(cmds[1].body(), r#"["XADD","app:c:{app:0}:log","MAXLEN","~",10000,"*","w","w0123456789abcdef","op","del","0","app:v:r|k"]"#);
    /// ```
    pub fn append(
        &self,
        writer: &str,
        epoch_candidate: &str,
        op: Op,
        targets: &[&str],
    ) -> Result<Vec<Command>> {
        let bad = |reason: String| Error::InvalidOption {
            name: "targets",
            reason,
        };
        if !valid_writer_id(writer) {
            return Err(Error::InvalidOption {
                name: "writer",
                reason: format!("{writer:?} must be 16 to 64 of A-Z a-z 0-9 _ - (random)"),
            });
        }
        if targets.is_empty() {
            return Err(bad("a log entry needs at least one key or glob".into()));
        }
        if let Some(t) = targets.iter().find(|t| !self.check_target(op, t)) {
            let what = if op.globs() {
                "a glob over"
            } else {
                "a Redis key of"
            };
            return Err(bad(format!(
                "{t:?} is not {what} the layout of prefix {:?}",
                self.layout.prefix()
            )));
        }
        let mut out = vec![Command::new()
            .s("SET")
            .s(self.epoch.as_str())
            .s(epoch_candidate)
            .s("NX")];
        for chunk in targets.chunks(MAX_TARGETS) {
            let mut c = Command::new()
                .s("XADD")
                .s(self.stream.as_str())
                .s("MAXLEN")
                .s("~")
                .n(i64::from(LOG_MAXLEN))
                .s("*")
                .s("w")
                .s(writer)
                .s("op")
                .s(op.name());
            for (i, t) in chunk.iter().enumerate() {
                c = c.s(i.to_string()).s(*t);
            }
            out.push(c);
        }
        Ok(out)
    }

    /// The commands of a log read: `GET <epoch>`, then
    /// `XREVRANGE <stream> + <from> COUNT <batch + 1>` (the entries from the
    /// newest down to `from`, `from` included, so the reader sees whether
    /// its position is still there), or, with no position,
    /// `XREVRANGE <stream> + - COUNT 1` (the newest entry only), then
    /// `GET <epoch>` again. Other clients' commands may run between them;
    /// an epoch is never named twice, so when both `GET`s agree no flush
    /// came between them and the range is of that epoch's stream.
    ///
    /// ```
    /// use edgecache::{Layout, Log, StreamId};
    /// let log = Log::new(&Layout::new("app").unwrap());
    /// let from = StreamId { ms: 5, seq: 1 };
    /// let cmds = log.read(Some(from), 500);
    /// assert_eq!(cmds[0].body(), r#"["GET","app:c:{app:0}:epoch"]"#);
    /// assert_eq!(cmds[1].body(), r#"["XREVRANGE","app:c:{app:0}:log","+","5-1","COUNT",501]"#);
    /// assert_eq!(cmds[2], cmds[0]);
    /// assert_eq!(log.read(None, 500)[1].body(), r#"["XREVRANGE","app:c:{app:0}:log","+","-","COUNT",1]"#);
    /// ```
    pub fn read(&self, from: Option<StreamId>, batch: u32) -> Vec<Command> {
        let get = Command::new().s("GET").s(self.epoch.as_str());
        let range = Command::new().s("XREVRANGE").s(self.stream.as_str()).s("+");
        let range = match from {
            Some(id) => range.s(id.to_string()).s("COUNT").n(i64::from(batch) + 1),
            None => range.s("-").s("COUNT").n(1),
        };
        vec![get.clone(), range, get]
    }

    /// Reads an entry's fields (as `XREVRANGE` gives them: names and
    /// values in turn). `L2_PROTOCOL` unless they are exactly what
    /// [`Log::append`] writes: `w`, a writer id, `op`, a known kind, then
    /// `0`, `1`, ... each with a target of this layout (at most
    /// [`MAX_TARGETS`]).
    ///
    /// ```
    /// use edgecache::{Layout, Log, Op};
    /// let log = Log::new(&Layout::new("app").unwrap());
    /// let f = |s: &[&str]| s.iter().map(|x| x.as_bytes().to_vec()).collect::<Vec<_>>();
    /// let e = log.decode_entry(&f(&["w", "w0123456789abcdef", "op", "set", "0", "app:v:r|k"])).unwrap();
    /// assert_eq!((e.op, e.targets), (Op::Set, vec!["app:v:r|k".to_string()]));
    /// let foreign = log.decode_entry(&f(&["w", "w0123456789abcdef", "op", "set", "0", "other:v:r|k"]));
    /// assert_eq!(foreign.unwrap_err().code(), "L2_PROTOCOL");
    /// ```
    pub fn decode_entry(&self, fields: &[Vec<u8>]) -> Result<Entry> {
        let bad = |why: &str| protocol(format!("coherence log entry: {why}"));
        let text = |b: &[u8]| {
            std::str::from_utf8(b)
                .map(str::to_owned)
                .map_err(|_| bad("a field is not UTF-8"))
        };
        let (head, rest) = match fields {
            [w, writer, o, op, rest @ ..] if w == b"w" && o == b"op" => ((writer, op), rest),
            _ => return Err(bad("it must start with `w <writer> op <op>`")),
        };
        let writer = text(head.0)?;
        if !valid_writer_id(&writer) {
            return Err(bad("the writer id is malformed"));
        }
        let op = Op::from_name(head.1).ok_or_else(|| bad("unknown op"))?;
        if rest.is_empty() || rest.len() % 2 != 0 || rest.len() / 2 > MAX_TARGETS {
            return Err(bad("it needs 1 to 64 targets, each named 0, 1, ..."));
        }
        let mut targets = Vec::with_capacity(rest.len() / 2);
        for (i, pair) in rest.chunks(2).enumerate() {
            if pair[0] != i.to_string().as_bytes() {
                return Err(bad("targets must be named 0, 1, ... in order"));
            }
            let t = text(&pair[1])?;
            if !self.check_target(op, &t) {
                return Err(bad("a target is not of this cache's layout"));
            }
            targets.push(t);
        }
        Ok(Entry {
            writer,
            op,
            targets,
        })
    }
}

/// A raw stream entry: its id and its fields, names and values in turn.
pub type RawEntry = (StreamId, Vec<Vec<u8>>);

/// Decodes an `XREVRANGE` (or `XRANGE`) reply: `[[id, [f, v, ...]], ...]`.
/// `L2_PROTOCOL` for anything else: not an array, an entry of another
/// shape, a malformed id, an odd number of fields, a field that is not a
/// string. The entries' contents are read by [`Log::decode_entry`].
///
/// ```
/// use edgecache::{decode_range, Reply, StreamId};
/// let b = |s: &str| Reply::Bytes(s.as_bytes().to_vec());
/// let reply = Reply::Array(vec![Reply::Array(vec![b("7-0"), Reply::Array(vec![b("w"), b("x")])])]);
/// assert_eq!(decode_range(&reply).unwrap(), vec![(StreamId { ms: 7, seq: 0 }, vec![b"w".to_vec(), b"x".to_vec()])]);
/// assert_eq!(decode_range(&b("7-0")).unwrap_err().code(), "L2_PROTOCOL");
/// ```
pub fn decode_range(reply: &Reply) -> Result<Vec<RawEntry>> {
    let Reply::Array(items) = reply else {
        return Err(protocol("a stream range must be an array"));
    };
    items
        .iter()
        .map(|item| {
            let Reply::Array(pair) = item else {
                return Err(protocol("a stream entry must be [id, fields]"));
            };
            let [id, Reply::Array(fields)] = pair.as_slice() else {
                return Err(protocol("a stream entry must be [id, fields]"));
            };
            let id: StreamId = id
                .as_str()
                .ok_or_else(|| protocol("a stream entry id must be a string"))?
                .parse()?;
            if fields.len() % 2 != 0 {
                return Err(protocol("a stream entry has an odd number of fields"));
            }
            let fields = fields
                .iter()
                .map(|f| match f {
                    Reply::Bytes(b) => Ok(b.clone()),
                    _ => Err(protocol("a stream entry field must be a string")),
                })
                .collect::<Result<_>>()?;
            Ok((id, fields))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> Log {
        Log::new(&Layout::new("app").unwrap())
    }

    const W: &str = "w0123456789abcdef";

    #[test]
    fn ids_are_strict() {
        for bad in [
            "", "-", "1", "1-", "-1", "a-1", "1-a", "01-1", "1-01", "+1-0", "1 -0", "1-0-0",
        ] {
            assert!(bad.parse::<StreamId>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "18446744073709551615-0".parse::<StreamId>().unwrap().ms,
            u64::MAX
        );
        assert!("18446744073709551616-0".parse::<StreamId>().is_err());
        assert_eq!("0-0".parse::<StreamId>().unwrap(), StreamId::ZERO);
    }

    #[test]
    fn the_log_is_not_a_key_of_the_cache() {
        let l = Layout::new("app").unwrap();
        let g = crate::Glob::new(&l.everything());
        for k in [log().stream_key(), log().epoch_key()] {
            assert_eq!(l.parse(k), None);
            assert!(!g.matches(k));
            assert!(!crate::Glob::new(&l.pattern(None, "*")).matches(k));
        }
    }

    #[test]
    fn appends_split_at_max_targets() {
        let keys: Vec<String> = (0..130).map(|i| format!("app:v:r|k{i}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let cmds = log().append(W, "e", Op::Set, &refs).unwrap();
        assert_eq!(cmds.len(), 1 + 3);
        // Each XADD decodes back to its share of the keys.
        let mut back = Vec::new();
        for c in &cmds[1..] {
            let args: Vec<Vec<u8>> = c.args()[10..]
                .iter()
                .map(|a| match a {
                    Arg::Str(s) => s.as_bytes().to_vec(),
                    Arg::Int(_) => unreachable!(),
                })
                .collect();
            let mut fields = vec![b"w".to_vec(), W.as_bytes().to_vec()];
            fields.extend([b"op".to_vec(), b"set".to_vec()]);
            fields.extend(args);
            back.extend(log().decode_entry(&fields).unwrap().targets);
        }
        assert_eq!(back, keys);
    }

    #[test]
    fn appends_refuse_what_the_log_cannot_carry() {
        let l = log();
        let code = |r: Result<Vec<Command>>| r.unwrap_err().code();
        assert_eq!(code(l.append(W, "e", Op::Set, &[])), "INVALID_OPTION");
        assert_eq!(
            code(l.append(W, "e", Op::Set, &["other:v:r|k"])),
            "INVALID_OPTION"
        );
        assert_eq!(
            code(l.append(W, "e", Op::Set, &["app:[vn]:r|*"])),
            "INVALID_OPTION"
        );
        assert_eq!(
            code(l.append(W, "e", Op::Pattern, &["app:v:r|k"])),
            "INVALID_OPTION"
        );
        assert_eq!(
            code(l.append("short", "e", Op::Set, &["app:v:r|k"])),
            "INVALID_OPTION"
        );
        assert!(l.append(W, "e", Op::Clear, &["app:[vn]:[rtub]*"]).is_ok());
    }

    #[test]
    fn entries_are_decoded_strictly() {
        let f = |s: &[&str]| s.iter().map(|x| x.as_bytes().to_vec()).collect::<Vec<_>>();
        let l = log();
        for bad in [
            &["w", W, "op", "set"][..],
            &["w", W, "op", "set", "0"],
            &["w", W, "op", "nope", "0", "app:v:r|k"],
            &["op", "set", "w", W, "0", "app:v:r|k"],
            &["w", "bad id", "op", "set", "0", "app:v:r|k"],
            &["w", W, "op", "set", "1", "app:v:r|k"],
            &["w", W, "op", "set", "0", "app:v:r|k", "0", "app:v:r|j"],
            &["w", W, "op", "pat", "0", "app:v:r|k"],
            &["w", W, "op", "set", "0", "app:[vn]:r|*"],
            &["w", W, "op", "set", "0", "app:c:{app:0}:log"],
        ] {
            assert_eq!(
                l.decode_entry(&f(bad)).unwrap_err().code(),
                "L2_PROTOCOL",
                "{bad:?}"
            );
        }
        let mut not_utf8 = f(&["w", W, "op", "set", "0", "app:v:r|k"]);
        not_utf8[5] = b"app:v:r|\xff".to_vec();
        assert!(l.decode_entry(&not_utf8).is_err());
        let too_many: Vec<String> = (0..=MAX_TARGETS)
            .flat_map(|i| [i.to_string(), "app:v:r|k".into()])
            .collect();
        let mut fields = f(&["w", W, "op", "set"]);
        fields.extend(too_many.iter().map(|s| s.as_bytes().to_vec()));
        assert!(l.decode_entry(&fields).is_err());
    }

    #[test]
    fn tag_entries_name_tag_keys_only() {
        let f = |s: &[&str]| s.iter().map(|x| x.as_bytes().to_vec()).collect::<Vec<_>>();
        let l = log();
        let tags = ["app:g:r|product:7", "app:g:t4:acme|Zoë"];
        let cmds = l.append(W, "e", Op::Tag, &tags).unwrap();
        assert_eq!(
            cmds[1].body(),
            format!(
                r#"["XADD","app:c:{{app:0}}:log","MAXLEN","~",10000,"*","w","{W}","op","tag","0","app:g:r|product:7","1","app:g:t4:acme|Zoë"]"#
            )
        );
        let e = l
            .decode_entry(&f(&["w", W, "op", "tag", "0", tags[0], "1", tags[1]]))
            .unwrap();
        assert_eq!(
            (e.op, e.targets),
            (Op::Tag, tags.map(String::from).to_vec())
        );
        assert!(!Op::Tag.globs());
        // A tag entry names tags' keys, nothing else; no other entry names them.
        for bad in [
            &["w", W, "op", "tag", "0", "app:v:r|k"][..],
            &["w", W, "op", "tag", "0", "app:n:r|k"],
            &["w", W, "op", "tag", "0", "app:[vn]:r|*"],
            &["w", W, "op", "tag", "0", "other:g:r|k"],
            &["w", W, "op", "tag", "0", "app:g:r|"],
            &["w", W, "op", "tag", "0", "app:g:r|a,b"],
            &["w", W, "op", "tag", "0", "app:g:x|k"],
            &["w", W, "op", "set", "0", "app:g:r|k"],
            &["w", W, "op", "del", "0", "app:g:r|k"],
            &["w", W, "op", "incr", "0", "app:g:r|k"],
        ] {
            assert_eq!(
                l.decode_entry(&f(bad)).unwrap_err().code(),
                "L2_PROTOCOL",
                "{bad:?}"
            );
        }
        let code = |r: Result<Vec<Command>>| r.unwrap_err().code();
        assert_eq!(
            code(l.append(W, "e", Op::Tag, &["app:v:r|k"])),
            "INVALID_OPTION"
        );
        assert_eq!(
            code(l.append(W, "e", Op::Delete, &["app:g:r|k"])),
            "INVALID_OPTION"
        );
    }

    #[test]
    fn ranges_are_decoded_strictly() {
        let b = |s: &str| Reply::Bytes(s.as_bytes().to_vec());
        let entry = |id: &str, f: Vec<Reply>| Reply::Array(vec![b(id), Reply::Array(f)]);
        assert_eq!(decode_range(&Reply::Array(vec![])).unwrap(), vec![]);
        for bad in [
            Reply::Nil,
            Reply::Array(vec![b("1-0")]),
            Reply::Array(vec![Reply::Array(vec![b("1-0")])]),
            Reply::Array(vec![entry("x", vec![])]),
            Reply::Array(vec![entry("1-0", vec![b("w")])]),
            Reply::Array(vec![entry("1-0", vec![b("w"), Reply::Int(1)])]),
            Reply::Array(vec![Reply::Array(vec![
                Reply::Int(1),
                Reply::Array(vec![]),
            ])]),
            Reply::Array(vec![Reply::Array(vec![b("1-0"), Reply::Nil])]),
        ] {
            assert_eq!(
                decode_range(&bad).unwrap_err().code(),
                "L2_PROTOCOL",
                "{bad:?}"
            );
        }
    }
}
