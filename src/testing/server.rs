//! [`Simulator`]: the listener, the shared state and the test-facing controls.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::config::{OnConnect, SimulatorConfig};
use super::conn;
use super::record::{ClientClose, ClientFrame, ConnectionRecord, LoggedDispatch, ServerFrame};

/// How often idle threads look at the shutdown flag.
pub(crate) const POLL: Duration = Duration::from_millis(5);

/// Path of the default `resume_gateway_url`.
pub(crate) const RESUME_PATH: &str = "/resumed-host";

/// Server close codes after which the session cannot be resumed (§6.1,
/// "Resume?" column); the simulator invalidates the session when it sends one.
const NON_RESUMABLE: [u16; 11] = [4001, 4003, 4004, 4005, 4007, 4009, 4010, 4011, 4012, 4013, 4014];

/// A request from the test thread to a connection thread.
pub(crate) enum Command {
    /// A payload, compressed when the connection is.
    Payload(String),
    /// A text WebSocket message, never compressed.
    RawText(String),
    /// A binary WebSocket message, never compressed.
    RawBinary(Vec<u8>),
    /// Invalid zlib bytes ending in `00 00 ff ff`.
    Corrupt,
    /// op 9 with this `d`; the connection is no longer authenticated.
    InvalidSession(bool),
    /// A close frame (`None`: without a code).
    Close(Option<u16>),
    /// Drop the TCP stream without a close frame.
    Drop,
}

/// The test's handle on one open connection.
pub(crate) struct Slot {
    pub(crate) tx: Sender<Command>,
    /// Still usable for commands (no close or drop decided yet).
    pub(crate) open: bool,
    /// The session it identified or resumed into.
    pub(crate) session: Option<String>,
    /// Dispatches committed to `session` are sent here.
    pub(crate) live: bool,
}

/// A gateway session; it outlives connections.
pub(crate) struct Session {
    pub(crate) log: Vec<LoggedDispatch>,
    pub(crate) last_seq: u64,
    pub(crate) valid: bool,
}

/// Everything behind the simulator's lock.
pub(crate) struct State {
    pub(crate) cfg: SimulatorConfig,
    pub(crate) resume_url: String,
    pub(crate) sessions: HashMap<String, Session>,
    /// The session `dispatch` commits to.
    pub(crate) current: Option<String>,
    session_counter: u64,
    seed: u64,
    pub(crate) conns: Vec<ConnectionRecord>,
    pub(crate) slots: Vec<Option<Slot>>,
    pub(crate) frames: Vec<ClientFrame>,
    pub(crate) closes: Vec<ClientClose>,
    pub(crate) sent: Vec<ServerFrame>,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `{"t":EVENT,"s":SEQ,"op":0,"d":D}` in Discord's field order.
pub(crate) fn dispatch_frame(event: &str, seq: u64, d: &Value) -> String {
    format!("{{\"t\":{},\"s\":{seq},\"op\":0,\"d\":{}}}", Value::String(event.to_owned()), d)
}

impl State {
    pub(crate) fn new_session_id(&mut self) -> String {
        self.session_counter += 1;
        let a = splitmix(self.seed ^ self.session_counter);
        let b = splitmix(a ^ self.session_counter.rotate_left(32));
        format!("{a:016x}{b:016x}")
    }

    pub(crate) fn new_session(&mut self) -> String {
        let id = self.new_session_id();
        self.sessions.insert(id.clone(), Session { log: Vec::new(), last_seq: 0, valid: true });
        id
    }

    /// Logs a dispatch in a valid session and returns `(s, frame)`.
    pub(crate) fn commit(&mut self, session: &str, event: &str, d: &Value) -> Option<(u64, String)> {
        let s = self.sessions.get_mut(session).filter(|s| s.valid)?;
        s.last_seq += 1;
        let frame = dispatch_frame(event, s.last_seq, d);
        s.log.push(LoggedDispatch { seq: s.last_seq, event: event.to_owned(), frame: frame.clone() });
        Some((s.last_seq, frame))
    }

    /// Commits to the current session and sends to its live connection.
    fn commit_current(&mut self, event: &str, d: &Value) -> Option<u64> {
        let id = self.current.clone()?;
        let (seq, frame) = self.commit(&id, event, d)?;
        if let Some(slot) =
            self.slots.iter().flatten().find(|s| s.live && s.open && s.session.as_deref() == Some(id.as_str()))
        {
            let _ = slot.tx.send(Command::Payload(frame));
        }
        Some(seq)
    }

    /// Makes connection `index` the live connection of `session`.
    pub(crate) fn bind(&mut self, index: usize, session: &str) {
        for slot in self.slots.iter_mut().flatten() {
            if slot.session.as_deref() == Some(session) {
                slot.live = false;
            }
        }
        if let Some(Some(slot)) = self.slots.get_mut(index) {
            slot.session = Some(session.to_owned());
            slot.live = true;
        }
        if let Some(rec) = self.conns.get_mut(index) {
            rec.session_id = Some(session.to_owned());
        }
        self.current = Some(session.to_owned());
    }

    /// Ends a session: resumes get op 9, dispatches are refused.
    pub(crate) fn invalidate(&mut self, session: &str) {
        if let Some(s) = self.sessions.get_mut(session) {
            s.valid = false;
        }
        if self.current.as_deref() == Some(session) {
            self.current = None;
        }
        for slot in self.slots.iter_mut().flatten() {
            if slot.session.as_deref() == Some(session) {
                slot.live = false;
            }
        }
    }

    pub(crate) fn slot_session(&self, index: usize) -> Option<String> {
        self.slots.get(index)?.as_ref()?.session.clone()
    }

    /// Connection `index` stops receiving dispatches (they go to the log only).
    pub(crate) fn unlive(&mut self, index: usize) {
        if let Some(Some(slot)) = self.slots.get_mut(index) {
            slot.live = false;
        }
    }

    /// Connection `index` takes no more commands.
    pub(crate) fn shut(&mut self, index: usize) {
        if let Some(Some(slot)) = self.slots.get_mut(index) {
            slot.live = false;
            slot.open = false;
        }
    }

    /// The simulator closes connection `index` with `code`.
    pub(crate) fn server_closing(&mut self, index: usize, code: Option<u16>) {
        self.shut(index);
        if code.is_some_and(|c| NON_RESUMABLE.contains(&c)) {
            if let Some(id) = self.slot_session(index) {
                self.invalidate(&id);
            }
        }
    }

    /// The newest connection that still takes commands.
    fn target(&self) -> Option<usize> {
        self.slots.iter().enumerate().rev().find(|(_, s)| s.as_ref().is_some_and(|s| s.open)).map(|(i, _)| i)
    }

    fn send_to(&self, index: usize, cmd: Command) -> bool {
        match self.slots.get(index) {
            Some(Some(slot)) => slot.tx.send(cmd).is_ok(),
            _ => false,
        }
    }

    fn is_live(&self) -> bool {
        let Some(id) = self.current.as_deref() else {
            return false;
        };
        self.slots.iter().flatten().any(|s| s.live && s.open && s.session.as_deref() == Some(id))
    }
}

/// State shared by the simulator handle and its threads.
pub(crate) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    pub(crate) shutdown: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` under the lock, then wakes every waiter.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.notify_all();
        r
    }
}

/// A scripted fake Discord gateway on `127.0.0.1`. See the [module
/// docs](super). All methods take `&self` and may be called from any thread;
/// dropping it stops every thread and closes the listener.
///
/// Controls that act on "the connection" (such as [`reconnect`](Self::reconnect))
/// target the newest connection that is open and has not been told to close
/// or drop; they return `false` when there is none.
pub struct Simulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator").field("addr", &self.addr).finish()
    }
}

impl Simulator {
    /// Binds `127.0.0.1:0` and starts accepting connections.
    pub fn start(config: SimulatorConfig) -> io::Result<Simulator> {
        Self::start_on(0, config)
    }

    /// Like [`start`](Self::start) on a chosen port (`0`: ephemeral).
    pub fn start_on(port: u16, config: SimulatorConfig) -> io::Result<Simulator> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let resume_url = config.resume_url.clone().unwrap_or_else(|| format!("ws://{addr}{RESUME_PATH}"));
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(addr.port());
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                cfg: config,
                resume_url,
                sessions: HashMap::new(),
                current: None,
                session_counter: 0,
                seed,
                conns: Vec::new(),
                slots: Vec::new(),
                frames: Vec::new(),
                closes: Vec::new(),
                sent: Vec::new(),
            }),
            changed: Condvar::new(),
            shutdown: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("gateway-sim-accept-{}", addr.port()))
                .spawn(move || accept_loop(&shared, &listener))?
        };
        Ok(Simulator { shared, addr, accept: Some(accept) })
    }

    /// The base URL, `ws://127.0.0.1:PORT`; clients append
    /// `/?v=10&encoding=json[&compress=zlib-stream]`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The `resume_gateway_url` READY carries.
    pub fn resume_url(&self) -> String {
        self.shared.lock().resume_url.clone()
    }

    /// Commits a dispatch to the current session with the next `s` and sends
    /// it to the session's live connection, if any (otherwise it waits in the
    /// log for a resume). Returns its `s`, or `None` when there is no valid
    /// session (nothing is committed then).
    pub fn dispatch(&self, event: &str, d: Value) -> Option<u64> {
        self.shared.update(|st| st.commit_current(event, &d))
    }

    /// [`dispatch`](Self::dispatch) for each `(event, d)` in order, atomically
    /// with respect to other controls. Returns the `s` of each committed one.
    pub fn dispatch_many<I, S>(&self, events: I) -> Vec<u64>
    where
        I: IntoIterator<Item = (S, Value)>,
        S: AsRef<str>,
    {
        self.shared
            .update(|st| events.into_iter().map_while(|(event, d)| st.commit_current(event.as_ref(), &d)).collect())
    }

    /// Sends Reconnect (op 7). The connection stops receiving dispatches at
    /// once; later ones go to the log, for the resume.
    pub fn reconnect(&self) -> bool {
        self.shared.update(|st| {
            st.target().is_some_and(|i| {
                st.unlive(i);
                st.send_to(i, Command::Payload(op_frame(7, "null")))
            })
        })
    }

    /// Sends Invalid Session (op 9) with `d = resumable`. The connection stops
    /// receiving dispatches and must identify or resume again; with `false`
    /// the session is also invalidated in the simulator.
    pub fn invalid_session(&self, resumable: bool) -> bool {
        self.shared.update(|st| {
            st.target().is_some_and(|i| {
                st.unlive(i);
                if !resumable {
                    if let Some(id) = st.slot_session(i) {
                        st.invalidate(&id);
                    }
                }
                st.send_to(i, Command::InvalidSession(resumable))
            })
        })
    }

    /// Sends a close frame with any `code`. Codes the gateway documents as
    /// not resumable (4001, 4003–4005, 4007, 4009–4014) also invalidate the
    /// session.
    pub fn close(&self, code: u16) -> bool {
        self.close_with(Some(code))
    }

    /// Sends a close frame without a status code (the client sees 1005).
    pub fn close_without_code(&self) -> bool {
        self.close_with(None)
    }

    fn close_with(&self, code: Option<u16>) -> bool {
        self.shared.update(|st| {
            st.target().is_some_and(|i| {
                let sent = st.send_to(i, Command::Close(code));
                st.server_closing(i, code);
                sent
            })
        })
    }

    /// Drops the TCP stream without a close frame; the session stays
    /// resumable.
    pub fn drop_connection(&self) -> bool {
        self.shared.update(|st| {
            st.target().is_some_and(|i| {
                let sent = st.send_to(i, Command::Drop);
                st.shut(i);
                sent
            })
        })
    }

    /// Sends `text` as a text WebSocket message, never compressed.
    pub fn send_raw_text(&self, text: &str) -> bool {
        self.command(Command::RawText(text.to_owned()))
    }

    /// Sends `payload` like any server payload: compressed into the
    /// connection's zlib stream when compression is on, else as text.
    pub fn send_raw_payload(&self, payload: &str) -> bool {
        self.command(Command::Payload(payload.to_owned()))
    }

    /// Sends `bytes` as one binary WebSocket message, outside the zlib stream.
    pub fn send_raw_binary(&self, bytes: &[u8]) -> bool {
        self.command(Command::RawBinary(bytes.to_vec()))
    }

    /// Sends a binary message of invalid zlib data that ends in `00 00 ff ff`.
    pub fn send_corrupt_frame(&self) -> bool {
        self.command(Command::Corrupt)
    }

    /// Sends a server heartbeat request (op 1).
    pub fn request_heartbeat(&self) -> bool {
        self.command(Command::Payload(op_frame(1, "null")))
    }

    fn command(&self, cmd: Command) -> bool {
        let st = self.shared.lock();
        st.target().is_some_and(|i| st.send_to(i, cmd))
    }

    /// Stops (`true`) or resumes (`false`) answering heartbeats with op 11.
    pub fn withhold_acks(&self, withhold: bool) {
        self.shared.update(|st| st.cfg.withhold_acks = withhold);
    }

    /// Sets the behaviour for later connections (see [`OnConnect`]); clears
    /// nothing from the one-shot queue.
    pub fn set_on_connect(&self, behaviour: OnConnect) {
        self.shared.update(|st| st.cfg.on_connect = behaviour);
    }

    /// Queues a one-shot behaviour for the next connection (see
    /// [`SimulatorConfig::on_next_connect`]).
    pub fn push_on_connect(&self, behaviour: OnConnect) {
        self.shared.update(|st| st.cfg.on_connect_queue.push_back(behaviour));
    }

    /// Changes [`SimulatorConfig::split_frames`] for later payloads.
    pub fn set_split_frames(&self, k: usize) {
        self.shared.update(|st| st.cfg.split_frames = k);
    }

    /// Expires the current session silently: a later Resume gets op 9
    /// `d:false`, and [`dispatch`](Self::dispatch) returns `None` until a new
    /// READY.
    pub fn invalidate_session(&self) {
        self.shared.update(|st| {
            if let Some(id) = st.current.clone() {
                st.invalidate(&id);
            }
        });
    }

    /// The current session's id (the last one READY or RESUMED, while valid).
    pub fn session_id(&self) -> Option<String> {
        self.shared.lock().current.clone()
    }

    /// The last `s` used in the current session (RESUMED included).
    pub fn last_seq(&self) -> Option<u64> {
        let st = self.shared.lock();
        let id = st.current.as_deref()?;
        st.sessions.get(id).map(|s| s.last_seq)
    }

    /// Every dispatch committed to the current session (READY included,
    /// RESUMED not), in `s` order.
    pub fn session_log(&self) -> Vec<LoggedDispatch> {
        let st = self.shared.lock();
        st.current.as_deref().and_then(|id| st.sessions.get(id)).map(|s| s.log.clone()).unwrap_or_default()
    }

    /// Whether the current session is READY/RESUMED on an open connection.
    pub fn is_live(&self) -> bool {
        self.shared.lock().is_live()
    }

    /// Every accepted connection, in accept order.
    pub fn connections(&self) -> Vec<ConnectionRecord> {
        self.shared.lock().conns.clone()
    }

    /// Every frame clients sent, in arrival order.
    pub fn client_frames(&self) -> Vec<ClientFrame> {
        self.shared.lock().frames.clone()
    }

    fn frames_with_op(&self, op: u64) -> Vec<ClientFrame> {
        let st = self.shared.lock();
        st.frames.iter().filter(|f| f.op == Some(op)).cloned().collect()
    }

    /// Every Identify (op 2) clients sent.
    pub fn identifies(&self) -> Vec<ClientFrame> {
        self.frames_with_op(2)
    }

    /// Every Resume (op 6) clients sent.
    pub fn resumes(&self) -> Vec<ClientFrame> {
        self.frames_with_op(6)
    }

    /// Every Heartbeat (op 1) clients sent.
    pub fn heartbeats(&self) -> Vec<ClientFrame> {
        self.frames_with_op(1)
    }

    /// Every close frame clients sent (first or in reply).
    pub fn client_closes(&self) -> Vec<ClientClose> {
        self.shared.lock().closes.clone()
    }

    /// Every payload the simulator sent, before compression.
    pub fn server_frames(&self) -> Vec<ServerFrame> {
        self.shared.lock().sent.clone()
    }

    fn wait(&self, timeout: Duration, mut done: impl FnMut(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if done(&st) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = match self.shared.changed.wait_timeout(st, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Waits until at least `n` connections have been accepted.
    pub fn wait_for_connections(&self, n: usize, timeout: Duration) -> bool {
        self.wait(timeout, |st| st.conns.len() >= n)
    }

    /// Waits until connection `index` has ended.
    pub fn wait_for_connection_end(&self, index: usize, timeout: Duration) -> bool {
        self.wait(timeout, |st| st.conns.get(index).is_some_and(|c| c.ended_at.is_some()))
    }

    /// Waits until `done` holds for all client frames so far.
    pub fn wait_for_frames(&self, mut done: impl FnMut(&[ClientFrame]) -> bool, timeout: Duration) -> bool {
        self.wait(timeout, |st| done(&st.frames))
    }

    /// Waits for a client frame matching `matches` (including ones already
    /// received) and returns the first one.
    pub fn wait_for_frame(
        &self,
        mut matches: impl FnMut(&ClientFrame) -> bool,
        timeout: Duration,
    ) -> Option<ClientFrame> {
        let mut found = None;
        self.wait(timeout, |st| {
            found = st.frames.iter().find(|f| matches(f)).cloned();
            found.is_some()
        });
        found
    }

    /// Waits until at least `n` client close frames have been received.
    pub fn wait_for_client_closes(&self, n: usize, timeout: Duration) -> bool {
        self.wait(timeout, |st| st.closes.len() >= n)
    }

    /// Waits until a session is READY or RESUMED on an open connection.
    pub fn wait_until_live(&self, timeout: Duration) -> bool {
        self.wait(timeout, State::is_live)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        // The accept loop blocks (no polling delay on connect); wake it.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port()));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let threads = std::mem::take(&mut *self.shared.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// `{"t":null,"s":null,"op":OP,"d":D}`.
pub(crate) fn op_frame(op: u8, d: &str) -> String {
    format!("{{\"t\":null,\"s\":null,\"op\":{op},\"d\":{d}}}")
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    // TODO: enforce max_concurrency (op 9 for a second Identify in the same
    // `shard_id % max_concurrency` bucket within 5 s) once a test needs it.
    while !shared.shutdown.load(Ordering::SeqCst) {
        let stream = match listener.accept() {
            Ok((_, _)) if shared.shutdown.load(Ordering::SeqCst) => return,
            Ok((stream, _)) => stream,
            Err(_) => {
                thread::sleep(POLL);
                continue;
            }
        };
        let (index, behaviour) = shared.update(|st| {
            let behaviour = st.cfg.on_connect_queue.pop_front().unwrap_or_else(|| st.cfg.on_connect.clone());
            let index = st.conns.len();
            st.conns.push(ConnectionRecord {
                index,
                opened_at: Instant::now(),
                on_connect: behaviour.clone(),
                handshake: false,
                path: String::new(),
                query: String::new(),
                version: None,
                encoding: None,
                compress: None,
                compressed: false,
                via_resume_url: false,
                session_id: None,
                ended_at: None,
                end: None,
            });
            st.slots.push(None);
            (index, behaviour)
        });
        let worker = {
            let shared = Arc::clone(shared);
            thread::Builder::new()
                .name(format!("gateway-sim-conn-{index}"))
                .spawn(move || conn::serve(&shared, index, stream, behaviour))
        };
        match worker {
            Ok(handle) => {
                let mut threads = shared.threads.lock().unwrap_or_else(PoisonError::into_inner);
                threads.retain(|t| !t.is_finished());
                threads.push(handle);
            }
            Err(_) => shared.update(|st| {
                if let Some(rec) = st.conns.get_mut(index) {
                    rec.ended_at = Some(Instant::now());
                    rec.end = Some(super::ConnectionEnd::ServerDrop);
                }
            }),
        }
    }
}
