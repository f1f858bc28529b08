//! The heap bench's gateway: std threads + synchronous tungstenite, one
//! thread per connection (blocked in `read` while the client is idle).
//!
//! Hello on connect; Identify → READY (with `session_id`,
//! `resume_gateway_url` and the shard's unavailable guilds); heartbeat →
//! ACK; on [`Server::burst`], every identified connection gets the burst
//! at once (a thread per connection). zlib-stream or zstd-stream when the
//! client's query asks `compress=zlib-stream` / `compress=zstd-stream`,
//! text frames otherwise.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::Message;

use super::traffic::{self, Traffic};
use crate::compression::Codec;

/// One identified connection.
struct Conn {
    codec: Codec,
    /// A clone of the socket: READY, ACKs and the burst never interleave.
    writer: Mutex<TcpStream>,
}

#[derive(Default)]
struct State {
    identified: Mutex<Vec<Arc<Conn>>>,
    /// Connections that asked for each of `Codec::ALL`.
    queries: [AtomicUsize; 3],
    /// Connections that asked for a `compress=` this server does not know.
    unknown_queries: AtomicUsize,
    heartbeats: AtomicUsize,
}

pub struct Server {
    pub port: u16,
    shared: Arc<Shared>,
}

/// What one run's connections did.
pub struct Tally {
    /// Connections per compression they asked for, in `Codec::ALL` order.
    pub queries: [usize; 3],
    pub unknown_queries: usize,
    pub identified: usize,
    pub heartbeats: usize,
}

struct Shared {
    port: u16,
    /// Per `Codec::ALL`.
    traffic: [Traffic; 3],
    guilds: Vec<String>,
    state: State,
}

impl Server {
    /// Listens on 127.0.0.1 (an ephemeral port) and serves `burst`.
    pub fn start(burst: &[String]) -> std::io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            port,
            traffic: Codec::ALL.map(|codec| Traffic::new(burst, codec)),
            guilds: traffic::guild_ids(burst),
            state: State::default(),
        });
        eprintln!(
            "burst per shard: {} dispatches, {:.2} MB of JSON; as frames {}",
            burst.len(),
            burst.iter().map(String::len).sum::<usize>() as f64 / 1e6,
            shared
                .traffic
                .iter()
                .map(|traffic| format!("{:.2} MB {}", traffic.burst.len() as f64 / 1e6, traffic.codec.label()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let accept_shared = Arc::clone(&shared);
        thread::Builder::new().name("heap-accept".into()).spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accept_shared);
                let spawned = thread::Builder::new().name("heap-conn".into()).stack_size(256 * 1024).spawn(move || {
                    let _ = serve(stream, &shared);
                });
                if let Err(error) = spawned {
                    eprintln!("heap server: cannot spawn a connection thread: {error}");
                }
            }
        })?;
        Ok(Server { port, shared })
    }

    /// Sends the burst to every identified connection at once; returns how
    /// many got it once all were written.
    pub fn burst(&self) -> (usize, Duration) {
        let started = Instant::now();
        let conns: Vec<Arc<Conn>> = self.shared.state.identified.lock().unwrap().clone();
        let writers: Vec<_> = conns
            .into_iter()
            .map(|conn| {
                let burst = Arc::clone(&self.shared.traffic_of(conn.codec).burst);
                thread::Builder::new()
                    .name("heap-burst".into())
                    .stack_size(64 * 1024)
                    .spawn(move || conn.writer.lock().unwrap().write_all(&burst).is_ok())
                    .expect("burst thread")
            })
            .collect();
        let sent = writers.into_iter().map(|w| w.join()).filter(|done| matches!(done, Ok(true))).count();
        (sent, started.elapsed())
    }

    /// This run's tally; forgets its connections (their threads end when
    /// the client goes away).
    pub fn take_tally(&self) -> Tally {
        let state = &self.shared.state;
        let identified = std::mem::take(&mut *state.identified.lock().unwrap()).len();
        Tally {
            queries: [0, 1, 2].map(|i| state.queries[i].swap(0, Ordering::Relaxed)),
            unknown_queries: state.unknown_queries.swap(0, Ordering::Relaxed),
            identified,
            heartbeats: state.heartbeats.swap(0, Ordering::Relaxed),
        }
    }
}

impl Shared {
    fn traffic_of(&self, codec: Codec) -> &Traffic {
        &self.traffic[Codec::ALL.iter().position(|&c| c == codec).expect("a codec of Codec::ALL")]
    }
}

fn op_is(text: &str, op: &str) -> bool {
    // `"op":1` must not match `"op":11`.
    text.match_indices(r#""op":"#).any(|(at, m)| {
        let rest = &text[at + m.len()..];
        rest.starts_with(op) && !rest[op.len()..].starts_with(|c: char| c.is_ascii_digit())
    })
}

/// `[id, total]` of an Identify's `"shard"`.
fn shard_of(identify: &str) -> Option<(u32, u32)> {
    let at = identify.find(r#""shard":["#)? + 9;
    let mut parts = identify[at..].split(']').next()?.split(',');
    Some((parts.next()?.trim().parse().ok()?, parts.next()?.trim().parse().ok()?))
}

#[allow(clippy::result_large_err)] // tungstenite's error type
fn serve(stream: TcpStream, shared: &Shared) -> tungstenite::Result<()> {
    let (mut ws, query) = crate::wire::accept(stream)?;
    let Ok(codec) = Codec::asked_in(&query) else {
        shared.state.unknown_queries.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    };
    shared.state.queries[Codec::ALL.iter().position(|&c| c == codec).expect("a codec of Codec::ALL")]
        .fetch_add(1, Ordering::Relaxed);
    let traffic = shared.traffic_of(codec);
    let conn = Arc::new(Conn { codec, writer: Mutex::new(ws.get_ref().try_clone()?) });
    conn.writer.lock().unwrap().write_all(&traffic.hello)?;
    loop {
        let Message::Text(text) = ws.read()? else { continue };
        if op_is(&text, "2") {
            let (id, total) = shard_of(&text).unwrap_or((0, 1));
            let ready = traffic.ready(&traffic::ready(shared.port, id, total, &shared.guilds));
            conn.writer.lock().unwrap().write_all(&ready)?;
            shared.state.identified.lock().unwrap().push(Arc::clone(&conn));
        } else if op_is(&text, "1") {
            shared.state.heartbeats.fetch_add(1, Ordering::Relaxed);
            conn.writer.lock().unwrap().write_all(&traffic.ack)?;
        }
    }
}
