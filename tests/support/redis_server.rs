//! A throwaway redis-server for a Rust test: started on a free loopback
//! port, stopped when dropped. Shared through `#[path]` by the tests that
//! talk to a real Redis (`tests/glob_redis.rs`,
//! `bridge/tests/command_table.rs`), so each keeps only its own reader of
//! replies.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running redis-server (no persistence), killed on drop.
pub struct RedisServer {
    child: Child,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisServer {
    /// Starts one and returns it with a connection to it, once it accepts.
    pub fn start() -> (RedisServer, TcpStream) {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
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
            .expect("redis-server not found: run `make setup` (it installs Debian's redis-server)");
        let server = RedisServer { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => return (server, s),
                Err(e) if Instant::now() > deadline => panic!("redis-server did not start: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}
