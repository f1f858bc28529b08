//! The simulator's shared state: what every connection thread and the
//! test-facing [`Simulator`](super::Simulator) handle read and change under
//! one lock.

use std::collections::{BTreeMap, HashMap};
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::config::{IdentifyTooFast, SimulatorConfig};
use super::record::{ClientClose, ClientFrame, ConnectionRecord, IdentifyRecord, LoggedDispatch, ServerFrame};
use crate::shard_id::ShardId;

/// How long the accept loop backs off after a failed `accept` (e.g. out of
/// file descriptors).
pub(crate) const POLL: Duration = Duration::from_millis(5);

/// Stack size of a connection thread. Connection threads only parse and
/// build small JSON values and run one deflate stream.
pub(crate) const CONN_STACK: usize = 256 * 1024;

/// Path of the default `resume_gateway_url`.
pub(crate) const RESUME_PATH: &str = "/resumed-host";

/// Server close codes after which the session cannot be resumed (every code
/// `docs/close-codes.md#gateway-close-codes` identifies or stops after); the
/// simulator invalidates the session when it sends one.
const NON_RESUMABLE: [u16; 11] = [4001, 4003, 4004, 4005, 4007, 4009, 4010, 4011, 4012, 4013, 4014];

/// A request from the test thread to a connection thread.
pub(crate) enum Command {
    /// A payload, compressed when the connection is.
    Payload(String),
    /// A text WebSocket message, never compressed.
    RawText(String),
    /// A binary WebSocket message, never compressed.
    RawBinary(Vec<u8>),
    /// Bytes the connection's compressed stream cannot continue with.
    Corrupt,
    /// op 9 with this `d`; the connection is no longer authenticated.
    InvalidSession(bool),
    /// A close frame (`None`: without a code).
    Close(Option<u16>),
    /// Drop the TCP stream without a close frame.
    Drop,
}

/// Everything that wakes a connection thread, in arrival order. The thread
/// blocks on its channel: an idle connection costs no wake-ups.
pub(crate) enum Input {
    /// A request from the test.
    Command(Command),
    /// Bytes the client sent, from the connection's reader thread.
    Bytes(Vec<u8>),
    /// The client's side of the stream ended: EOF (`None`) or a read error.
    ReadEnd(Option<ErrorKind>),
    /// The simulator is shutting down.
    Shutdown,
}

/// The test's handle on one open connection.
pub(crate) struct Slot {
    pub(crate) tx: Sender<Input>,
    /// Still usable for commands (no close or drop decided yet).
    pub(crate) open: bool,
    /// The session it identified or resumed into.
    pub(crate) session: Option<String>,
}

/// A gateway session; it outlives connections.
pub(crate) struct Session {
    pub(crate) log: Vec<LoggedDispatch>,
    pub(crate) last_seq: u64,
    pub(crate) valid: bool,
    /// The shard it identified with (`[0, 1]` without `shard`); a resume keeps it.
    pub(crate) shard: ShardId,
    /// The open connection it is READY/RESUMED on: dispatches committed to it
    /// are sent there. Invariant: `Some(i)` only while the session is valid,
    /// slot `i` is open and slot `i`'s session is this one.
    pub(crate) live: Option<usize>,
}

/// Everything behind the simulator's lock.
pub(crate) struct State {
    pub(crate) cfg: SimulatorConfig,
    pub(crate) resume_url: String,
    pub(crate) sessions: HashMap<String, Session>,
    /// The session `dispatch` commits to.
    pub(crate) current: Option<String>,
    pub(super) session_counter: u64,
    pub(super) seed: u64,
    pub(crate) conns: Vec<ConnectionRecord>,
    pub(crate) slots: Vec<Option<Slot>>,
    pub(crate) frames: Vec<ClientFrame>,
    pub(crate) closes: Vec<ClientClose>,
    pub(crate) sent: Vec<ServerFrame>,
    /// Valid sessions per shard, least recently READY/RESUMED first.
    pub(super) by_shard: HashMap<ShardId, Vec<String>>,
    /// How many valid sessions there are per shard total.
    pub(super) totals: BTreeMap<u32, usize>,
    /// How many sessions are live (`Session::live` is `Some`).
    pub(super) live_sessions: usize,
    /// Every well-formed Identify, accepted or not.
    pub(crate) identify_log: Vec<IdentifyRecord>,
    pub(super) accepted_identifies: usize,
    /// When each concurrency bucket last accepted an Identify.
    pub(super) last_identify: HashMap<u32, Instant>,
    /// Reader threads stop reading client bytes (see `Simulator::pause_reading`).
    pub(crate) reading_paused: bool,
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
    pub(super) fn new(cfg: SimulatorConfig, resume_url: String, seed: u64) -> State {
        State {
            cfg,
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
            by_shard: HashMap::new(),
            totals: BTreeMap::new(),
            live_sessions: 0,
            identify_log: Vec::new(),
            accepted_identifies: 0,
            last_identify: HashMap::new(),
            reading_paused: false,
        }
    }

    pub(crate) fn new_session_id(&mut self) -> String {
        self.session_counter += 1;
        let a = splitmix(self.seed ^ self.session_counter);
        let b = splitmix(a ^ self.session_counter.rotate_left(32));
        format!("{a:016x}{b:016x}")
    }

    /// Starts a valid session for `shard`.
    pub(crate) fn new_session(&mut self, shard: ShardId) -> String {
        let id = self.new_session_id();
        self.sessions.insert(id.clone(), Session { log: Vec::new(), last_seq: 0, valid: true, shard, live: None });
        self.by_shard.entry(shard).or_default().push(id.clone());
        *self.totals.entry(shard.total).or_default() += 1;
        id
    }

    /// Checks an Identify from connection `index` against the concurrency limit
    /// (`docs/rate-limits.md#identify-concurrency`) and records it. `Err`
    /// carries what to answer when it is too fast; it then counts for nothing.
    pub(crate) fn admit_identify(&mut self, index: usize, shard: Option<ShardId>) -> Result<(), IdentifyTooFast> {
        let now = Instant::now();
        let max = self.cfg.max_concurrency;
        let bucket = (max > 0).then(|| shard.map_or(0, |s| s.id) % max);
        let window = self.cfg.identify_window;
        let too_fast = bucket
            .and_then(|b| self.last_identify.get(&b))
            .is_some_and(|last| now.saturating_duration_since(*last) < window);
        self.identify_log.push(IdentifyRecord { at: now, connection: index, shard, bucket, accepted: !too_fast });
        if too_fast {
            return Err(self.cfg.on_identify_too_fast);
        }
        if let Some(b) = bucket {
            self.last_identify.insert(b, now);
        }
        self.accepted_identifies += 1;
        Ok(())
    }

    /// Logs a dispatch in a valid session and returns `(s, frame)`.
    pub(crate) fn commit(&mut self, session: &str, event: &str, d: &Value) -> Option<(u64, String)> {
        let s = self.sessions.get_mut(session).filter(|s| s.valid)?;
        s.last_seq += 1;
        let frame = dispatch_frame(event, s.last_seq, d);
        s.log.push(LoggedDispatch { seq: s.last_seq, event: event.to_owned(), frame: frame.clone() });
        Some((s.last_seq, frame))
    }

    /// Commits to `session` and sends to its live connection, if any.
    pub(super) fn commit_to(&mut self, session: &str, event: &str, d: &Value) -> Option<u64> {
        let (seq, frame) = self.commit(session, event, d)?;
        if let Some(index) = self.sessions.get(session).and_then(|s| s.live) {
            self.send_to(index, Command::Payload(frame));
        }
        Some(seq)
    }

    /// Commits to the current session and sends to its live connection.
    pub(super) fn commit_current(&mut self, event: &str, d: &Value) -> Option<u64> {
        let id = self.current.clone()?;
        self.commit_to(&id, event, d)
    }

    /// The newest valid session of `shard` (the last one READY or RESUMED).
    pub(super) fn shard_session(&self, shard: ShardId) -> Option<&String> {
        self.by_shard.get(&shard)?.last()
    }

    /// Commits to the newest valid session of `shard`.
    pub(super) fn commit_shard(&mut self, shard: ShardId, event: &str, d: &Value) -> Option<u64> {
        let id = self.shard_session(shard)?.clone();
        self.commit_to(&id, event, d)
    }

    /// Commits to every shard set that routes `guild_id`
    /// (`docs/sharding.md#several-totals-side-by-side`).
    pub(super) fn commit_guild(&mut self, guild_id: u64, event: &str, d: &Value) -> Vec<(ShardId, u64)> {
        let shards: Vec<ShardId> = self
            .totals
            .iter()
            .filter(|(_, n)| **n > 0)
            .filter_map(|(total, _)| ShardId::for_guild(guild_id, *total))
            .collect();
        shards.into_iter().filter_map(|shard| Some((shard, self.commit_shard(shard, event, d)?))).collect()
    }

    /// The newest live connection of `shard`.
    pub(super) fn shard_target(&self, shard: ShardId) -> Option<usize> {
        let ids = self.by_shard.get(&shard)?;
        ids.iter().rev().find_map(|id| self.sessions.get(id)?.live)
    }

    pub(super) fn clear_live(&mut self, session: &str) {
        if let Some(s) = self.sessions.get_mut(session) {
            if s.live.take().is_some() {
                self.live_sessions -= 1;
            }
        }
    }

    /// Makes connection `index` the live connection of `session`, and
    /// `session` the current one and the newest of its shard.
    pub(crate) fn bind(&mut self, index: usize, session: &str) {
        self.unlive(index);
        let open = match self.slots.get_mut(index) {
            Some(Some(slot)) => {
                slot.session = Some(session.to_owned());
                slot.open
            }
            _ => false,
        };
        if let Some(s) = self.sessions.get_mut(session).filter(|s| s.valid) {
            if open && s.live.replace(index).is_none() {
                self.live_sessions += 1;
            }
            if let Some(ids) = self.by_shard.get_mut(&s.shard) {
                if let Some(pos) = ids.iter().position(|id| id == session) {
                    let id = ids.remove(pos);
                    ids.push(id);
                }
            }
        }
        if let Some(rec) = self.conns.get_mut(index) {
            rec.session_id = Some(session.to_owned());
        }
        self.current = Some(session.to_owned());
    }

    /// Ends a session: resumes get op 9, dispatches are refused.
    pub(crate) fn invalidate(&mut self, session: &str) {
        self.clear_live(session);
        if let Some(s) = self.sessions.get_mut(session).filter(|s| s.valid) {
            s.valid = false;
            let shard = s.shard;
            if let Some(ids) = self.by_shard.get_mut(&shard) {
                ids.retain(|id| id != session);
            }
            if let Some(n) = self.totals.get_mut(&shard.total) {
                *n = n.saturating_sub(1);
            }
        }
        if self.current.as_deref() == Some(session) {
            self.current = None;
        }
    }

    pub(crate) fn slot_session(&self, index: usize) -> Option<String> {
        self.slots.get(index)?.as_ref()?.session.clone()
    }

    /// Connection `index` stops receiving dispatches (they go to the log only).
    pub(crate) fn unlive(&mut self, index: usize) {
        if let Some(id) = self.slot_session(index) {
            if self.sessions.get(&id).is_some_and(|s| s.live == Some(index)) {
                self.clear_live(&id);
            }
        }
    }

    /// Connection `index` takes no more commands.
    pub(crate) fn shut(&mut self, index: usize) {
        self.unlive(index);
        if let Some(Some(slot)) = self.slots.get_mut(index) {
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
    pub(super) fn target(&self) -> Option<usize> {
        self.slots.iter().enumerate().rev().find(|(_, s)| s.as_ref().is_some_and(|s| s.open)).map(|(i, _)| i)
    }

    pub(super) fn send_to(&self, index: usize, cmd: Command) -> bool {
        match self.slots.get(index) {
            Some(Some(slot)) => slot.tx.send(Input::Command(cmd)).is_ok(),
            _ => false,
        }
    }

    /// Sends op 7 to connection `index`; it stops receiving dispatches.
    pub(super) fn reconnect_at(&mut self, index: usize) -> bool {
        self.unlive(index);
        self.send_to(index, Command::Payload(op_frame(7, "null")))
    }

    /// Sends op 9 to connection `index`; `false` also invalidates its session.
    pub(super) fn invalid_session_at(&mut self, index: usize, resumable: bool) -> bool {
        self.unlive(index);
        if !resumable {
            if let Some(id) = self.slot_session(index) {
                self.invalidate(&id);
            }
        }
        self.send_to(index, Command::InvalidSession(resumable))
    }

    /// Closes connection `index` with `code`.
    pub(super) fn close_at(&mut self, index: usize, code: Option<u16>) -> bool {
        let sent = self.send_to(index, Command::Close(code));
        self.server_closing(index, code);
        sent
    }

    /// Drops connection `index` without a close frame.
    pub(super) fn drop_at(&mut self, index: usize) -> bool {
        let sent = self.send_to(index, Command::Drop);
        self.shut(index);
        sent
    }

    pub(super) fn is_live(&self) -> bool {
        self.current.as_deref().and_then(|id| self.sessions.get(id)).is_some_and(|s| s.live.is_some())
    }
}

/// State shared by the simulator handle and its threads.
pub(crate) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) changed: Condvar,
    pub(crate) shutdown: AtomicBool,
    pub(super) threads: Mutex<Vec<JoinHandle<()>>>,
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

    /// Blocks while `waiting` holds; woken by every `update` and by shutdown.
    pub(crate) fn wait_while(&self, mut waiting: impl FnMut(&State) -> bool) {
        let mut st = self.lock();
        while waiting(&st) && !self.shutdown.load(Ordering::SeqCst) {
            st = self.changed.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// `{"t":null,"s":null,"op":OP,"d":D}`.
pub(crate) fn op_frame(op: u8, d: &str) -> String {
    format!("{{\"t\":null,\"s\":null,\"op\":{op},\"d\":{d}}}")
}
