//! One thread per connection: handshake, then a loop that reads client frames
//! (short read timeout) and runs the test's commands in between.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::handshake::HandshakeError;
use tungstenite::http::StatusCode;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::{Message, WebSocket};

use super::config::OnConnect;
use super::record::{ClientClose, ClientFrame, ConnectionEnd, ServerFrame};
use super::server::{op_frame, Command, Shared, Slot, POLL, RESUME_PATH};
use super::zlib::{self, Deflater};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the client's reply after sending a close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Client payloads above this size close the connection with 4002 (§2).
const MAX_CLIENT_PAYLOAD: usize = 4096;
/// Every documented intent bit (§10).
const DOCUMENTED_INTENTS: u64 = 0x331_FFFF;
/// GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT.
const PRIVILEGED_INTENTS: u64 = (1 << 1) | (1 << 8) | (1 << 15);
const USER_ID: &str = "1000000000000000001";
const APPLICATION_ID: &str = "1000000000000000001";

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
    let (compression, interval, enforce, send_limit) = shared.update(|st| {
        let compression = st.cfg.compression;
        if let Some(rec) = st.conns.get_mut(index) {
            rec.handshake = true;
            rec.path.clone_from(&path);
            rec.query.clone_from(&query);
            rec.version.clone_from(&version);
            rec.encoding.clone_from(&encoding);
            rec.compress.clone_from(&compress);
            rec.compressed = compression && compress.as_deref() == Some("zlib-stream");
            rec.via_resume_url = path.starts_with(RESUME_PATH);
        }
        if let Some(slot) = st.slots.get_mut(index) {
            *slot = Some(Slot { tx, open: true, session: None, live: false });
        }
        (compression, st.cfg.heartbeat_interval, st.cfg.enforce_heartbeats, st.cfg.send_limit)
    });
    let _ = ws.get_ref().set_read_timeout(Some(POLL));

    let mut conn = Conn {
        shared: Arc::clone(shared),
        index,
        ws,
        deflater: None,
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
    } else if compression && compress.as_deref().is_some_and(|c| c != "zlib-stream") {
        conn.close(Some(4002), "Decode error: only compress=zlib-stream is simulated")
    } else {
        if compression && compress.is_some() {
            conn.deflater = Some(Deflater::new());
        }
        match behaviour {
            OnConnect::Reconnect => conn.send_payload(&op_frame(7, "null")),
            OnConnect::Silence => Flow::Continue,
            OnConnect::Close(code) => conn.close(Some(code), "scripted close"),
            _ => {
                conn.heartbeat_from = Some(Instant::now());
                let d = json!({ "heartbeat_interval": interval.as_millis() as u64 });
                conn.send_payload(&op_frame(10, &d.to_string()))
            }
        }
    };
    if let Flow::Continue = flow {
        conn.run();
    }
    let end = conn.end.take().unwrap_or(ConnectionEnd::ClientDrop);
    drop(conn);
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
) -> Result<(WebSocket<TcpStream>, Target), (Option<Target>, ConnectionEnd)> {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
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
    let mut result = tungstenite::accept_hdr(stream, callback);
    let ws = loop {
        match result {
            Ok(ws) => break Some(ws),
            Err(HandshakeError::Interrupted(mid))
                if Instant::now() < deadline && !shared.shutdown.load(Ordering::SeqCst) =>
            {
                result = mid.handshake();
            }
            Err(HandshakeError::Interrupted(mid)) => {
                let _ = mid.get_ref().get_ref().shutdown(Shutdown::Both);
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

struct Conn {
    shared: Arc<Shared>,
    index: usize,
    ws: WebSocket<TcpStream>,
    deflater: Option<Deflater>,
    rx: Receiver<Command>,
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
    fn run(&mut self) {
        loop {
            if self.shared.shutdown.load(Ordering::SeqCst) {
                self.drop_tcp();
                return;
            }
            let flow = match self.ws.read() {
                Ok(Message::Text(text)) => self.on_text(text.as_str()),
                Ok(Message::Binary(bytes)) => self.on_text(&String::from_utf8_lossy(&bytes)),
                Ok(Message::Close(frame)) => {
                    self.on_close(frame);
                    Flow::Continue
                }
                Ok(_) => Flow::Continue,
                Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    Flow::Continue
                }
                Err(_) => {
                    // Closed after a handshake, reset or EOF: the stream is done.
                    let _ = self.ws.get_ref().shutdown(Shutdown::Both);
                    return;
                }
            };
            if let Flow::Stop = flow {
                return;
            }
            if let Some(since) = self.closing_since {
                if since.elapsed() > CLOSE_GRACE {
                    let _ = self.ws.get_ref().shutdown(Shutdown::Both);
                    return;
                }
                continue;
            }
            if let Flow::Stop = self.drain_commands() {
                return;
            }
            if self.enforce_heartbeats && self.heartbeat_from.is_some_and(|t| t.elapsed() > self.interval.mul_f64(1.5))
            {
                // §4 rule 6: the server closes and the client has to resume;
                // E19: a server-sent 1000 was seen around heartbeat timeouts.
                if let Flow::Stop = self.close(Some(1000), "Heartbeat timed out") {
                    return;
                }
            }
        }
    }

    fn drain_commands(&mut self) -> Flow {
        loop {
            let cmd = match self.rx.try_recv() {
                Ok(cmd) => cmd,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Flow::Continue,
            };
            let flow = match cmd {
                Command::Payload(text) => self.send_payload(&text),
                Command::RawText(text) => {
                    self.record_sent(text.clone(), false);
                    self.send(Message::text(text))
                }
                Command::RawBinary(bytes) => {
                    self.record_sent(format!("<raw binary, {} bytes>", bytes.len()), false);
                    self.send(Message::binary(bytes))
                }
                Command::Corrupt => {
                    // 0xde: a deflate block of reserved type 3, and not a zlib header.
                    let bytes = vec![0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0xff, 0xff];
                    self.record_sent("<corrupt zlib frame>".to_owned(), true);
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
            };
            if let Flow::Stop = flow {
                return Flow::Stop;
            }
            if self.closing_since.is_some() {
                return Flow::Continue;
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
                let _ = self.ws.get_ref().shutdown(Shutdown::Both);
                self.end.get_or_insert(ConnectionEnd::ClientDrop);
                Flow::Stop
            }
        }
    }

    /// Sends one gateway payload, through the zlib stream when compressed.
    fn send_payload(&mut self, text: &str) -> Flow {
        if self.closing_since.is_some() {
            return Flow::Continue;
        }
        self.record_sent(text.to_owned(), self.deflater.is_some());
        let Some(deflater) = self.deflater.as_mut() else {
            return self.send(Message::text(text));
        };
        let bytes = match deflater.compress(text.as_bytes()) {
            Ok(bytes) => bytes,
            Err(_) => return self.close(Some(4000), "simulator: compression failed"),
        };
        let k = self.shared.lock().cfg.split_frames;
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
                let _ = self.ws.get_ref().shutdown(Shutdown::Both);
                Flow::Stop
            }
        }
    }

    fn drop_tcp(&mut self) {
        let _ = self.ws.get_ref().shutdown(Shutdown::Both);
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
            // A client closing with 1000/1001 ends its session (§5.4).
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
                Some([id, total]) => match (id.as_u64(), total.as_u64()) {
                    (Some(id), Some(total)) => Some((id, total)),
                    _ => return self.close(Some(4010), "Invalid shard"),
                },
                _ => return self.close(Some(4010), "Invalid shard"),
            },
        };
        if shard.is_some_and(|(id, total)| total == 0 || id >= total) {
            return self.close(Some(4010), "Invalid shard");
        }
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
        let frames = self.shared.update(|st| {
            let id = st.new_session();
            let guilds: Vec<u64> = st
                .cfg
                .guilds
                .iter()
                .copied()
                .filter(|g| shard.is_none_or(|(sid, total)| (g >> 22) % total == sid))
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
            if let (Some((sid, total)), Some(obj)) = (shard, ready.as_object_mut()) {
                obj.insert("shard".into(), json!([sid, total]));
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
            frames
        });
        self.authenticated = true;
        self.send_all(frames)
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
            frames.push(super::server::dispatch_frame("RESUMED", session.last_seq, &json!({})));
            st.bind(index, session_id);
            Outcome::Replay(frames)
        });
        match outcome {
            Outcome::Unknown => self.send_payload(&op_frame(9, "false")),
            Outcome::BadSeq => {
                // Bind first so that the 4007 close invalidates this session.
                self.shared.update(|st| {
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
