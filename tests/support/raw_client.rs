//! A deliberately dumb synchronous gateway client for the simulator tests,
//! built on tungstenite + flate2 only (none of this crate's code).
#![allow(dead_code)]

use std::net::TcpStream;
use std::time::{Duration, Instant};

use flate2::{Decompress, FlushDecompress};
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

pub const WAIT: Duration = Duration::from_secs(5);
pub const QUIET: Duration = Duration::from_millis(300);
pub const TOKEN: &str = "test-token";
/// GUILDS | GUILD_MESSAGES.
pub const INTENTS: u64 = 1 | (1 << 9);

/// What the client saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// One complete payload (inflated when compressed).
    Payload(Value),
    /// A text frame that is not JSON.
    NotJson(String),
    /// A close frame with this code (`None`: no code).
    Close(Option<u16>),
    /// The stream ended without a close frame.
    Dropped,
    /// Nothing within the timeout.
    Timeout,
}

pub struct Client {
    pub ws: WebSocket<TcpStream>,
    inflate: Option<Decompress>,
    buf: Vec<u8>,
    /// Every WebSocket data message received: (was binary, bytes).
    pub messages: Vec<(bool, Vec<u8>)>,
    /// The raw text of every complete payload.
    pub payloads: Vec<String>,
}

/// `host:port` of a `ws://host:port/...` URL.
fn authority(url: &str) -> &str {
    let rest = url.strip_prefix("ws://").expect("ws:// URL");
    rest.split(['/', '?']).next().unwrap_or(rest)
}

impl Client {
    /// Connects to `url` (a full URL with path and query).
    pub fn try_connect(url: &str) -> Result<Client, tungstenite::Error> {
        let stream = TcpStream::connect(authority(url))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let (ws, _) = tungstenite::client(url, stream).map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => tungstenite::Error::Io(std::io::ErrorKind::TimedOut.into()),
        })?;
        ws.get_ref().set_read_timeout(Some(Duration::from_millis(20)))?;
        let compressed = url.contains("compress=zlib-stream");
        Ok(Client {
            ws,
            inflate: compressed.then(|| Decompress::new(true)),
            buf: Vec::new(),
            messages: Vec::new(),
            payloads: Vec::new(),
        })
    }

    pub fn connect(url: &str) -> Client {
        Client::try_connect(url).expect("connect to the simulator")
    }

    /// `base/?v=10&encoding=json`.
    pub fn plain(base: &str) -> Client {
        Client::connect(&format!("{base}/?v=10&encoding=json"))
    }

    /// `base/?v=10&encoding=json&compress=zlib-stream`.
    pub fn zlib(base: &str) -> Client {
        Client::connect(&format!("{base}/?v=10&encoding=json&compress=zlib-stream"))
    }

    pub fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).expect("send");
    }

    pub fn send(&mut self, value: &Value) {
        self.send_text(&value.to_string());
    }

    pub fn close(&mut self, code: u16) {
        let _ = self.ws.close(Some(tungstenite::protocol::CloseFrame { code: code.into(), reason: "".into() }));
        // Drive the close handshake a little.
        let _ = self.recv(Duration::from_millis(500));
    }

    fn inflate(&mut self) -> Vec<u8> {
        let d = self.inflate.as_mut().expect("compressed client");
        let input = std::mem::take(&mut self.buf);
        let mut out = Vec::with_capacity(input.len() * 4 + 256);
        let start = d.total_in();
        loop {
            let consumed = (d.total_in() - start) as usize;
            if out.capacity() - out.len() < 256 {
                out.reserve(out.capacity());
            }
            d.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync).expect("inflate");
            if (d.total_in() - start) as usize == input.len() && out.len() < out.capacity() {
                return out;
            }
        }
    }

    /// Tries to inflate the buffered bytes; `Err` on invalid zlib data.
    pub fn try_inflate_raw(&mut self, bytes: &[u8]) -> Result<Vec<u8>, flate2::DecompressError> {
        let d = self.inflate.as_mut().expect("compressed client");
        let mut out = Vec::with_capacity(1024);
        d.decompress_vec(bytes, &mut out, FlushDecompress::Sync)?;
        Ok(out)
    }

    /// The next payload, close or drop, within `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Received {
        let deadline = Instant::now() + timeout;
        loop {
            match self.ws.read() {
                Ok(Message::Text(text)) => {
                    self.messages.push((false, text.as_bytes().to_vec()));
                    self.payloads.push(text.to_string());
                    return match serde_json::from_str(&text) {
                        Ok(v) => Received::Payload(v),
                        Err(_) => Received::NotJson(text.to_string()),
                    };
                }
                Ok(Message::Binary(bytes)) => {
                    self.messages.push((true, bytes.to_vec()));
                    if self.inflate.is_none() {
                        return Received::Payload(json!({ "binary": bytes.len() }));
                    }
                    self.buf.extend_from_slice(&bytes);
                    if self.buf.ends_with(&[0, 0, 0xff, 0xff]) {
                        let text = String::from_utf8(self.inflate()).expect("UTF-8 payload");
                        self.payloads.push(text.clone());
                        return Received::Payload(serde_json::from_str(&text).expect("JSON payload"));
                    }
                }
                Ok(Message::Close(frame)) => {
                    // Send the close reply now, like any client would.
                    let _ = self.ws.flush();
                    return Received::Close(frame.map(|f| f.code.into()));
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    if Instant::now() >= deadline {
                        return Received::Timeout;
                    }
                }
                Err(_) => return Received::Dropped,
            }
        }
    }

    /// The next payload; panics on anything else.
    pub fn payload(&mut self) -> Value {
        match self.recv(WAIT) {
            Received::Payload(v) => v,
            other => panic!("expected a payload, got {other:?}"),
        }
    }

    /// Reads until a close frame (skipping payloads) and returns its code.
    pub fn expect_close(&mut self) -> Option<u16> {
        loop {
            match self.recv(WAIT) {
                Received::Payload(_) => continue,
                Received::Close(code) => return code,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Reads until the stream ends without a close frame.
    pub fn expect_dropped(&mut self) {
        loop {
            match self.recv(WAIT) {
                Received::Payload(_) => continue,
                Received::Dropped => return,
                other => panic!("expected a TCP drop, got {other:?}"),
            }
        }
    }

    /// Receives Hello and returns its interval.
    pub fn hello(&mut self) -> u64 {
        let hello = self.payload();
        assert_eq!(hello["op"], 10, "{hello}");
        hello["d"]["heartbeat_interval"].as_u64().expect("interval")
    }

    /// Identifies with `token`/`intents` and returns the whole Identify payload.
    pub fn send_identify(&mut self, token: &str, intents: u64) -> Value {
        let identify = json!({
            "op": 2,
            "d": {
                "token": token,
                "properties": { "os": "linux", "browser": "sim-test", "device": "sim-test" },
                "intents": intents,
            }
        });
        self.send(&identify);
        identify
    }

    /// Hello, Identify, READY; returns READY.
    pub fn start_session(&mut self) -> Value {
        self.hello();
        self.send_identify(TOKEN, INTENTS);
        let ready = self.payload();
        assert_eq!(ready["t"], "READY", "{ready}");
        ready
    }

    pub fn send_resume(&mut self, session_id: &str, seq: u64) {
        self.send(&json!({
            "op": 6,
            "d": { "token": TOKEN, "session_id": session_id, "seq": seq }
        }));
    }
}
