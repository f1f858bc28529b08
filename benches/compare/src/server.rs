//! The loopback replay server: std threads + synchronous tungstenite for the
//! handshake and for reading, precomputed frames written straight to the
//! socket (so the server costs one `write_all`, not the client's time).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use tungstenite::Message;

use crate::mixes::{Replay, ACK};

type Shared<T> = Arc<Mutex<T>>;

pub struct Server {
    pub port: u16,
    replay: Shared<Option<Arc<Replay>>>,
    queries: Shared<Vec<String>>,
}

impl Server {
    pub fn start() -> std::io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let replay: Shared<Option<Arc<Replay>>> = Arc::default();
        let queries: Shared<Vec<String>> = Arc::default();
        let (accept_replay, accept_queries) = (Arc::clone(&replay), Arc::clone(&queries));
        thread::Builder::new().name("replay-accept".into()).spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(replay) = accept_replay.lock().unwrap().clone() else { continue };
                let queries = Arc::clone(&accept_queries);
                let _ = thread::Builder::new().name("replay-conn".into()).spawn(move || {
                    let _ = serve(stream, &replay, &queries);
                });
            }
        })?;
        Ok(Server { port, replay, queries })
    }

    /// What the next connections get.
    pub fn set(&self, replay: Option<Arc<Replay>>) {
        *self.replay.lock().unwrap() = replay;
    }

    /// Query strings of the connections since the last call.
    pub fn take_queries(&self) -> Vec<String> {
        std::mem::take(&mut *self.queries.lock().unwrap())
    }
}

fn op_is(text: &str, op: &str) -> bool {
    // `"op":1` must not match `"op":11`.
    text.match_indices(r#""op":"#).any(|(at, m)| {
        let rest = &text[at + m.len()..];
        rest.starts_with(op) && !rest[op.len()..].starts_with(|c: char| c.is_ascii_digit())
    })
}

#[allow(clippy::result_large_err)] // tungstenite's error type
fn serve(stream: TcpStream, replay: &Replay, queries: &Mutex<Vec<String>>) -> tungstenite::Result<()> {
    let (mut ws, query) = crate::wire::accept(stream)?;
    queries.lock().unwrap().push(query);

    ws.get_mut().write_all(&replay.hello)?;
    loop {
        if let Message::Text(text) = ws.read()? {
            if op_is(&text, "2") {
                break;
            }
        }
    }
    // READY and the whole mix, as fast as the socket takes it.
    ws.get_mut().write_all(&replay.bulk)?;
    // Keep the connection open until the client goes away; answer heartbeats.
    let mut acks = replay.acks.iter();
    loop {
        if let Message::Text(text) = ws.read()? {
            if op_is(&text, "1") {
                if replay.codec.compressed() {
                    // Precompressed ACKs continue the connection's zlib stream / zstd frame.
                    let Some(ack) = acks.next() else { continue };
                    ws.get_mut().write_all(ack)?;
                } else {
                    ws.send(Message::text(ACK))?;
                }
            }
        }
    }
}
