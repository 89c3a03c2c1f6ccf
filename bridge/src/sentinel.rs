//! Redis Sentinel: which server is the master now.
//!
//! A `redis-sentinel://` URL names sentinels, not the server; at every
//! (re)connection `crate::direct` asks them for the master's address
//! (`SENTINEL get-master-addr-by-name <service>`), in turn until one
//! knows it, the one that answered first next time, as Redis's guideline
//! for sentinel clients says. Then it connects there and checks `ROLE`
//! says `master` (a replica being promoted, or a master Sentinel has not
//! demoted yet, is not used). A connection whose server turns out to be a
//! replica (a `READONLY` reply) is dropped, and the sentinels are asked
//! again; a failover's reconfiguration also closes the clients of the
//! servers it changes (`CLIENT KILL TYPE normal`), which has the same
//! effect. Nothing is ever sent twice: a request in flight on a dropped
//! connection has an unknown outcome, as on one server.

use crate::direct::encode;
use bytes::BytesMut;
use redis_protocol::resp2::types::BytesFrame as Resp2Frame;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::ClientConfig;

/// How long one sentinel has to answer before the next is asked.
pub const ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// The sentinels of one service, and how to talk to them.
#[derive(Debug)]
pub struct Sentinel {
    /// The sentinels, the one that last answered first.
    hosts: Mutex<Vec<(String, u16)>>,
    /// The master's name in the sentinels' configuration
    /// (`sentinelServiceName`).
    pub service: String,
    /// The sentinels' own credentials (`sentinelUsername`,
    /// `sentinelPassword`); none: no AUTH.
    pub username: Option<String>,
    pub password: Option<String>,
    /// A master a sentinel started replacing, and since when: not used
    /// while the sentinels still name it (see [`Sentinel::moved`]).
    leaving: Mutex<Option<((String, u16), Instant)>>,
}

impl Sentinel {
    /// Appends `AUTH` with the sentinels' own credentials, if any; true
    /// when it did (one more reply to read).
    fn auth(&self, cmd: &mut BytesMut) -> bool {
        let Some(p) = &self.password else {
            return false;
        };
        match &self.username {
            Some(u) => encode(
                cmd,
                [b"AUTH".as_slice(), u.as_bytes(), p.as_bytes()].into_iter(),
            ),
            None => encode(cmd, [b"AUTH".as_slice(), p.as_bytes()].into_iter()),
        }
        true
    }

    pub fn new(
        hosts: Vec<(String, u16)>,
        service: String,
        username: Option<String>,
        password: Option<String>,
    ) -> Sentinel {
        Sentinel {
            hosts: Mutex::new(hosts),
            service,
            username,
            password,
            leaving: Mutex::new(None),
        }
    }

    /// How many sentinels there are.
    pub fn count(&self) -> usize {
        self.hosts.lock().expect("never poisoned").len()
    }

    /// The master's address, from the first sentinel that knows it.
    pub async fn master(&self, tls: Option<&Arc<ClientConfig>>) -> Result<(String, u16), String> {
        let hosts = self.hosts.lock().expect("never poisoned").clone();
        let mut why = Vec::new();
        for (i, (host, port)) in hosts.iter().enumerate() {
            let asked = tokio::time::timeout(ASK_TIMEOUT, self.ask(host, *port, tls)).await;
            match asked {
                Ok(Ok(addr)) => {
                    let mut leaving = self.leaving.lock().expect("never poisoned");
                    match leaving.as_ref() {
                        Some((old, since)) if *old == addr && since.elapsed() < LEAVING_HOLD => {
                            return Err(format!(
                                "Sentinel is replacing the master {}:{}; waiting for the new one",
                                addr.0, addr.1
                            ));
                        }
                        Some(_) => *leaving = None,
                        None => {}
                    }
                    drop(leaving);
                    if i > 0 {
                        let mut h = self.hosts.lock().expect("never poisoned");
                        if let Some(at) = h.iter().position(|x| x.0 == *host && x.1 == *port) {
                            let first = h.remove(at);
                            h.insert(0, first);
                        }
                    }
                    return Ok(addr);
                }
                Ok(Err(e)) => {
                    let at = format!("{host}:{port}");
                    why.push(if e.starts_with(&at) {
                        e
                    } else {
                        format!("{at}: {e}")
                    });
                }
                Err(_) => why.push(format!("{host}:{port}: no answer in time")),
            }
        }
        Err(format!(
            "no sentinel knows the master of '{}' ({})",
            self.service,
            why.join("; ")
        ))
    }

    async fn ask(
        &self,
        host: &str,
        port: u16,
        tls: Option<&Arc<ClientConfig>>,
    ) -> Result<(String, u16), String> {
        let mut s = crate::tls::open(host, port, tls).await?;
        let mut cmd = BytesMut::new();
        let mut n = 1;
        if self.auth(&mut cmd) {
            n += 1;
        }
        encode(
            &mut cmd,
            [
                b"SENTINEL".as_slice(),
                b"get-master-addr-by-name",
                self.service.as_bytes(),
            ]
            .into_iter(),
        );
        s.write_all(&cmd).await.map_err(|e| e.to_string())?;
        let mut buf = BytesMut::with_capacity(256);
        let mut replies = Vec::new();
        while replies.len() < n {
            match redis_protocol::resp2::decode::decode_bytes_mut(&mut buf) {
                Ok(Some((f, _, _))) => replies.push(f),
                Ok(None) => {
                    if s.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                        return Err("closed by the sentinel".into());
                    }
                }
                Err(e) => return Err(format!("bad reply: {e}")),
            }
        }
        let _ = s.shutdown().await;
        let addr = replies.pop().expect("n replies");
        if let Some(auth) = replies.pop() {
            if !matches!(auth, Resp2Frame::SimpleString(_)) {
                return Err(format!("AUTH refused: {}", text(&auth)));
            }
        }
        master_addr(addr, &self.service)
    }
}

impl Sentinel {
    /// Resolves when the connection to the master at `at` must end: the
    /// sentinels name another master (at once if they already do), or one
    /// of them starts promoting a replica of it (`at` is then not used
    /// again until they name another master, or the failover is aborted,
    /// or [`LEAVING_HOLD`] passed). Every sentinel is listened to, since
    /// only the one leading a failover tells its steps. Why: a master that
    /// Sentinel replaces keeps taking writes until Sentinel reconfigures
    /// it, seconds later, and those writes are lost.
    pub async fn moved(&self, at: (String, u16), tls: Option<Arc<ClientConfig>>) -> String {
        let hosts = self.hosts.lock().expect("never poisoned").clone();
        let watchers = hosts.into_iter().map(|(host, port)| {
            let (at, tls) = (&at, tls.as_ref());
            Box::pin(async move {
                loop {
                    match self.watch(&host, port, at, tls).await {
                        Ok(why) => return why,
                        Err(e) => {
                            tracing::debug!(error = %e, sentinel = %format!("{host}:{port}"), "watching the sentinel failed");
                            tokio::time::sleep(ASK_TIMEOUT).await;
                        }
                    }
                }
            })
        });
        futures::future::select_all(watchers).await.0
    }

    /// Subscribes to a sentinel's failover events, then checks the master
    /// is still `at` (a switch before the subscription), then waits.
    /// `Ok`: the connection to `at` must end; `Err`: this sentinel failed.
    async fn watch(
        &self,
        host: &str,
        port: u16,
        at: &(String, u16),
        tls: Option<&Arc<ClientConfig>>,
    ) -> Result<String, String> {
        let mut s = tokio::time::timeout(ASK_TIMEOUT, crate::tls::open(host, port, tls))
            .await
            .map_err(|_| "no answer in time".to_string())??;
        let mut cmd = BytesMut::new();
        self.auth(&mut cmd);
        let mut sub = vec![b"SUBSCRIBE".as_slice()];
        sub.extend(CHANNELS.iter().map(|c| c.as_bytes()));
        encode(&mut cmd, sub.into_iter());
        s.write_all(&cmd).await.map_err(|e| e.to_string())?;
        let mut buf = BytesMut::with_capacity(1024);
        let mut confirmed = 0;
        loop {
            match redis_protocol::resp2::decode::decode_bytes_mut(&mut buf) {
                Ok(Some((f, _, _))) => match f {
                    Resp2Frame::SimpleString(_) => {}
                    Resp2Frame::Error(e) => return Err(e.to_string()),
                    Resp2Frame::Array(parts) => {
                        match event(&parts, &self.service) {
                            Some(Event::Switched(to)) if to != *at => {
                                return Ok(format!(
                                    "Sentinel switched the master to {}:{}",
                                    to.0, to.1
                                ));
                            }
                            Some(Event::Promoting { master }) if master == *at => {
                                *self.leaving.lock().expect("never poisoned") =
                                    Some((master, Instant::now()));
                                return Ok(format!(
                                    "Sentinel is promoting a replica of {}:{}",
                                    at.0, at.1
                                ));
                            }
                            Some(Event::Aborted) => {
                                *self.leaving.lock().expect("never poisoned") = None;
                            }
                            _ => {}
                        }
                        // Every subscription confirmed: now no event can
                        // be missed; was there a switch before?
                        if matches!(parts.first(), Some(Resp2Frame::BulkString(k)) if k.eq_ignore_ascii_case(b"subscribe"))
                        {
                            confirmed += 1;
                            if confirmed == CHANNELS.len() {
                                let now = self.ask(host, port, tls).await?;
                                if now != *at {
                                    return Ok(format!(
                                        "Sentinel names another master: {}:{}",
                                        now.0, now.1
                                    ));
                                }
                            }
                        }
                    }
                    _ => {}
                },
                Ok(None) => {
                    if s.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                        return Err("closed by the sentinel".into());
                    }
                }
                Err(e) => return Err(format!("bad reply: {e}")),
            }
        }
    }
}

/// The sentinel events the bridge follows.
const CHANNELS: [&str; 5] = [
    "+switch-master",
    "+failover-state-send-slaveof-noone",
    "-failover-abort-not-elected",
    "-failover-abort-slave-timeout",
    "-failover-abort-no-good-slave",
];

/// How long a master Sentinel started replacing is not used, at most,
/// while the sentinels still name it.
pub const LEAVING_HOLD: Duration = Duration::from_secs(10);

/// A failover step of one master's.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// `+switch-master`: the new master's address.
    Switched((String, u16)),
    /// `+failover-state-send-slaveof-noone`: a replica of `master` is
    /// about to be promoted; `master` will be demoted.
    Promoting { master: (String, u16) },
    /// `-failover-abort-*`: the failover stopped; the master stays.
    Aborted,
}

/// A pub/sub message from a sentinel, if it is a failover step of
/// `service`'s. The messages are `<name> <old-ip> <old-port> <new-ip>
/// <new-port>` (`+switch-master`), `slave <ip>:<port> <ip> <port> @
/// <name> <master-ip> <master-port>` (the promotion) and `master <name>
/// <ip> <port>` (an abort).
pub fn event(parts: &[Resp2Frame], service: &str) -> Option<Event> {
    let [Resp2Frame::BulkString(kind), Resp2Frame::BulkString(channel), Resp2Frame::BulkString(msg)] =
        parts
    else {
        return None;
    };
    if !kind.eq_ignore_ascii_case(b"message") {
        return None;
    }
    let msg = std::str::from_utf8(msg).ok()?;
    let words: Vec<&str> = msg.split(' ').collect();
    let addr = |host: &str, port: &str| Some((host.to_string(), port.parse::<u16>().ok()?));
    match (channel.as_ref(), words.as_slice()) {
        (b"+switch-master", [name, _, _, host, port]) if *name == service => {
            addr(host, port).map(Event::Switched)
        }
        (b"+failover-state-send-slaveof-noone", [_, _, _, _, "@", name, host, port])
            if *name == service =>
        {
            addr(host, port).map(|master| Event::Promoting { master })
        }
        (c, ["master", name, ..]) if c.starts_with(b"-failover-abort") && *name == service => {
            Some(Event::Aborted)
        }
        _ => None,
    }
}

fn text(f: &Resp2Frame) -> String {
    match f {
        Resp2Frame::Error(e) => e.to_string(),
        Resp2Frame::SimpleString(b) | Resp2Frame::BulkString(b) => {
            String::from_utf8_lossy(b).into_owned()
        }
        other => format!("{other:?}"),
    }
}

/// `SENTINEL get-master-addr-by-name`'s reply: `[ip, port]`; a null when
/// the sentinel does not know the service.
pub fn master_addr(reply: Resp2Frame, service: &str) -> Result<(String, u16), String> {
    match reply {
        Resp2Frame::Array(parts) => match parts.as_slice() {
            [Resp2Frame::BulkString(host), Resp2Frame::BulkString(port)] => {
                let host = std::str::from_utf8(host)
                    .map_err(|_| "a master address that is not text".to_string())?;
                let port = std::str::from_utf8(port)
                    .ok()
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or_else(|| format!("a master port that is not a port: {port:?}"))?;
                if host.is_empty() {
                    return Err("an empty master address".into());
                }
                Ok((host.to_string(), port))
            }
            _ => Err(format!("unexpected reply: {parts:?}")),
        },
        Resp2Frame::Null => Err(format!("it does not know a master named '{service}'")),
        other => Err(text(&other)),
    }
}

/// `ROLE`'s reply says master: `["master", offset, replicas]`. `Err` says
/// what it says instead.
pub fn is_master(reply: &Resp2Frame) -> Result<(), String> {
    match reply {
        Resp2Frame::Array(parts) => match parts.first() {
            Some(Resp2Frame::BulkString(r)) if r.eq_ignore_ascii_case(b"master") => Ok(()),
            Some(Resp2Frame::BulkString(r)) => Err(String::from_utf8_lossy(r).into_owned()),
            _ => Err(format!("{parts:?}")),
        },
        other => Err(text(other)),
    }
}

/// Whether a reply says the server is a replica now (`READONLY You can't
/// write against a read only replica.`).
pub fn is_readonly(data: &[u8]) -> bool {
    data.len() >= 8 && data[..8].eq_ignore_ascii_case(b"READONLY")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn bulk(s: &str) -> Resp2Frame {
        Resp2Frame::BulkString(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// A fake sentinel answering one connection: reads a command, writes `reply`.
    async fn fake(reply: &'static [u8]) -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = BytesMut::new();
            while !buf.ends_with(b"mymaster\r\n") {
                assert!(s.read_buf(&mut buf).await.unwrap() > 0);
            }
            s.write_all(reply).await.unwrap();
            let _ = s.read_buf(&mut buf).await;
            buf.to_vec()
        });
        (port, task)
    }

    #[tokio::test]
    async fn the_sentinels_are_asked_in_turn_and_the_one_that_answered_first_next_time() {
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (unknown, t1) = fake(b"+OK\r\n*-1\r\n").await;
        let (knows, t2) = fake(b"+OK\r\n*2\r\n$9\r\n127.0.0.9\r\n$4\r\n6390\r\n").await;
        let local = |p| ("127.0.0.1".to_string(), p);
        let s = Sentinel::new(
            vec![local(dead), local(unknown), local(knows)],
            "mymaster".into(),
            None,
            Some("spw".into()),
        );
        assert_eq!(s.master(None).await, Ok(("127.0.0.9".to_string(), 6390)));
        let asked = t2.await.unwrap();
        assert!(
            asked.starts_with(b"*2\r\n$4\r\nAUTH\r\n$3\r\nspw\r\n*3\r\n$8\r\nSENTINEL\r\n"),
            "{:?}",
            String::from_utf8_lossy(&asked)
        );
        t1.await.unwrap();
        assert_eq!(
            s.hosts.lock().unwrap()[0],
            local(knows),
            "asked first next time"
        );

        // A master being replaced is not named while the sentinels still name it.
        let (again, _t3) = fake(b"*2\r\n$9\r\n127.0.0.9\r\n$4\r\n6390\r\n").await;
        let s = Sentinel::new(vec![local(again)], "mymaster".into(), None, None);
        *s.leaving.lock().unwrap() = Some((("127.0.0.9".to_string(), 6390), Instant::now()));
        let e = s.master(None).await.unwrap_err();
        assert!(e.contains("replacing the master 127.0.0.9:6390"), "{e}");

        // None knows it: the error says what each said.
        let (unknown, _t4) = fake(b"*-1\r\n").await;
        let s = Sentinel::new(
            vec![local(dead), local(unknown)],
            "mymaster".into(),
            None,
            None,
        );
        let e = s.master(None).await.unwrap_err();
        assert!(
            e.contains("no sentinel knows the master of 'mymaster'"),
            "{e}"
        );
        assert!(e.contains("does not know a master named"), "{e}");
    }

    #[test]
    fn sentinel_replies_are_read() {
        assert_eq!(
            master_addr(Resp2Frame::Array(vec![bulk("10.0.0.7"), bulk("6380")]), "m"),
            Ok(("10.0.0.7".to_string(), 6380))
        );
        assert_eq!(
            master_addr(Resp2Frame::Array(vec![bulk("::1"), bulk("6379")]), "m"),
            Ok(("::1".to_string(), 6379))
        );
        let e = master_addr(Resp2Frame::Null, "mymaster").unwrap_err();
        assert!(e.contains("'mymaster'"), "{e}");
        for bad in [
            Resp2Frame::Array(vec![bulk("h"), bulk("99999")]),
            Resp2Frame::Array(vec![bulk("h"), bulk("x")]),
            Resp2Frame::Array(vec![bulk(""), bulk("1")]),
            Resp2Frame::Array(vec![bulk("h")]),
            Resp2Frame::Array(vec![]),
            Resp2Frame::Integer(1),
        ] {
            assert!(master_addr(bad.clone(), "m").is_err(), "{bad:?}");
        }
        let e = master_addr(
            Resp2Frame::Error("NOAUTH Authentication required.".into()),
            "m",
        )
        .unwrap_err();
        assert!(e.starts_with("NOAUTH"), "{e}");

        let role = |r: &str| {
            Resp2Frame::Array(vec![
                bulk(r),
                Resp2Frame::Integer(0),
                Resp2Frame::Array(vec![]),
            ])
        };
        assert_eq!(is_master(&role("master")), Ok(()));
        assert_eq!(is_master(&role("slave")), Err("slave".into()));
        assert_eq!(is_master(&role("sentinel")), Err("sentinel".into()));
        assert!(is_master(&Resp2Frame::Error("ERR unknown command".into())).is_err());

        assert!(is_readonly(
            b"READONLY You can't write against a read only replica."
        ));
        assert!(!is_readonly(b"ERR READONLY"));
        assert!(!is_readonly(b"READ"));

        let msg = |kind: &str, channel: &str, m: &str| vec![bulk(kind), bulk(channel), bulk(m)];
        assert_eq!(
            event(
                &msg(
                    "message",
                    "+switch-master",
                    "mymaster 127.0.0.1 6379 10.0.0.2 6380"
                ),
                "mymaster"
            ),
            Some(Event::Switched(("10.0.0.2".to_string(), 6380)))
        );
        assert_eq!(
            event(
                &msg(
                    "message",
                    "+failover-state-send-slaveof-noone",
                    "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379"
                ),
                "mymaster"
            ),
            Some(Event::Promoting {
                master: ("127.0.0.1".to_string(), 6379)
            })
        );
        assert_eq!(
            event(
                &msg(
                    "message",
                    "-failover-abort-no-good-slave",
                    "master mymaster 127.0.0.1 6379"
                ),
                "mymaster"
            ),
            Some(Event::Aborted)
        );
        for other in [
            msg(
                "message",
                "+switch-master",
                "other 127.0.0.1 6379 10.0.0.2 6380",
            ),
            msg("message", "+switch-master", "mymaster 127.0.0.1 6379"),
            msg("message", "+switch-master", "mymaster 1 2 h notaport"),
            msg("message", "+sdown", "mymaster 127.0.0.1 6379 10.0.0.2 6380"),
            msg(
                "message",
                "+failover-state-send-slaveof-noone",
                "slave 127.0.0.1:6380 127.0.0.1 6380 @ other 127.0.0.1 6379",
            ),
            msg(
                "message",
                "-failover-abort-not-elected",
                "master other 127.0.0.1 6379",
            ),
            msg("subscribe", "+switch-master", "1"),
        ] {
            assert_eq!(event(&other, "mymaster"), None, "{other:?}");
        }
    }
}
