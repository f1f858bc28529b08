//! [`Simulator`]: the listener and the test-facing controls (the state
//! they share with the connection threads is in `state`).

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::config::{IdentifyTooFast, OnConnect, SimulatorConfig};
use super::conn;
use super::record::{ClientClose, ClientFrame, ConnectionRecord, IdentifyRecord, LoggedDispatch, ServerFrame};
use super::state::{op_frame, Command, Input, Shared, State, CONN_STACK, POLL, RESUME_PATH};
use crate::shard_id::ShardId;

/// A scripted fake Discord gateway on `127.0.0.1`. See the [module
/// docs](super). All methods take `&self` and may be called from any thread;
/// dropping it stops every thread and closes the listener.
///
/// Controls that act on "the connection" (such as [`reconnect`](Self::reconnect))
/// target the newest connection that is open and has not been told to close
/// or drop; they return `false` when there is none. Their `*_shard`
/// variants target one shard's live connection instead.
pub struct Simulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// The accept thread, then the thread that starts connection threads.
    accept: Vec<JoinHandle<()>>,
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
        let listener = listen(port, config.receive_buffer)?;
        let addr = listener.local_addr()?;
        let resume_url = config.resume_url.clone().unwrap_or_else(|| format!("ws://{addr}{RESUME_PATH}"));
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(addr.port());
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(config, resume_url, seed)),
            changed: Condvar::new(),
            shutdown: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        });
        // The accept thread only accepts, so that a burst of connects drains
        // the listen backlog (128 with std) quickly; a second thread records
        // each connection and starts its thread, in accept order.
        let (tx, rx) = mpsc::channel();
        let spawner = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("gateway-sim-spawn-{}", addr.port()))
                .spawn(move || spawn_loop(&shared, &rx))?
        };
        let accept = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("gateway-sim-accept-{}", addr.port()))
                .spawn(move || accept_loop(&shared, &listener, &tx))?
        };
        Ok(Simulator { shared, addr, accept: vec![accept, spawner] })
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
        self.shared.update(|st| st.target().is_some_and(|i| st.reconnect_at(i)))
    }

    /// Sends Invalid Session (op 9) with `d = resumable`. The connection stops
    /// receiving dispatches and must identify or resume again; with `false`
    /// the session is also invalidated in the simulator.
    pub fn invalid_session(&self, resumable: bool) -> bool {
        self.shared.update(|st| st.target().is_some_and(|i| st.invalid_session_at(i, resumable)))
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
        self.shared.update(|st| st.target().is_some_and(|i| st.close_at(i, code)))
    }

    /// Drops the TCP stream without a close frame; the session stays
    /// resumable.
    pub fn drop_connection(&self) -> bool {
        self.shared.update(|st| st.target().is_some_and(|i| st.drop_at(i)))
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

    /// Sends a binary message the connection's decompressor must reject:
    /// invalid zlib data ending in `00 00 ff ff` on zlib-stream (and on an
    /// uncompressed connection), a zstd block of the reserved type on
    /// zstd-stream.
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

    /// Stops (`true`) or resumes (`false`) reading what clients send, on
    /// every connection: like a server whose TCP receive window is full, the
    /// client's bytes wait in the socket buffers and its writes soon block
    /// (sooner with a small [`SimulatorConfig::receive_buffer`]). Each reader
    /// thread stops after the read it is in (at most 8 KiB); messages read
    /// before are still handled. Nothing else changes: the simulator keeps
    /// sending, and a control such as [`drop_connection`](Self::drop_connection)
    /// still works.
    pub fn pause_reading(&self, paused: bool) {
        self.shared.update(|st| st.reading_paused = paused);
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

    /// Changes [`SimulatorConfig::heartbeat_interval`] for the Hello of
    /// connections whose WebSocket handshake completes later; open
    /// connections keep the interval they announced.
    pub fn set_heartbeat_interval(&self, interval: Duration) {
        self.shared.update(|st| st.cfg.heartbeat_interval = interval);
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

    // Identify concurrency (docs/rate-limits.md#identify-concurrency).

    /// Changes [`SimulatorConfig::max_concurrency`] for later Identifies
    /// (`0`: off) and forgets when each bucket last accepted one.
    pub fn set_max_concurrency(&self, max_concurrency: u32) {
        self.shared.update(|st| {
            st.cfg.max_concurrency = max_concurrency;
            st.last_identify.clear();
        });
    }

    /// Changes [`SimulatorConfig::identify_window`] for later Identifies.
    pub fn set_identify_window(&self, window: Duration) {
        self.shared.update(|st| st.cfg.identify_window = window);
    }

    /// Changes [`SimulatorConfig::on_identify_too_fast`] for later Identifies.
    pub fn set_on_identify_too_fast(&self, behaviour: IdentifyTooFast) {
        self.shared.update(|st| st.cfg.on_identify_too_fast = behaviour);
    }

    /// Every well-formed Identify (valid token, shard and intents), accepted
    /// or rejected by the concurrency limit, in arrival order.
    pub fn identify_log(&self) -> Vec<IdentifyRecord> {
        self.shared.lock().identify_log.clone()
    }

    /// The Identifies the concurrency limit rejected, in arrival order.
    pub fn identify_violations(&self) -> Vec<IdentifyRecord> {
        self.shared.lock().identify_log.iter().filter(|r| !r.accepted).cloned().collect()
    }

    /// Waits until at least `accepted` Identifies have started a session.
    pub fn wait_for_identifies(&self, accepted: usize, timeout: Duration) -> bool {
        self.wait(timeout, |st| st.accepted_identifies >= accepted)
    }

    // Many shards at once (docs/sharding.md#shard-formula). A session belongs to the
    // shard it identified with (`[0, 1]` for an Identify without `shard`),
    // and a resume keeps it. "The shard's session" is its newest valid one
    // (the last READY or RESUMED); "the shard's connection" is the newest
    // live connection among its valid sessions.

    /// Commits a dispatch to `shard`'s session and sends it to its live
    /// connection, if any (otherwise it waits in the log for a resume).
    /// Returns its `s`, or `None` when the shard has no valid session.
    pub fn dispatch_to_shard(&self, shard: ShardId, event: &str, d: Value) -> Option<u64> {
        self.shared.update(|st| st.commit_shard(shard, event, &d))
    }

    /// Commits a guild's dispatch to every shard set that routes it: for each
    /// `total` among valid sessions, the session of shard `(guild_id >> 22) %
    /// total` (`docs/sharding.md#shard-formula`), if it has one. Several totals
    /// side by side model resharding with no downtime. Returns each shard
    /// reached with its `s`, by ascending `total`.
    pub fn dispatch_guild(&self, guild_id: u64, event: &str, d: Value) -> Vec<(ShardId, u64)> {
        self.shared.update(|st| st.commit_guild(guild_id, event, &d))
    }

    /// The shards of every live session (READY/RESUMED on an open
    /// connection), sorted; a shard appears once per live session.
    pub fn live_shards(&self) -> Vec<ShardId> {
        let st = self.shared.lock();
        let mut shards: Vec<ShardId> = st.sessions.values().filter(|s| s.live.is_some()).map(|s| s.shard).collect();
        shards.sort_unstable();
        shards
    }

    /// Waits until at least `n` sessions are live at once.
    pub fn wait_for_live_shards(&self, n: usize, timeout: Duration) -> bool {
        self.wait(timeout, |st| st.live_sessions >= n)
    }

    /// The id of `shard`'s session.
    pub fn shard_session_id(&self, shard: ShardId) -> Option<String> {
        self.shared.lock().shard_session(shard).cloned()
    }

    /// Every dispatch committed to `shard`'s session (READY included,
    /// RESUMED not), in `s` order.
    pub fn shard_session_log(&self, shard: ShardId) -> Vec<LoggedDispatch> {
        let st = self.shared.lock();
        st.shard_session(shard).and_then(|id| st.sessions.get(id)).map(|s| s.log.clone()).unwrap_or_default()
    }

    /// [`close`](Self::close) on `shard`'s connection; `false` when it has none.
    pub fn close_shard(&self, shard: ShardId, code: u16) -> bool {
        self.shared.update(|st| st.shard_target(shard).is_some_and(|i| st.close_at(i, Some(code))))
    }

    /// [`reconnect`](Self::reconnect) (op 7) on `shard`'s connection; `false`
    /// when it has none.
    pub fn reconnect_shard(&self, shard: ShardId) -> bool {
        self.shared.update(|st| st.shard_target(shard).is_some_and(|i| st.reconnect_at(i)))
    }

    /// [`invalid_session`](Self::invalid_session) (op 9) on `shard`'s
    /// connection; `false` when it has none.
    pub fn invalid_session_shard(&self, shard: ShardId, resumable: bool) -> bool {
        self.shared.update(|st| st.shard_target(shard).is_some_and(|i| st.invalid_session_at(i, resumable)))
    }

    /// [`drop_connection`](Self::drop_connection) on `shard`'s connection;
    /// `false` when it has none.
    pub fn drop_shard_connection(&self, shard: ShardId) -> bool {
        self.shared.update(|st| st.shard_target(shard).is_some_and(|i| st.drop_at(i)))
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        // The accept loop blocks (no polling delay on connect); wake it.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port()));
        for t in self.accept.drain(..) {
            let _ = t.join();
        }
        // Connection threads block on their channel; wake each one.
        for slot in self.shared.lock().slots.iter().flatten() {
            let _ = slot.tx.send(Input::Shutdown);
        }
        let threads = std::mem::take(&mut *self.shared.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Listen backlog: std's `TcpListener::bind` uses 128, which a burst of
/// 1,000 connects overflows (a dropped SYN then costs the client a 1 s
/// retransmission). The kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 4096;

/// A listener on `127.0.0.1:port` with a [`BACKLOG`]-long accept queue;
/// accepted sockets inherit `receive_buffer`.
fn listen(port: u16, receive_buffer: Option<usize>) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    if let Some(bytes) = receive_buffer {
        socket.set_recv_buffer_size(bytes)?;
    }
    // As std does on Unix, so that a restarted simulator can reuse its port.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

fn accept_loop(shared: &Shared, listener: &TcpListener, tx: &Sender<TcpStream>) {
    while !shared.shutdown.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((_, _)) if shared.shutdown.load(Ordering::SeqCst) => return,
            Ok((stream, _)) => {
                if tx.send(stream).is_err() {
                    return;
                }
            }
            Err(_) => thread::sleep(POLL),
        }
    }
}

/// Records each accepted stream and starts its connection thread.
fn spawn_loop(shared: &Arc<Shared>, rx: &Receiver<TcpStream>) {
    for stream in rx {
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
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
                .stack_size(CONN_STACK)
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
