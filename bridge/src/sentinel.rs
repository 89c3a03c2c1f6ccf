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
use std::time::Duration;
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
}

impl Sentinel {
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
                    if i > 0 {
                        let mut h = self.hosts.lock().expect("never poisoned");
                        if let Some(at) = h.iter().position(|x| x.0 == *host && x.1 == *port) {
                            let first = h.remove(at);
                            h.insert(0, first);
                        }
                    }
                    return Ok(addr);
                }
                Ok(Err(e)) => why.push(format!("{host}:{port}: {e}")),
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
        if let Some(p) = &self.password {
            match &self.username {
                Some(u) => encode(
                    &mut cmd,
                    [b"AUTH".as_slice(), u.as_bytes(), p.as_bytes()].into_iter(),
                ),
                None => encode(&mut cmd, [b"AUTH".as_slice(), p.as_bytes()].into_iter()),
            }
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

    fn bulk(s: &str) -> Resp2Frame {
        Resp2Frame::BulkString(Bytes::copy_from_slice(s.as_bytes()))
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
    }
}
