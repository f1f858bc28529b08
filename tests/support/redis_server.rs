//! A `redis-server` on loopback for the Redis tests (identify queue,
//! session store). Without one on `PATH` the tests print one line saying how
//! to run them and pass; with `DGS_REQUIRE_REDIS=1` (which `.ci/run` sets) a
//! missing server fails them instead.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

/// A `redis-server` child process, killed on drop.
pub struct RedisServer {
    child: Child,
    /// The loopback port it listens on.
    pub port: u16,
}

impl RedisServer {
    /// Starts one on a free loopback port; `None` (skip) only when it is not
    /// installed and `DGS_REQUIRE_REDIS=1` is not set.
    pub fn start() -> Option<RedisServer> {
        // A free port can be taken by another test's server before ours
        // binds it; then ours exits and we try another port.
        let mut attempt = 0;
        let started = loop {
            let port = {
                let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
                listener.local_addr().expect("local address").port()
            };
            match RedisServer::start_on(port) {
                Err(error) if error.kind() == std::io::ErrorKind::AddrInUse && attempt < 5 => attempt += 1,
                other => break other,
            }
        };
        match started {
            Ok(server) => Some(server),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if std::env::var("DGS_REQUIRE_REDIS").as_deref() == Ok("1") {
                    panic!("redis-server is not installed and DGS_REQUIRE_REDIS=1: install it (`apt-get install -y redis-server`)")
                }
                // Straight to stderr: libtest captures `eprintln!` of passing tests.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: redis-server is not installed; `apt-get install -y redis-server` runs the Redis tests"
                );
                None
            }
            Err(error) => panic!("could not start redis-server: {error}"),
        }
    }

    pub fn start_on(port: u16) -> std::io::Result<RedisServer> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            // Whatever it might write (a SHUTDOWN snapshot), never into the checkout.
            .arg("--dir")
            .arg(std::env::temp_dir())
            .args(["--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut server = RedisServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if server.is_ours() {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                // Most likely another test's server took the port first.
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("redis-server on port {port} exited at start: {status}"),
                ));
            }
            assert!(Instant::now() < deadline, "redis-server on port {port} did not answer PING within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server answering on the port is this child (not another
    /// test's server that got the same port).
    fn is_ours(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) else {
            return false;
        };
        if stream.set_read_timeout(Some(Duration::from_secs(1))).is_err()
            || stream.write_all(b"INFO server\r\n").is_err()
        {
            return false;
        }
        let wanted = format!("process_id:{}\r\n", self.child.id());
        let mut reply = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut chunk) {
            reply.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&reply);
            if text.contains(&wanted) {
                return true;
            }
            if text.contains("process_id:") && text.contains("\r\n\r\n") {
                return false;
            }
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A fresh connection of its own (a separate TCP connection per call).
    pub async fn connection(&self) -> MultiplexedConnection {
        connect(&self.url()).await
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub async fn connect(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(url).expect("redis url");
    client.get_multiplexed_async_connection().await.expect("connect to redis-server")
}

#[allow(unused_macros)]
macro_rules! redis_server {
    () => {
        match $crate::support::redis_server::RedisServer::start() {
            Some(server) => server,
            None => return,
        }
    };
}
