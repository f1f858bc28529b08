//! One thread per connection: handshake, then a loop that blocks on one
//! channel carrying both the test's commands and the client's bytes (which a
//! small reader thread per connection forwards), so an idle connection costs
//! no wake-ups at all.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::handshake::HandshakeError;
use tungstenite::http::StatusCode;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use super::config::IdentifyTooFast;
use super::config::OnConnect;
use super::record::{ClientClose, ClientFrame, ConnectionEnd, ServerFrame};
use super::state::{op_frame, Command, Input, Shared, Slot, RESUME_PATH};
use super::zlib::{self, Deflater};
#[cfg(feature = "zstd")]
use super::zstd::{self, ZstdCompressor};
use crate::shard_id::ShardId;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the client's reply after sending a close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Client payloads above this size close the connection with 4002
/// (`docs/connection.md#outgoing-size-limit`).
const MAX_CLIENT_PAYLOAD: usize = 4096;
/// Every documented intent bit (`docs/intents.md#intent-bits`).
const DOCUMENTED_INTENTS: u64 = 0x331_FFFF;
/// GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT.
const PRIVILEGED_INTENTS: u64 = (1 << 1) | (1 << 8) | (1 << 15);
const USER_ID: &str = "1000000000000000001";
const APPLICATION_ID: &str = "1000000000000000001";
/// Stack size of a reader thread (its buffer is on the heap).
const READER_STACK: usize = 64 * 1024;
/// Read buffer of a reader thread; client payloads are at most 4096 bytes.
const READ_CHUNK: usize = 8 * 1024;
/// Payloads over this size are recorded as a description, so that a test
/// sending many huge payloads (decompression bombs) does not keep them all.
const RECORD_LIMIT: usize = 1 << 20;
/// How much of a payload over [`RECORD_LIMIT`] its description keeps.
const RECORD_PREFIX: usize = 256;

/// What [`ServerFrame::text`] keeps of a payload: all of it up to
/// [`RECORD_LIMIT`], else its size and first [`RECORD_PREFIX`] bytes.
fn recorded(text: &str) -> String {
    if text.len() <= RECORD_LIMIT {
        return text.to_owned();
    }
    let mut end = RECORD_PREFIX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("<payload of {} bytes: {}...>", text.len(), text.get(..end).unwrap_or_default())
}

/// The connection thread's side of the socket. During the handshake it reads
/// the socket directly (with a short timeout); afterwards reads come from the
/// bytes the reader thread forwarded, and `WouldBlock` means "none yet".
/// Writes always go straight to the socket.
pub(crate) struct Pipe {
    tcp: TcpStream,
    direct: bool,
    inbound: VecDeque<u8>,
    /// Set once the reader thread has seen the end of the stream.
    ended: Option<Option<ErrorKind>>,
}

impl Pipe {
    fn shutdown(&self) {
        let _ = self.tcp.shutdown(Shutdown::Both);
    }
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.direct {
            return (&self.tcp).read(buf);
        }
        if !self.inbound.is_empty() {
            return self.inbound.read(buf);
        }
        match self.ended {
            None => Err(ErrorKind::WouldBlock.into()),
            Some(None) => Ok(0),
            Some(Some(kind)) => Err(kind.into()),
        }
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&self.tcp).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&self.tcp).flush()
    }
}

/// Forwards everything the client sends to the connection thread, blocking
/// on the socket; ends at EOF, on an error, or when the connection thread is
/// gone. While the simulator's reading is paused it reads nothing, until
/// `done` (the connection thread has finished) or shutdown.
fn pump(mut tcp: TcpStream, tx: &Sender<Input>, shared: &Shared, done: &AtomicBool) {
    let mut buf = vec![0; READ_CHUNK];
    loop {
        shared.wait_while(|st| st.reading_paused && !done.load(Ordering::SeqCst));
        if done.load(Ordering::SeqCst) {
            return;
        }
        let input = match tcp.read(&mut buf) {
            Ok(0) => Input::ReadEnd(None),
            Ok(n) => Input::Bytes(buf.get(..n).unwrap_or_default().to_vec()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => Input::ReadEnd(Some(e.kind())),
        };
        let end = matches!(input, Input::ReadEnd(_));
        if tx.send(input).is_err() || end {
            return;
        }
    }
}

enum Flow {
    Continue,
    Stop,
}

/// Runs one accepted TCP connection to its end.
pub(crate) fn serve(shared: &Arc<Shared>, index: usize, stream: TcpStream, behaviour: OnConnect) {
    if behaviour == OnConnect::DropTcp {
        let _ = stream.shutdown(Shutdown::Both);
        finish(shared, index, ConnectionEnd::ServerDrop);
        return;
    }
    let refuse = match behaviour {
        OnConnect::RefuseHandshake(status) => Some(status),
        _ => None,
    };
    let (ws, target) = match handshake(shared, stream, refuse) {
        Ok(ok) => ok,
        Err((target, end)) => {
            if let Some((path, query)) = target {
                shared.update(|st| {
                    if let Some(rec) = st.conns.get_mut(index) {
                        rec.path = path;
                        rec.query = query;
                    }
                });
            }
            finish(shared, index, end);
            return;
        }
    };
    let (path, query) = target;
    let param = |name: &str| -> Option<String> {
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| v.to_owned())
        })
    };
    let version = param("v");
    let encoding = param("encoding");
    let compress = param("compress");

    let (tx, rx) = mpsc::channel();
    let done = Arc::new(AtomicBool::new(false));
    let reader = ws.get_ref().tcp.try_clone().and_then(|tcp| {
        let _ = tcp.set_read_timeout(None);
        let tx = tx.clone();
        let shared = Arc::clone(shared);
        let done = Arc::clone(&done);
        thread::Builder::new()
            .name(format!("gateway-sim-read-{index}"))
            .stack_size(READER_STACK)
            .spawn(move || pump(tcp, &tx, &shared, &done))
    });
    let reader = match reader {
        Ok(reader) => reader,
        Err(_) => {
            ws.get_ref().shutdown();
            finish(shared, index, ConnectionEnd::ServerDrop);
            return;
        }
    };
    let mut ws = ws;
    ws.get_mut().direct = false;
    let (compression, interval, enforce, send_limit) = shared.update(|st| {
        let compression = st.cfg.compression;
        if let Some(rec) = st.conns.get_mut(index) {
            rec.handshake = true;
            rec.path.clone_from(&path);
            rec.query.clone_from(&query);
            rec.version.clone_from(&version);
            rec.encoding.clone_from(&encoding);
            rec.compress.clone_from(&compress);
            rec.compressed = compression && compress.as_deref().is_some_and(|c| Compressor::SUPPORTED.contains(&c));
            rec.via_resume_url = path.starts_with(RESUME_PATH);
        }
        if let Some(slot) = st.slots.get_mut(index) {
            *slot = Some(Slot { tx, open: true, session: None });
        }
        (compression, st.cfg.heartbeat_interval, st.cfg.enforce_heartbeats, st.cfg.send_limit)
    });

    let mut conn = Conn {
        shared: Arc::clone(shared),
        index,
        ws,
        compressor: None,
        rx,
        authenticated: false,
        recent: VecDeque::new(),
        send_limit,
        interval,
        enforce_heartbeats: enforce,
        heartbeat_from: None,
        closing_since: None,
        end: None,
    };

    let flow = if version.as_deref() != Some("10") {
        conn.close(Some(4012), "Invalid API version")
    } else if encoding.as_deref().is_some_and(|e| e != "json") {
        conn.close(Some(4002), "Decode error: only encoding=json is simulated")
    } else if compression && compress.as_deref().is_some_and(|c| !Compressor::SUPPORTED.contains(&c)) {
        conn.close(Some(4002), "Decode error: unsupported compress value")
    } else {
        let compressor = if compression { compress.as_deref().map(Compressor::new).transpose() } else { Ok(None) };
        match compressor {
            Err(_) => conn.close(Some(4000), "simulator: no compression context"),
            Ok(compressor) => {
                conn.compressor = compressor;
                conn.greet(behaviour, interval)
            }
        }
    };
    if let Flow::Continue = flow {
        conn.run();
    }
    let end = conn.end.take().unwrap_or(ConnectionEnd::ClientDrop);
    // Ends the reader thread's blocking read, whatever state the socket is
    // in, or its wait while reading is paused.
    done.store(true, Ordering::SeqCst);
    shared.update(|_| ());
    conn.ws.get_ref().shutdown();
    drop(conn);
    let _ = reader.join();
    finish(shared, index, end);
}

type Target = (String, String);

/// The WebSocket handshake on a blocking stream with timeouts; records the
/// request target, optionally refusing with an HTTP status.
#[allow(clippy::result_large_err)]
fn handshake(
    shared: &Shared,
    stream: TcpStream,
    refuse: Option<u16>,
) -> Result<(WebSocket<Pipe>, Target), (Option<Target>, ConnectionEnd)> {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let stream = Pipe { tcp: stream, direct: true, inbound: VecDeque::new(), ended: None };
    let mut target: Option<Target> = None;
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        target = Some((req.uri().path().to_owned(), req.uri().query().unwrap_or("").to_owned()));
        match refuse {
            None => Ok(resp),
            Some(status) => {
                let mut err = ErrorResponse::new(Some("refused by the gateway simulator".into()));
                *err.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                Err(err)
            }
        }
    };
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    // tungstenite zeroes `read_buffer_size` bytes (128 KiB by default) per
    // read; client payloads are at most 4096 bytes.
    let config = WebSocketConfig::default().read_buffer_size(READ_CHUNK);
    let mut result = tungstenite::accept_hdr_with_config(stream, callback, Some(config));
    let ws = loop {
        match result {
            Ok(ws) => break Some(ws),
            Err(HandshakeError::Interrupted(mid))
                if Instant::now() < deadline && !shared.shutdown.load(Ordering::SeqCst) =>
            {
                result = mid.handshake();
            }
            Err(HandshakeError::Interrupted(mid)) => {
                mid.get_ref().get_ref().shutdown();
                break None;
            }
            Err(HandshakeError::Failure(_)) => break None,
        }
    };
    match (ws, refuse) {
        (Some(ws), _) => {
            let target = target.unwrap_or_default();
            Ok((ws, target))
        }
        (None, Some(status)) if target.is_some() => Err((target, ConnectionEnd::Refused(status))),
        (None, _) => Err((target, ConnectionEnd::ClientDrop)),
    }
}

/// Records the end of connection `index` and releases its slot.
fn finish(shared: &Shared, index: usize, end: ConnectionEnd) {
    shared.update(|st| {
        st.shut(index);
        if let Some(rec) = st.conns.get_mut(index) {
            rec.ended_at = Some(Instant::now());
            rec.end.get_or_insert(end);
        }
    });
}

fn as_str<'a>(d: &'a Value, key: &str) -> Option<&'a str> {
    d.get(key).and_then(Value::as_str)
}

/// The connection's transport compressor, picked by its `compress` parameter.
enum Compressor {
    Zlib(Deflater),
    #[cfg(feature = "zstd")]
    Zstd(ZstdCompressor),
}

impl Compressor {
    /// The `compress` values the simulator serves.
    #[cfg(feature = "zstd")]
    const SUPPORTED: [&'static str; 2] = ["zlib-stream", "zstd-stream"];
    #[cfg(not(feature = "zstd"))]
    const SUPPORTED: [&'static str; 1] = ["zlib-stream"];

    /// A fresh stream for a `compress` value from `SUPPORTED`.
    fn new(compress: &str) -> io::Result<Compressor> {
        match compress {
            #[cfg(feature = "zstd")]
            "zstd-stream" => Ok(Compressor::Zstd(ZstdCompressor::new()?)),
            _ => Ok(Compressor::Zlib(Deflater::new())),
        }
    }
}

struct Conn {
    shared: Arc<Shared>,
    index: usize,
    ws: WebSocket<Pipe>,
    compressor: Option<Compressor>,
    rx: Receiver<Input>,
    /// Identified or resumed on this connection (and not told op 9 since).
    authenticated: bool,
    /// Arrival times of recent client frames, for the send limit.
    recent: VecDeque<Instant>,
    send_limit: (usize, Duration),
    interval: Duration,
    enforce_heartbeats: bool,
    /// Hello, then each heartbeat: the zombie clock's start.
    heartbeat_from: Option<Instant>,
    /// Set once the simulator has sent a close frame.
    closing_since: Option<Instant>,
    end: Option<ConnectionEnd>,
}

impl Conn {
    /// The connection's first move, as the test scripted it.
    fn greet(&mut self, behaviour: OnConnect, interval: Duration) -> Flow {
        match behaviour {
            OnConnect::Reconnect => self.send_payload(&op_frame(7, "null")),
            OnConnect::Silence => Flow::Continue,
            OnConnect::Close(code) => self.close(Some(code), "scripted close"),
            _ => {
                self.heartbeat_from = Some(Instant::now());
                let d = json!({ "heartbeat_interval": interval.as_millis() as u64 });
                self.send_payload(&op_frame(10, &d.to_string()))
            }
        }
    }

    fn run(&mut self) {
        loop {
            if self.shared.shutdown.load(Ordering::SeqCst) {
                self.drop_tcp();
                return;
            }
            if let Flow::Stop = self.read_available() {
                return;
            }
            let now = Instant::now();
            let deadline = if let Some(since) = self.closing_since {
                let end = since + CLOSE_GRACE;
                if now >= end {
                    self.ws.get_ref().shutdown();
                    return;
                }
                Some(end)
            } else if let (true, Some(from)) = (self.enforce_heartbeats, self.heartbeat_from) {
                let end = from + self.interval.mul_f64(1.5);
                if now >= end {
                    // docs/connection.md#missed-heartbeats: the server closes
                    // and the client has to resume;
                    // docs/edge-cases.md#server-sent-1000: a server-sent 1000
                    // was seen around heartbeat timeouts.
                    if let Flow::Stop = self.close(Some(1000), "Heartbeat timed out") {
                        return;
                    }
                    continue;
                }
                Some(end)
            } else {
                None
            };
            let input = match deadline {
                Some(end) => match self.rx.recv_timeout(end.saturating_duration_since(now)) {
                    Ok(input) => input,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => Input::Shutdown,
                },
                None => self.rx.recv().unwrap_or(Input::Shutdown),
            };
            let flow = match input {
                Input::Bytes(bytes) => {
                    self.ws.get_mut().inbound.extend(bytes);
                    Flow::Continue
                }
                Input::ReadEnd(kind) => {
                    self.ws.get_mut().ended = Some(kind);
                    Flow::Continue
                }
                // After a close frame, commands are moot.
                Input::Command(_) if self.closing_since.is_some() => Flow::Continue,
                Input::Command(cmd) => self.run_command(cmd),
                Input::Shutdown => {
                    self.drop_tcp();
                    Flow::Stop
                }
            };
            if let Flow::Stop = flow {
                return;
            }
        }
    }

    /// Handles every complete client message received so far.
    fn read_available(&mut self) -> Flow {
        loop {
            let flow = match self.ws.read() {
                Ok(Message::Text(text)) => self.on_text(text.as_str()),
                Ok(Message::Binary(bytes)) => self.on_text(&String::from_utf8_lossy(&bytes)),
                Ok(Message::Close(frame)) => {
                    self.on_close(frame);
                    Flow::Continue
                }
                Ok(_) => Flow::Continue,
                Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Flow::Continue
                }
                Err(_) => {
                    // Closed after a handshake, reset or EOF: the stream is done.
                    self.ws.get_ref().shutdown();
                    return Flow::Stop;
                }
            };
            if let Flow::Stop = flow {
                return Flow::Stop;
            }
        }
    }

    fn run_command(&mut self, cmd: Command) -> Flow {
        match cmd {
            Command::Payload(text) => self.send_payload(&text),
            Command::RawText(text) => {
                self.record_sent(recorded(&text), false);
                self.send(Message::text(text))
            }
            Command::RawBinary(bytes) => {
                self.record_sent(format!("<raw binary, {} bytes>", bytes.len()), false);
                self.send(Message::binary(bytes))
            }
            Command::Corrupt => {
                let (bytes, what) = match &self.compressor {
                    #[cfg(feature = "zstd")]
                    Some(Compressor::Zstd(_)) => (zstd::CORRUPT.to_vec(), "<corrupt zstd frame>"),
                    // 0xde: a deflate block of reserved type 3, and not a zlib header.
                    _ => (vec![0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0xff, 0xff], "<corrupt zlib frame>"),
                };
                self.record_sent(what.to_owned(), true);
                self.send(Message::binary(bytes))
            }
            Command::InvalidSession(resumable) => {
                self.authenticated = false;
                self.send_payload(&op_frame(9, if resumable { "true" } else { "false" }))
            }
            Command::Close(code) => self.close(code, ""),
            Command::Drop => {
                self.drop_tcp();
                Flow::Stop
            }
        }
    }

    fn record_sent(&self, text: String, compressed: bool) {
        let index = self.index;
        self.shared.update(|st| {
            st.sent.push(ServerFrame { connection: index, at: Instant::now(), text, compressed });
        });
    }

    fn send(&mut self, msg: Message) -> Flow {
        match self.ws.send(msg) {
            Ok(()) => Flow::Continue,
            Err(_) => {
                self.ws.get_ref().shutdown();
                self.end.get_or_insert(ConnectionEnd::ClientDrop);
                Flow::Stop
            }
        }
    }

    /// Sends one gateway payload, through the compressed stream when compressed.
    fn send_payload(&mut self, text: &str) -> Flow {
        if self.closing_since.is_some() {
            return Flow::Continue;
        }
        self.record_sent(recorded(text), self.compressor.is_some());
        let k = match &self.compressor {
            None => return self.send(Message::text(text)),
            Some(Compressor::Zlib(_)) => self.shared.lock().cfg.split_frames,
            #[cfg(feature = "zstd")]
            Some(Compressor::Zstd(_)) => 1,
        };
        let compressed = match self.compressor.as_mut() {
            Some(Compressor::Zlib(deflater)) => deflater.compress(text.as_bytes()),
            #[cfg(feature = "zstd")]
            Some(Compressor::Zstd(compressor)) => compressor.compress(text.as_bytes()),
            None => Ok(text.as_bytes().to_vec()),
        };
        let bytes = match compressed {
            Ok(bytes) => bytes,
            Err(_) => return self.close(Some(4000), "simulator: compression failed"),
        };
        for part in zlib::split(bytes, k) {
            if let Flow::Stop = self.send(Message::binary(part)) {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    fn send_all(&mut self, frames: Vec<String>) -> Flow {
        for frame in frames {
            if let Flow::Stop = self.send_payload(&frame) {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// Sends a close frame and waits (in `run`) for the reply.
    fn close(&mut self, code: Option<u16>, reason: &str) -> Flow {
        if self.closing_since.is_some() {
            return Flow::Continue;
        }
        let index = self.index;
        self.shared.update(|st| st.server_closing(index, code));
        self.end.get_or_insert(ConnectionEnd::ServerClose(code));
        self.closing_since = Some(Instant::now());
        let frame = code.map(|code| CloseFrame { code: CloseCode::from(code), reason: reason.into() });
        match self.ws.close(frame) {
            Ok(()) => Flow::Continue,
            Err(_) => {
                self.ws.get_ref().shutdown();
                Flow::Stop
            }
        }
    }

    fn drop_tcp(&mut self) {
        self.ws.get_ref().shutdown();
        self.end.get_or_insert(ConnectionEnd::ServerDrop);
    }

    fn on_close(&mut self, frame: Option<CloseFrame>) {
        let code = frame.as_ref().map(|f| u16::from(f.code));
        let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
        let by_client = self.closing_since.is_none();
        if by_client {
            self.end.get_or_insert(ConnectionEnd::ClientClose(code));
        }
        let index = self.index;
        self.shared.update(|st| {
            st.closes.push(ClientClose {
                connection: index,
                at: Instant::now(),
                code,
                reason,
                initiated_by_client: by_client,
            });
            st.shut(index);
            // A client closing with 1000/1001 ends its session
            // (docs/close-codes.md#our-own-close-codes).
            if by_client && matches!(code, Some(1000 | 1001)) {
                if let Some(id) = st.slot_session(index) {
                    st.invalidate(&id);
                }
            }
        });
    }

    fn on_text(&mut self, raw: &str) -> Flow {
        let now = Instant::now();
        let value: Option<Value> = serde_json::from_str(raw).ok();
        let op = value.as_ref().and_then(|v| v.get("op")).and_then(Value::as_u64);
        let index = self.index;
        self.shared.update(|st| {
            st.frames.push(ClientFrame { connection: index, at: now, raw: raw.to_owned(), value: value.clone(), op });
        });
        if self.closing_since.is_some() {
            return Flow::Continue;
        }

        let (max, window) = self.send_limit;
        self.recent.push_back(now);
        while self.recent.front().is_some_and(|t| now.duration_since(*t) >= window) {
            self.recent.pop_front();
        }
        if self.recent.len() > max {
            return self.close(Some(4008), "Rate limited");
        }
        if raw.len() > MAX_CLIENT_PAYLOAD {
            return self.close(Some(4002), "Decode error: payload over 4096 bytes");
        }
        let Some(value) = value.filter(Value::is_object) else {
            return self.close(Some(4002), "Decode error");
        };
        let d = value.get("d").unwrap_or(&Value::Null);
        match op {
            Some(1) => self.on_heartbeat(d),
            Some(2) => self.on_identify(d),
            Some(6) => self.on_resume(d),
            Some(3 | 4 | 8 | 31 | 43) if !self.authenticated => self.close(Some(4003), "Not authenticated"),
            Some(3 | 4 | 8 | 31 | 43) => Flow::Continue,
            _ => self.close(Some(4001), "Unknown opcode"),
        }
    }

    fn on_heartbeat(&mut self, d: &Value) -> Flow {
        if !(d.is_null() || d.is_u64()) {
            return self.close(Some(4001), "Unknown opcode: bad heartbeat payload");
        }
        self.heartbeat_from = Some(Instant::now());
        if self.shared.lock().cfg.withhold_acks {
            return Flow::Continue;
        }
        self.send_payload(&op_frame(11, "null"))
    }

    /// Checks a token against the configuration; `Bot ` prefixes are ignored.
    fn token_ok(&self, token: &str) -> bool {
        let bare = token.strip_prefix("Bot ").unwrap_or(token);
        match &self.shared.lock().cfg.token {
            Some(expected) => bare == expected.strip_prefix("Bot ").unwrap_or(expected),
            None => !bare.is_empty(),
        }
    }

    fn on_identify(&mut self, d: &Value) -> Flow {
        if self.authenticated {
            return self.close(Some(4005), "Already authenticated");
        }
        let (Some(token), true) = (as_str(d, "token"), d.get("properties").is_some_and(Value::is_object)) else {
            return self.close(Some(4001), "Unknown opcode: malformed identify");
        };
        if !self.token_ok(token) {
            return self.close(Some(4004), "Authentication failed");
        }
        let shard = match d.get("shard") {
            None | Some(Value::Null) => None,
            Some(s) => match s.as_array().map(Vec::as_slice) {
                Some([id, total]) => {
                    let id = id.as_u64().and_then(|n| u32::try_from(n).ok());
                    let total = total.as_u64().and_then(|n| u32::try_from(n).ok());
                    match id.zip(total).and_then(|(id, total)| ShardId::new(id, total)) {
                        Some(shard) => Some(shard),
                        None => return self.close(Some(4010), "Invalid shard"),
                    }
                }
                _ => return self.close(Some(4010), "Invalid shard"),
            },
        };
        let Some(intents) = d.get("intents").and_then(Value::as_u64) else {
            return self.close(Some(4013), "Invalid intent(s)");
        };
        if intents & !DOCUMENTED_INTENTS != 0 {
            return self.close(Some(4013), "Invalid intent(s)");
        }
        let allowed = self.shared.lock().cfg.allowed_privileged;
        if intents & PRIVILEGED_INTENTS & !allowed != 0 {
            return self.close(Some(4014), "Disallowed intent(s)");
        }

        let index = self.index;
        let admitted = self.shared.update(|st| {
            st.admit_identify(index, shard)?;
            let id = st.new_session(shard.unwrap_or(ShardId::ONE));
            let guilds: Vec<u64> = st
                .cfg
                .guilds
                .iter()
                .copied()
                .filter(|g| shard.is_none_or(|s| ShardId::for_guild(*g, s.total) == Some(s)))
                .collect();
            let mut ready = json!({
                "v": 10,
                "user": {
                    "id": USER_ID,
                    "username": "simulator",
                    "discriminator": "0",
                    "global_name": null,
                    "avatar": null,
                    "bot": true,
                    "verified": true,
                    "mfa_enabled": false,
                    "flags": 0,
                },
                "guilds": guilds
                    .iter()
                    .map(|g| json!({ "id": g.to_string(), "unavailable": true }))
                    .collect::<Vec<_>>(),
                "session_id": id,
                "session_type": "normal",
                "resume_gateway_url": st.resume_url,
                "private_channels": [],
                "relationships": [],
                "application": { "id": APPLICATION_ID, "flags": 0 },
            });
            if let (Some(shard), Some(obj)) = (shard, ready.as_object_mut()) {
                obj.insert("shard".into(), json!([shard.id, shard.total]));
            }
            let mut events = vec![("READY".to_owned(), ready)];
            for (i, g) in guilds.iter().enumerate() {
                events.push((
                    "GUILD_CREATE".to_owned(),
                    json!({
                        "id": g.to_string(),
                        "name": format!("Guild {i}"),
                        "unavailable": false,
                        "member_count": 1,
                        "large": false,
                        "channels": [],
                        "threads": [],
                        "members": [],
                        "roles": [],
                        "emojis": [],
                        "features": [],
                        "voice_states": [],
                        "presences": [],
                    }),
                ));
            }
            events.extend(st.cfg.initial_dispatches.iter().cloned());
            let frames: Vec<String> =
                events.iter().filter_map(|(event, d)| st.commit(&id, event, d).map(|(_, f)| f)).collect();
            st.bind(index, &id);
            Ok::<_, IdentifyTooFast>(frames)
        });
        match admitted {
            Ok(frames) => {
                self.authenticated = true;
                self.send_all(frames)
            }
            // docs/rate-limits.md#identify-concurrency: an Identify over the
            // limit is answered with op 9.
            Err(IdentifyTooFast::InvalidSession) => self.send_payload(&op_frame(9, "false")),
            Err(IdentifyTooFast::Close(code)) => self.close(Some(code), "Identify too fast for its concurrency bucket"),
        }
    }

    fn on_resume(&mut self, d: &Value) -> Flow {
        if self.authenticated {
            return self.close(Some(4005), "Already authenticated");
        }
        let (Some(token), Some(session_id), Some(seq)) =
            (as_str(d, "token"), as_str(d, "session_id"), d.get("seq").and_then(Value::as_u64))
        else {
            return self.close(Some(4001), "Unknown opcode: malformed resume");
        };
        if !self.token_ok(token) {
            return self.close(Some(4004), "Authentication failed");
        }
        enum Outcome {
            Unknown,
            BadSeq,
            Replay(Vec<String>),
        }
        let index = self.index;
        let outcome = self.shared.update(|st| {
            let Some(session) = st.sessions.get_mut(session_id).filter(|s| s.valid) else {
                return Outcome::Unknown;
            };
            if seq > session.last_seq {
                return Outcome::BadSeq;
            }
            let mut frames: Vec<String> = session.log.iter().filter(|l| l.seq > seq).map(|l| l.frame.clone()).collect();
            session.last_seq += 1;
            frames.push(super::state::dispatch_frame("RESUMED", session.last_seq, &json!({})));
            st.bind(index, session_id);
            Outcome::Replay(frames)
        });
        match outcome {
            Outcome::Unknown => self.send_payload(&op_frame(9, "false")),
            Outcome::BadSeq => {
                // Bind first so that the 4007 close invalidates this session.
                self.shared.update(|st| {
                    st.unlive(index);
                    if let Some(Some(slot)) = st.slots.get_mut(index) {
                        slot.session = Some(session_id.to_owned());
                    }
                });
                self.close(Some(4007), "Invalid seq")
            }
            Outcome::Replay(frames) => {
                self.authenticated = true;
                self.send_all(frames)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_payloads_are_recorded_as_a_description() {
        let small = "a".repeat(RECORD_LIMIT);
        assert_eq!(recorded(&small), small);
        // A two-byte character straddles the prefix's end.
        let huge = format!("{}é{}", "b".repeat(RECORD_PREFIX - 1), "c".repeat(RECORD_LIMIT));
        let kept = recorded(&huge);
        assert_eq!(kept, format!("<payload of {} bytes: {}...>", huge.len(), "b".repeat(RECORD_PREFIX - 1)));
    }
}
