//! A throwaway redis-server for a Rust test: started on a free loopback
//! port, stopped when dropped. Shared through `#[path]` by the tests that
//! talk to a real Redis (`tests/glob_redis.rs`, `tests/coherence_redis.rs`,
//! `bridge/tests/command_table.rs`), so each keeps only its own reader of
//! replies. Not every test uses every item, hence the `allow(dead_code)`s.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running redis-server (no persistence), killed on drop.
pub struct RedisServer {
    child: Child,
    /// The loopback port it listens on.
    #[allow(dead_code)]
    pub port: u16,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisServer {
    /// Starts one on a free port; it and a connection to it, once it accepts.
    pub fn start() -> (RedisServer, TcpStream) {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = spawn(port);
        let server = RedisServer { child, port };
        let conn = connect(port);
        (server, conn)
    }

    /// Kills it and starts an empty one on the same port; a new connection.
    #[allow(dead_code)]
    pub fn restart(&mut self) -> TcpStream {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(self.port);
        connect(self.port)
    }
}

fn spawn(port: u16) -> Child {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server not found: run `make setup` (it installs Debian's redis-server)")
}

fn connect(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(e) if Instant::now() > deadline => panic!("redis-server did not start: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
