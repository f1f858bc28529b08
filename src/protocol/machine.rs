//! The per-shard gateway state machine (`docs/connection.md#state-machine`), sans-IO.
//!
//! Inputs carry `now`; outputs are polled. Nothing here reads a clock, opens a
//! socket or spawns a task, so every rule is testable with a fake clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use super::backoff::{Backoff, FailureKind};
use super::close_code::{classify, CloseAction, FatalError, FINAL_CLOSE, RESUMABLE_CLOSE};
use super::command::{Command, CommandError};
#[cfg(any(feature = "zlib", feature = "zstd"))]
use super::compression::Compression;
use super::config::{Config, MAX_HEARTBEAT_INTERVAL};
use super::event::{Action, CloseMode, DisconnectReason, Event, Status};
use super::heartbeat::{Beat, Heartbeat};
use super::latency::Latency;
use super::opcode::OpCode;
use super::payload::{self, MAX_OUTBOUND_SIZE};
use super::ratelimit::{Priority, SendLimiter};
use super::rng::Rng;
use super::stats::ShardStats;
use super::url::{check_resume_url, gateway_url};
use super::validate::{ConfigError, ValidConfig};
use crate::codec::{Envelope, StrSpan};
use crate::dispatch::{Dispatch, FrameText};
use crate::session::Session;

/// Identifies a shard may spend on one payload it keeps failing on (the
/// third is refused: the shard stops instead).
const MAX_IDENTIFIES_ON_A_STUCK_PAYLOAD: u32 = 2;
/// The window of [`Config::max_identifies_per_day`].
const IDENTIFY_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// The generator's seed when the configuration sets none (the sans-IO core
/// stays deterministic; [`Shard`](crate::Shard) seeds from entropy).
const DEFAULT_RNG_SEED: u64 = 0x5eed;

/// One WebSocket message as the driver received it.
#[derive(Debug, Clone, Copy)]
pub enum Incoming<'a> {
    /// A text message: one JSON payload (copied once if it becomes a dispatch).
    Text(&'a str),
    /// A binary message: a piece of the zlib stream (or, uncompressed, JSON bytes).
    Binary(&'a [u8]),
}

/// A payload's text as the core got it.
enum PayloadText<'a> {
    /// Text in the driver's buffer: a dispatch copies it.
    Borrowed(&'a str),
    /// Text the core owns (a decompressed payload, or a WebSocket frame the
    /// driver handed over): a dispatch keeps it.
    Owned(FrameText),
}

impl PayloadText<'_> {
    fn as_str(&self) -> &str {
        match self {
            PayloadText::Borrowed(text) => text,
            PayloadText::Owned(text) => text.as_str(),
        }
    }

    /// The text for a dispatch to own: borrowed text is copied here, once.
    fn into_owned(self) -> FrameText {
        match self {
            PayloadText::Borrowed(text) => FrameText::Owned(text.to_owned()),
            PayloadText::Owned(text) => text,
        }
    }
}

/// Whether `frame` has the shape of an application command's frame,
/// `{"op":N,"d":…}` with an opcode the core does not own, within the size limit.
fn is_command_frame(frame: &str) -> bool {
    let Some(rest) = frame.strip_prefix("{\"op\":") else { return false };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let op = rest.get(..digits).and_then(|op| op.parse::<u64>().ok());
    frame.len() <= MAX_OUTBOUND_SIZE
        && rest.get(digits..).is_some_and(|after| after.starts_with(",\"d\":"))
        && op.is_some_and(|op| op <= u64::from(u8::MAX) && !OpCode::from_u64(op).is_some_and(OpCode::is_core_owned))
}

/// Whether `envelope`, read from `text`, is a READY.
fn is_ready(text: &str, envelope: &Envelope) -> bool {
    envelope.event.as_ref().is_some_and(|event| event.decode(text) == "READY")
}

/// Where the machine is. Connection-scoped data lives beside it in `Link`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting out a reconnect delay.
    Waiting {
        until: Instant,
    },
    /// `Action::Connect` issued, socket not yet open.
    Connecting {
        deadline: Instant,
    },
    AwaitingHello {
        deadline: Instant,
    },
    AwaitingIdentifyPermit,
    Identifying {
        deadline: Instant,
    },
    Resuming {
        deadline: Instant,
    },
    Active {
        since: Instant,
    },
    Closed,
    Terminated,
}

impl Phase {
    fn has_socket(self) -> bool {
        !matches!(self, Phase::Waiting { .. } | Phase::Connecting { .. } | Phase::Closed | Phase::Terminated)
    }
}

/// State of the current connection attempt; replaced on every connect
/// (`docs/connection.md#what-a-new-connection-resets`).
#[derive(Debug, Default)]
struct Link {
    resume: bool,
    /// A Resume (op 6) went out on this connection: only such a connection
    /// that ends before RESUMED counts as a failed resume (a failed connect
    /// or a missing Hello says nothing about the session).
    resume_sent: bool,
    via_resume_url: bool,
    heartbeat: Option<Heartbeat>,
    limiter: Option<SendLimiter>,
    reached_active: bool,
}

/// A point of the stream where connections keep failing on a payload the
/// client cannot accept (too large, or a compressed stream that breaks).
#[derive(Debug, Clone, Copy)]
struct Stuck {
    /// The last `s` received before the failing payload.
    after_seq: Option<u64>,
    /// The session `after_seq` counts in (`Core::sessions_started` then).
    session: u64,
    /// The furthest point this loop failed at in any of its sessions: a
    /// later session (its `s` counts from 1 again) is past the payload only
    /// once it is past this one.
    ceiling: Option<u64>,
    /// Consecutive connections that failed here, with no progress past it.
    failures: u32,
    /// Identifies sent while stuck here.
    identifies: u32,
    /// Whether the last failure was a payload over `max_message_size`.
    too_large: bool,
    /// The payload's size, when the WebSocket layer reported it.
    size: Option<usize>,
}

/// The session being kept, minus the sequence (tracked on its own,
/// `docs/connection.md#heartbeat-sequence`).
#[derive(Debug, Clone)]
struct SessionIds {
    id: String,
    resume_url: Option<String>,
}

#[derive(serde::Deserialize)]
struct HelloData {
    heartbeat_interval: u64,
}

#[derive(serde::Deserialize)]
struct ReadyData {
    session_id: String,
    #[serde(default)]
    resume_gateway_url: Option<String>,
}

/// Everything but the decompressor, so a payload borrowed from it can be
/// handed to it (disjoint borrows).
struct Core {
    config: Config,
    base_url: String,
    rng: Rng,
    phase: Phase,
    status: Status,
    link: Link,
    session: Option<SessionIds>,
    last_seq: Option<u64>,
    presence: Option<Box<RawValue>>,
    backoff: Backoff,
    resume_failures: u32,
    /// The driver is not reading the socket (the application is behind).
    reading_paused: bool,
    /// Payloads dropped because they could not be read (see `skip`).
    skipped_payloads: u64,
    /// The counters `Machine::stats` reports (its heartbeat and skipped
    /// counts come from `latency` and `skipped_payloads`).
    counters: ShardStats,
    /// Heartbeat round trips over the machine's life.
    latency: Latency,
    /// Where connections keep failing on an unacceptable payload, if they do.
    stuck: Option<Stuck>,
    /// Identifies sent so far: each starts a session whose `s` counts from 1 again.
    sessions_started: u64,
    /// When this shard identified in the last 24 hours (at most
    /// `max_identifies_per_day` entries).
    identifies: VecDeque<Instant>,
    commands: VecDeque<String>,
    /// Frames for the driver; `true` marks application commands, which go
    /// back to `commands` if the connection ends before they are taken.
    transmits: VecDeque<(String, bool)>,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
}

/// The sans-IO protocol state machine of one shard.
///
/// Feed it socket events with [`handle_open`](Machine::handle_open),
/// [`handle_message`](Machine::handle_message),
/// [`handle_close`](Machine::handle_close),
/// [`handle_connect_failed`](Machine::handle_connect_failed) and
/// [`handle_timeout`](Machine::handle_timeout); then drain
/// [`poll_action`](Machine::poll_action), [`poll_transmit`](Machine::poll_transmit),
/// [`poll_event`](Machine::poll_event) and arm a timer for
/// [`poll_timeout`](Machine::poll_timeout).
///
/// ```
/// use std::time::Instant;
/// use discord_gateway_stream::protocol::{Action, Compression, Incoming, Machine, Config};
/// use discord_gateway_stream::Intents;
///
/// let now = Instant::now();
/// let config = Config::new("token", Intents::GUILDS).compression(Compression::None);
/// let mut machine = Machine::new(config, now).unwrap();
/// assert_eq!(
///     machine.poll_action(),
///     Some(Action::Connect { url: "wss://gateway.discord.gg/?v=10&encoding=json".into() })
/// );
/// machine.handle_open(now);
/// machine.handle_message(now, Incoming::Text(r#"{"op":10,"d":{"heartbeat_interval":41250}}"#));
/// let identify = machine.poll_transmit().unwrap();
/// assert!(identify.starts_with(r#"{"op":2,"d":{"token":"token""#));
/// ```
pub struct Machine {
    core: Core,
    /// Built on the first connection that uses transport compression: an
    /// uncompressed shard never pays for a decompression context.
    #[cfg(any(feature = "zlib", feature = "zstd"))]
    decompressor: Option<crate::codec::Decompressor>,
    /// When the decompressor's working buffer is freed: [`RELEASE_AFTER`]
    /// after the last payload that needed a buffer that large
    /// (`codec::keeps_warm`), so a busy shard gives a burst's large buffer
    /// back too.
    #[cfg(any(feature = "zlib", feature = "zstd"))]
    release_at: Option<Instant>,
}

/// How long a decompressor keeps its working buffer after the last payload:
/// long enough to stay warm through a burst, short enough that a quiet shard
/// holds only its context.
#[cfg(any(feature = "zlib", feature = "zstd"))]
const RELEASE_AFTER: Duration = Duration::from_secs(1);

impl Machine {
    /// A machine that starts connecting at once (its first action is `Connect`).
    pub fn new(config: Config, now: Instant) -> Result<Machine, ConfigError> {
        Ok(Machine::with_valid(ValidConfig::new(config)?, now))
    }

    /// [`new`](Self::new) for a configuration checked already.
    pub(crate) fn with_valid(config: ValidConfig, now: Instant) -> Machine {
        let (config, base_url) = config.into_parts();
        let session =
            config.resume_from.as_ref().map(|s| SessionIds { id: s.id.clone(), resume_url: s.resume_url.clone() });
        let last_seq = config.resume_from.as_ref().map(|s| s.seq);
        let mut core = Core {
            rng: Rng::new(config.rng_seed.unwrap_or(DEFAULT_RNG_SEED)),
            presence: config.presence.clone(),
            config,
            base_url,
            phase: Phase::Closed,
            status: Status::Closed,
            link: Link::default(),
            session,
            last_seq,
            backoff: Backoff::new(),
            resume_failures: 0,
            reading_paused: false,
            skipped_payloads: 0,
            counters: ShardStats::default(),
            latency: Latency::default(),
            stuck: None,
            sessions_started: 0,
            identifies: VecDeque::new(),
            commands: VecDeque::new(),
            transmits: VecDeque::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
        };
        core.connect(now);
        Machine {
            #[cfg(any(feature = "zlib", feature = "zstd"))]
            decompressor: None,
            #[cfg(any(feature = "zlib", feature = "zstd"))]
            release_at: None,
            core,
        }
    }

    /// The socket asked for by the last `Connect` is open.
    pub fn handle_open(&mut self, now: Instant) {
        if !matches!(self.core.phase, Phase::Connecting { .. }) {
            tracing::debug!("socket open reported while not connecting; ignored");
            return;
        }
        #[cfg(any(feature = "zlib", feature = "zstd"))]
        self.open_decompressor();
        self.core.phase = Phase::AwaitingHello { deadline: now + self.core.config.hello_timeout };
        self.core.set_status(Status::AwaitingHello);
    }

    /// A new connection starts a new compressed stream: reset the shard's
    /// decompressor, building it on the first compressed connection.
    #[cfg(any(feature = "zlib", feature = "zstd"))]
    fn open_decompressor(&mut self) {
        use crate::codec::Decompressor;
        let max = self.core.config.max_message_size;
        let build: fn(usize) -> Decompressor = match self.core.config.compression {
            #[cfg(feature = "zlib")]
            Compression::ZlibStream => |max| Decompressor::Zlib(crate::codec::Inflater::new(max)),
            #[cfg(feature = "zstd")]
            Compression::ZstdStream => |max| Decompressor::Zstd(crate::codec::ZstdDecoder::new(max)),
            _ => return,
        };
        self.decompressor.get_or_insert_with(|| build(max)).reset();
    }

    /// The socket asked for by the last `Connect` could not be opened
    /// (refused, TLS failure, HTTP error during the upgrade).
    pub fn handle_connect_failed(&mut self, now: Instant) {
        if !matches!(self.core.phase, Phase::Connecting { .. }) {
            return;
        }
        self.core.lose(now, DisconnectReason::ConnectFailed, Loss::refused());
    }

    /// The server or the network closed the socket. `code` is the close
    /// frame's code; `None` when there was none (EOF, reset, 1005, 1006).
    pub fn handle_close(&mut self, now: Instant, code: Option<u16>) {
        match self.core.phase {
            Phase::Connecting { .. } => self.handle_connect_failed(now),
            phase if phase.has_socket() => self.core.on_close(now, code),
            _ => tracing::debug!(?code, "close reported with no connection; ignored"),
        }
    }

    /// A text message arrived whose bytes a dispatch may keep (the driver
    /// hands large uncompressed frames over instead of lending them): the
    /// same as [`Incoming::Text`], without the copy.
    pub(crate) fn handle_owned_text(&mut self, now: Instant, text: FrameText) {
        let len = text.as_str().len();
        self.on_socket_message(now, len, |machine| machine.core.on_payload(now, PayloadText::Owned(text)));
    }

    /// One WebSocket message arrived.
    pub fn handle_message(&mut self, now: Instant, message: Incoming<'_>) {
        let len = match message {
            Incoming::Text(text) => text.len(),
            Incoming::Binary(bytes) => bytes.len(),
        };
        self.on_socket_message(now, len, |machine| machine.decode_message(now, message));
    }

    /// What every WebSocket message of `len` bytes goes through, however
    /// the driver hands it over: ignored with no connection; otherwise
    /// counted, handled, and the commands it freed drained.
    fn on_socket_message(&mut self, now: Instant, len: usize, handle: impl FnOnce(&mut Self)) {
        if !self.core.phase.has_socket() {
            tracing::debug!("message with no connection; ignored");
            return;
        }
        self.core.count_message(len);
        handle(self);
        self.core.drain_commands(now);
    }

    /// A lent message's payload: decompressed or checked as UTF-8, then to
    /// the core.
    fn decode_message(&mut self, now: Instant, message: Incoming<'_>) {
        match message {
            Incoming::Text(text) => self.core.on_payload(now, PayloadText::Borrowed(text)),
            #[cfg(any(feature = "zlib", feature = "zstd"))]
            Incoming::Binary(bytes) if self.decompressor.is_some() => {
                match self.decompressor.as_mut().map(|decoder| decoder.push_owned(bytes)).unwrap_or(Ok(None)) {
                    Ok(None) => {}
                    Ok(Some(payload)) => {
                        let capacity = self.decompressor.as_ref().map_or(0, |d| d.buffer_capacity());
                        if capacity > 0
                            && (self.release_at.is_none() || crate::codec::keeps_warm(capacity, payload.len()))
                        {
                            self.release_at = Some(now + RELEASE_AFTER);
                        }
                        match String::from_utf8(payload) {
                            Ok(text) => self.core.on_payload(now, PayloadText::Owned(text.into())),
                            Err(error) => self.core.skip(None, &format_args!("not UTF-8: {error}")),
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "compressed stream unusable; reconnecting with a fresh decoder");
                        let too_large = error.is_too_large();
                        let reason = DisconnectReason::Decompression { error: error.to_string() };
                        let loss = Loss::dropped().close(RESUMABLE_CLOSE);
                        self.core.payload_failed(now, reason, loss, too_large, None);
                    }
                }
            }
            Incoming::Binary(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => self.core.on_payload(now, PayloadText::Borrowed(text)),
                Err(error) => self.core.skip(None, &format_args!("binary message not UTF-8: {error}")),
            },
        }
    }

    /// The WebSocket layer refused a message larger than
    /// [`Config::max_message_size`] (tungstenite's `MessageTooLong`) and the
    /// socket is gone. Like a close with no code, but counted: a payload the
    /// gateway sends again on every reconnect stops the shard with
    /// [`FatalError::PayloadTooLarge`] instead of looping (see
    /// [`Config::max_message_size`]).
    pub fn handle_message_too_large(&mut self, now: Instant, size: usize) {
        if !self.core.phase.has_socket() {
            tracing::debug!(size, "oversized message reported with no connection; ignored");
            return;
        }
        tracing::warn!(shard = %self.core.config.shard, size, limit = self.core.config.max_message_size, "message over max_message_size; reconnecting");
        let reason = DisconnectReason::MessageTooLarge { size };
        self.core.payload_failed(now, reason, Loss::dropped(), true, Some(size));
    }

    /// Time has reached `now`: fire every deadline that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        #[cfg(any(feature = "zlib", feature = "zstd"))]
        if self.release_at.is_some_and(|at| at <= now) {
            self.release_at = None;
            if let Some(decompressor) = self.decompressor.as_mut() {
                decompressor.release();
            }
        }
        self.core.on_timeout(now);
        self.core.drain_commands(now);
    }

    /// The driver found no more messages waiting on the socket. A
    /// decompressor's large working buffer (over 64 KiB) is given back now:
    /// it is worth keeping only while payloads arrive back to back (a burst
    /// of GUILD_CREATEs read from a full socket buffer), and a thousand
    /// shards that each kept one between bursts would hold a payload's
    /// worth of memory apiece. Cheap when there is nothing to give back.
    pub fn handle_read_idle(&mut self) {
        #[cfg(any(feature = "zlib", feature = "zstd"))]
        if let Some(decompressor) = self.decompressor.as_mut() {
            if !crate::codec::is_small(decompressor.buffer_capacity()) {
                decompressor.release();
            }
        }
    }

    /// The identify permit asked for by `RequestIdentifyPermit` is granted.
    /// A permit for a connection that has since ended is ignored.
    pub fn grant_identify(&mut self, now: Instant) {
        if self.core.phase == Phase::AwaitingIdentifyPermit {
            self.core.send_identify(now);
        } else {
            tracing::debug!("identify permit arrived with no identify pending; ignored");
        }
    }

    /// The driver stopped (`true`) or resumed (`false`) reading the socket
    /// because the application is behind. While paused, heartbeats go on but
    /// an unanswered one is not a zombie and the Hello/READY deadlines stand
    /// still: the answers are in the unread socket buffer. On resume the
    /// deadlines restart from `now`.
    pub fn set_reading_paused(&mut self, now: Instant, paused: bool) {
        if self.core.reading_paused == paused {
            return;
        }
        self.core.reading_paused = paused;
        if !paused {
            let config = &self.core.config;
            self.core.phase = match self.core.phase {
                Phase::AwaitingHello { .. } => Phase::AwaitingHello { deadline: now + config.hello_timeout },
                Phase::Identifying { .. } => Phase::Identifying { deadline: now + config.ready_timeout },
                Phase::Resuming { .. } => Phase::Resuming { deadline: now + config.ready_timeout },
                other => other,
            };
        }
    }

    /// Application commands not yet taken with
    /// [`poll_transmit`](Self::poll_transmit): waiting for the session or the
    /// send budget, or ready to go but not polled (a driver whose socket does
    /// not drain leaves them here). [`Config::max_queued_commands`] bounds it.
    pub fn queued_commands(&self) -> usize {
        self.core.queued_commands()
    }

    /// Queues an application command. It is sent once the session is Active and
    /// the send budget allows (`docs/connection.md#state-machine`,
    /// `docs/rate-limits.md#send-limit`,
    /// `docs/edge-cases.md#commands-before-the-session-is-ready`). A presence
    /// update (op 3) is also remembered for the next Identify
    /// (`docs/edge-cases.md#presence-after-re-identify`).
    pub fn send_command(&mut self, now: Instant, command: Command) -> Result<(), CommandError> {
        self.core.queue_command(now, command, true)
    }

    /// Queues a command whose place the driver already reserved against
    /// [`Config::max_queued_commands`] (a handle's `send`): it is never
    /// refused for a full queue, so a command `send` accepted is never
    /// dropped, even when commands a lost connection left unwritten were
    /// handed back meanwhile (the queue then holds at most the bound plus
    /// the driver's outbox).
    pub(crate) fn send_reserved_command(&mut self, now: Instant, command: Command) -> Result<(), CommandError> {
        self.core.queue_command(now, command, false)
    }

    /// Closes the shard. `Final` sends 1000 and ends the session; `Resumable`
    /// sends 4000 and returns the [`Session`] so it can be resumed later
    /// (`docs/close-codes.md#our-own-close-codes`).
    pub fn close(&mut self, mode: CloseMode) -> Option<Session> {
        self.core.close(mode)
    }

    /// Next thing to do to the socket.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.core.actions.pop_front()
    }

    /// Next text frame to write to the socket.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<String> {
        self.core.transmits.pop_front().map(|(frame, _)| frame)
    }

    /// Like [`poll_transmit`](Self::poll_transmit), with whether the frame
    /// is an application command (`true`) rather than a heartbeat, Identify
    /// or Resume. A driver that holds frames before writing them hands the
    /// commands it could not write back with
    /// [`requeue_commands`](Self::requeue_commands) when the connection ends;
    /// the other frames belong to that connection and are dropped.
    #[must_use]
    pub fn poll_transmit_tagged(&mut self) -> Option<(String, bool)> {
        self.core.transmits.pop_front()
    }

    /// Takes back application commands that came out of
    /// [`poll_transmit_tagged`](Self::poll_transmit_tagged) but were never
    /// written because the connection ended, oldest first. Call it once the
    /// machine knows the connection is gone (after
    /// [`handle_close`](Self::handle_close), or when carrying out the
    /// `Close` action it asked for).
    ///
    /// They go to the front of the command queue, ahead of every command
    /// taken from the machine after them, so the order of sends is kept; they
    /// are sent on the next session, once each. They may take the queue past
    /// [`Config::max_queued_commands`] (by what the driver held). A frame
    /// that is not an application command (a heartbeat, Identify or Resume,
    /// or anything not shaped like a [`Command`] frame) is never taken back;
    /// nothing is once the machine has finished (closed or fatal).
    /// Returns how many frames were taken back.
    pub fn requeue_commands(&mut self, now: Instant, frames: impl IntoIterator<Item = String>) -> usize {
        let frames: Vec<String> = frames.into_iter().collect();
        if frames.is_empty() {
            return 0;
        }
        if self.is_finished() {
            tracing::debug!(count = frames.len(), "shard finished; unsent commands dropped");
            return 0;
        }
        let (commands, refused): (Vec<String>, Vec<String>) =
            frames.into_iter().partition(|frame| is_command_frame(frame));
        if !refused.is_empty() {
            // The frames are not logged: an Identify or Resume carries the token.
            tracing::warn!(count = refused.len(), "frames that are not application commands were not requeued");
        }
        // Commands still in `transmits` (the connection has not ended yet)
        // were taken after these: queue them behind.
        let mut kept = VecDeque::with_capacity(self.core.transmits.len());
        let mut later = Vec::new();
        for (frame, is_command) in std::mem::take(&mut self.core.transmits) {
            if is_command {
                later.push(frame);
            } else {
                kept.push_back((frame, false));
            }
        }
        self.core.transmits = kept;
        let taken = commands.len();
        for frame in commands.into_iter().chain(later).rev() {
            self.core.commands.push_front(frame);
        }
        tracing::debug!(count = taken, "unsent commands requeued");
        self.core.drain_commands(now);
        taken
    }

    /// Next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.events.pop_front()
    }

    /// When `handle_timeout` must next be called; `None` when nothing is scheduled.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadline = self.core.next_deadline();
        #[cfg(any(feature = "zlib", feature = "zstd"))]
        if let (Some(release), false) = (self.release_at, self.is_finished()) {
            return Some(deadline.map_or(release, |deadline| deadline.min(release)));
        }
        deadline
    }

    /// The current status.
    pub fn status(&self) -> &Status {
        &self.core.status
    }

    /// The session that would be resumed now, if any.
    pub fn session(&self) -> Option<Session> {
        self.core.session_snapshot()
    }

    /// The last sequence number received.
    pub fn last_seq(&self) -> Option<u64> {
        self.core.last_seq
    }

    /// How many payloads were skipped because they could not be read: not
    /// UTF-8, not a gateway envelope (malformed JSON, a mistyped `op`, `s`
    /// or `t`), or a dispatch without `t` or `s`. Each is dropped, logged at
    /// warn level with the shard, its `s` if known (else the last `s`) and
    /// the reason, and never delivered; the connection goes on (the next
    /// dispatch's `s` shows the gap). Counts over the machine's life.
    ///
    /// Not counted: duplicates a resume replays, payloads with an unknown
    /// opcode, and a compressed stream that cannot be decoded (that ends
    /// the connection instead). Unless
    /// [`Config::validate_payloads`](super::Config::validate_payloads) is
    /// on, a dispatch whose `d` alone is malformed JSON is delivered and
    /// fails in your deserializer instead.
    pub fn skipped_payloads(&self) -> u64 {
        self.core.skipped_payloads
    }

    /// Heartbeat round trips over the machine's life, measured from the
    /// `now` it was fed: the last one, the last few and their mean, and how
    /// many heartbeats went out and were acknowledged (see [`Latency`]).
    ///
    /// Round trips measured on earlier connections are kept: whether
    /// `latency().last()` was measured on the current connection shows by
    /// comparing [`acked_at`](Latency::acked_at) with the `now` the driver
    /// passed to [`handle_open`](Self::handle_open) for it (the machine does
    /// not keep that instant).
    pub fn latency(&self) -> &Latency {
        &self.core.latency
    }

    /// The machine's counters now: dispatches, messages and bytes received,
    /// reconnects, identifies, resumes, heartbeats, skipped payloads (see
    /// [`ShardStats`]). Cheap: a copy of a few integers.
    pub fn stats(&self) -> ShardStats {
        ShardStats {
            heartbeats_sent: self.core.latency.heartbeats_sent(),
            heartbeats_acked: self.core.latency.heartbeats_acked(),
            skipped_payloads: self.core.skipped_payloads,
            ..self.core.counters
        }
    }

    /// Whether the machine has finished (closed by the application or fatally).
    pub fn is_finished(&self) -> bool {
        matches!(self.core.phase, Phase::Closed | Phase::Terminated)
    }
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Queued frames may hold Identify or Resume, which carry the token.
        f.debug_struct("Machine")
            .field("shard", &self.core.config.shard)
            .field("status", &self.core.status)
            .field("last_seq", &self.core.last_seq)
            .field("has_session", &self.core.session.is_some())
            .field("queued_commands", &self.core.queued_commands())
            .field("pending_frames", &self.core.transmits.len())
            .finish_non_exhaustive()
    }
}

/// How a lost connection affects the session and the pacing.
#[derive(Debug, Clone, Copy)]
struct Loss {
    kind: FailureKind,
    keep_session: bool,
    close_code: Option<u16>,
    invalid_session_wait: bool,
}

impl Loss {
    fn refused() -> Loss {
        Loss { kind: FailureKind::Refused, keep_session: true, close_code: None, invalid_session_wait: false }
    }
    fn dropped() -> Loss {
        Loss { kind: FailureKind::Dropped, ..Loss::refused() }
    }
    fn close(self, code: u16) -> Loss {
        Loss { close_code: Some(code), ..self }
    }
    fn forget_session(self) -> Loss {
        Loss { keep_session: false, ..self }
    }
}

impl Core {
    /// Commands queued, plus those in `transmits` (not yet polled).
    fn queued_commands(&self) -> usize {
        self.commands.len() + self.transmits.iter().filter(|(_, is_command)| *is_command).count()
    }

    fn set_status(&mut self, status: Status) {
        if self.status != status {
            self.status = status.clone();
            self.events.push_back(Event::Status(status));
        }
    }

    /// Drops a payload that cannot be read: counted and logged at warn
    /// level, never delivered (see `Machine::skipped_payloads`).
    fn skip(&mut self, seq: Option<u64>, reason: &dyn std::fmt::Display) {
        self.skipped_payloads = self.skipped_payloads.saturating_add(1);
        tracing::warn!(
            shard = %self.config.shard,
            seq,
            last_seq = self.last_seq,
            skipped = self.skipped_payloads,
            "skipping a payload that cannot be read: {reason}"
        );
    }

    fn session_snapshot(&self) -> Option<Session> {
        let ids = self.session.as_ref()?;
        Some(Session { id: ids.id.clone(), seq: self.last_seq.unwrap_or(0), resume_url: ids.resume_url.clone() })
    }

    /// Opens a new connection: to the resume URL when a session is kept and the
    /// URL is usable (`docs/connection.md#resume-url`,
    /// `docs/edge-cases.md#resume-url-query`,
    /// `docs/edge-cases.md#unusable-resume-url`), else to the base URL.
    fn connect(&mut self, now: Instant) {
        let resume = self.session.is_some();
        let mut url = None;
        if let Some(resume_url) = self.session.as_mut().and_then(|s| s.resume_url.as_ref()) {
            // The Resume carries the token: never to a weaker scheme or a foreign host.
            let checked =
                gateway_url(resume_url, self.config.compression).map_err(|error| error.to_string()).and_then(|built| {
                    check_resume_url(&self.base_url, &built, self.config.resume_hosts)
                        .map(|()| built)
                        .map_err(|refusal| refusal.to_string())
                });
            match checked {
                Ok(built) => url = Some(built),
                Err(reason) => {
                    // docs/edge-cases.md#unusable-resume-url
                    tracing::warn!(%reason, "resume_gateway_url refused; resuming through the base URL");
                    if let Some(session) = self.session.as_mut() {
                        session.resume_url = None;
                    }
                }
            }
        }
        let via_resume_url = url.is_some();
        let url = url.unwrap_or_else(|| self.base_url.clone());
        tracing::info!(resume, via_resume_url, "connecting");
        self.link = Link { resume, via_resume_url, ..Link::default() };
        self.phase = Phase::Connecting { deadline: now + self.config.connect_timeout };
        self.actions.push_back(Action::Connect { url });
        self.set_status(Status::Connecting { resume });
    }

    /// Ends the current connection and schedules the next one.
    fn lose(&mut self, now: Instant, reason: DisconnectReason, loss: Loss) {
        if let Some(code) = loss.close_code {
            self.actions.push_back(Action::Close { code });
        }
        // Commands not yet taken by the driver are sent on the next session.
        while let Some((frame, is_command)) = self.transmits.pop_back() {
            if is_command {
                self.commands.push_front(frame);
            }
        }
        let active_since = match self.phase {
            Phase::Active { since } => Some(since),
            _ => None,
        };
        if active_since.is_some_and(|since| now.saturating_duration_since(since) >= self.config.reconnect.healthy_after)
        {
            self.backoff.reset();
        }
        let link = std::mem::take(&mut self.link);
        if link.via_resume_url && loss.kind == FailureKind::Refused {
            // docs/connection.md#resume-url
            tracing::info!("resume URL failed; falling back to the base URL");
            if let Some(session) = self.session.as_mut() {
                session.resume_url = None;
            }
        }
        let had_session = self.session.is_some();
        if !loss.keep_session {
            self.session = None;
        } else if link.resume_sent && !link.reached_active && self.session.is_some() {
            self.resume_failures += 1;
            if self.resume_failures >= self.config.reconnect.max_resume_attempts {
                // docs/edge-cases.md#resumes-that-keep-failing
                tracing::warn!(attempts = self.resume_failures, "resume keeps failing; starting a new session");
                self.session = None;
            }
        }
        if self.session.is_none() {
            self.resume_failures = 0;
        }
        let mut delay = self.backoff.next_delay(loss.kind, &self.config.reconnect, &mut self.rng);
        // docs/connection.md#reconnect-pacing: re-identify waits at least a
        // random 1-5 s, whatever ended the session.
        if loss.invalid_session_wait || (had_session && self.session.is_none()) {
            let (low, high) = self.config.reconnect.invalid_session_wait;
            delay = delay.max(self.rng.duration_between(low, high));
        }
        let resume = self.session.is_some();
        tracing::info!(?reason, ?delay, resume, failures = self.backoff.failures(), "connection lost");
        self.phase = Phase::Waiting { until: now + delay };
        self.counters.reconnects = self.counters.reconnects.saturating_add(1);
        self.set_status(Status::Reconnecting { reason, delay, resume });
        if delay.is_zero() {
            self.connect(now);
        }
    }

    /// A connection ended on a payload the client cannot accept. Counts it
    /// against the point of the stream it happened at; the same point
    /// failing `2 × (max_resume_attempts + 1)` times in a row stops the
    /// shard (the payload is replayed on every resume, or sent in every
    /// session), else this is an ordinary loss.
    fn payload_failed(
        &mut self,
        now: Instant,
        reason: DisconnectReason,
        loss: Loss,
        too_large: bool,
        size: Option<usize>,
    ) {
        let after_seq = self.last_seq;
        let session = self.sessions_started;
        let no_further = |point: Option<u64>| after_seq.unwrap_or(0) <= point.unwrap_or(0);
        let mut stuck = match self.stuck {
            // The same session, no progress past the point: the same loop.
            Some(stuck) if stuck.session == session && no_further(stuck.after_seq) => stuck,
            // A new session replays its dispatches (s = 1, 2, …) up to a
            // payload it cannot accept either: no further than the loop's
            // furthest point, it is the same loop, and this session is held
            // to the point where it failed (its `s` counts from 1 again, so
            // failures at later points of it are progress, not the loop).
            // The ceiling stays: the next session may reach the payload
            // later than this one did.
            Some(stuck) if no_further(stuck.ceiling) => Stuck { after_seq, session, ..stuck },
            _ => Stuck { after_seq, session, ceiling: after_seq, failures: 0, identifies: 0, too_large, size: None },
        };
        stuck.failures = stuck.failures.saturating_add(1);
        stuck.too_large = too_large;
        stuck.size = size.or(stuck.size);
        self.stuck = Some(stuck);
        let limit = self.config.reconnect.max_resume_attempts.saturating_add(1).saturating_mul(2);
        tracing::warn!(
            shard = %self.config.shard,
            after_seq,
            failures = stuck.failures,
            limit,
            "connection failed on a payload the client cannot accept"
        );
        if stuck.failures >= limit {
            self.stop(self.stuck_fatal(stuck));
        } else {
            self.lose(now, reason, loss);
        }
    }

    fn stuck_fatal(&self, stuck: Stuck) -> FatalError {
        let Stuck { after_seq, failures, size, .. } = stuck;
        if stuck.too_large {
            FatalError::PayloadTooLarge { after_seq, size, limit: self.config.max_message_size, failures }
        } else {
            FatalError::PayloadUndecodable { after_seq, failures }
        }
    }

    /// Why the Identify about to be sent must not be, if it must not: the
    /// payload failing at this point already cost its Identifies, or the
    /// shard reached `max_identifies_per_day`.
    fn identify_refusal(&mut self, now: Instant) -> Option<FatalError> {
        // A failure re-bases the point into its session: one counted in an
        // older session means the session now ending never failed on the
        // payload, so it is no loop, and this Identify is not the payload's.
        if self.stuck.is_some_and(|stuck| stuck.session != self.sessions_started) {
            self.stuck = None;
        }
        if let Some(stuck) = self.stuck.filter(|stuck| stuck.identifies >= MAX_IDENTIFIES_ON_A_STUCK_PAYLOAD) {
            return Some(self.stuck_fatal(stuck));
        }
        while self.identifies.front().is_some_and(|&at| now.saturating_duration_since(at) >= IDENTIFY_WINDOW) {
            self.identifies.pop_front();
        }
        let limit = self.config.max_identifies_per_day;
        (self.identifies.len() >= usize::try_from(limit).unwrap_or(usize::MAX))
            .then_some(FatalError::TooManyIdentifies { limit })
    }

    /// Stops for good on the client's own decision: closes the socket, if
    /// any, with 1000 (the session is not worth keeping).
    fn stop(&mut self, fatal: FatalError) {
        if self.phase.has_socket() || matches!(self.phase, Phase::Connecting { .. }) {
            self.actions.push_back(Action::Close { code: FINAL_CLOSE });
        }
        self.terminate(fatal);
    }

    fn terminate(&mut self, fatal: FatalError) {
        tracing::error!(shard = %self.config.shard, code = fatal.close_code(), "{fatal}");
        self.phase = Phase::Terminated;
        self.session = None;
        self.link = Link::default();
        self.transmits.clear();
        self.commands.clear();
        self.events.push_back(Event::Fatal(fatal));
        self.set_status(Status::Fatal(fatal));
    }

    fn close(&mut self, mode: CloseMode) -> Option<Session> {
        if matches!(self.phase, Phase::Closed | Phase::Terminated) {
            return None;
        }
        let code = match mode {
            CloseMode::Final => FINAL_CLOSE,
            CloseMode::Resumable => RESUMABLE_CLOSE,
        };
        if self.phase.has_socket() || matches!(self.phase, Phase::Connecting { .. }) {
            self.actions.push_back(Action::Close { code });
        }
        let session = match mode {
            CloseMode::Final => None,
            CloseMode::Resumable => self.session_snapshot(),
        };
        self.session = None;
        self.phase = Phase::Closed;
        self.link = Link::default();
        self.transmits.clear();
        self.commands.clear();
        self.set_status(Status::Closed);
        session
    }

    fn on_close(&mut self, now: Instant, code: Option<u16>) {
        let kind = match self.phase {
            Phase::AwaitingHello { .. } => FailureKind::Refused,
            _ => FailureKind::Dropped,
        };
        let loss = Loss { kind, ..Loss::dropped() };
        let reason = DisconnectReason::Closed { code };
        match classify(code) {
            CloseAction::Fatal(fatal) => self.terminate(fatal),
            CloseAction::Identify => self.lose(now, reason, loss.forget_session()),
            CloseAction::Resume => self.lose(now, reason, loss),
        }
    }

    fn on_payload(&mut self, now: Instant, payload: PayloadText<'_>) {
        let text = payload.as_str();
        self.counters.bytes_decompressed = self.counters.bytes_decompressed.wrapping_add(text.len() as u64);
        // The fast path is for dispatches only: the core's own payloads
        // (op != 0, and READY, whose `d` sets up the session) are small or
        // rare, and are always read in full, so the core never acts on a
        // `d` it has not validated.
        let fast = if self.config.validate_payloads { None } else { Envelope::read_canonical(text) };
        let scanned = match fast {
            Some(envelope) if envelope.op == 0 && !is_ready(text, &envelope) => Ok(envelope),
            _ => Envelope::scan(text),
        };
        let envelope = match scanned {
            Ok(envelope) => envelope,
            Err(error) => {
                let len = text.len();
                self.skip(None, &format_args!("not a gateway envelope ({len} bytes): {error}"));
                return;
            }
        };
        let data = || envelope.data.clone().and_then(|range| text.get(range));
        match OpCode::from_u64(envelope.op) {
            Some(OpCode::Dispatch) => self.on_dispatch(now, payload, envelope),
            Some(OpCode::Heartbeat) => self.on_heartbeat_request(now),
            Some(OpCode::HeartbeatAck) => self.on_heartbeat_ack(now),
            Some(OpCode::Hello) => self.on_hello(now, data()),
            Some(OpCode::Reconnect) => {
                self.lose(now, DisconnectReason::Reconnect, Loss::dropped().close(RESUMABLE_CLOSE));
            }
            Some(OpCode::InvalidSession) => {
                let resumable = data().is_some_and(|d| d.trim() == "true");
                let reason = DisconnectReason::InvalidSession { resumable };
                let loss = Loss::dropped().close(RESUMABLE_CLOSE);
                if resumable && self.session.is_some() {
                    self.lose(now, reason, loss);
                } else {
                    let loss = Loss { invalid_session_wait: true, ..loss.forget_session() };
                    self.lose(now, reason, loss);
                }
            }
            _ => tracing::warn!(op = envelope.op, "skipping a payload with an unexpected opcode"),
        }
    }

    fn on_hello(&mut self, now: Instant, data: Option<&str>) {
        if !matches!(self.phase, Phase::AwaitingHello { .. }) {
            tracing::warn!("skipping a second Hello on one connection");
            return;
        }
        let announced =
            data.and_then(|d| serde_json::from_str::<HelloData>(d).ok()).map(|hello| hello.heartbeat_interval);
        // Zero would spin and a tiny interval would flood the send budget
        // with heartbeats (the floor is configurable); absurd values would
        // overflow `Instant` math.
        let floor = self.config.min_heartbeat_interval.max(Duration::from_millis(1));
        let usable = announced.map(Duration::from_millis).filter(|&i| i >= floor && i <= MAX_HEARTBEAT_INTERVAL);
        let Some(interval) = usable else {
            tracing::warn!(
                shard = %self.config.shard,
                heartbeat_interval_ms = announced,
                min_heartbeat_interval = ?self.config.min_heartbeat_interval,
                "Hello without a usable heartbeat_interval (missing, under the minimum or over an hour)"
            );
            self.lose(now, DisconnectReason::BadHello, Loss::refused().close(RESUMABLE_CLOSE));
            return;
        };
        if !(self.link.resume && self.session.is_some()) {
            if let Some(fatal) = self.identify_refusal(now) {
                return self.stop(fatal);
            }
        }
        // docs/connection.md#one-timer-per-connection and
        // docs/rate-limits.md#send-limit: timer and budget belong to this
        // connection, from its Hello.
        self.link.heartbeat = Some(Heartbeat::new(interval, now, self.rng.unit()));
        self.link.limiter = Some(SendLimiter::new(interval));
        match self.session.clone() {
            Some(session) if self.link.resume => {
                let seq = self.last_seq.unwrap_or(0);
                tracing::info!(seq, "resuming");
                self.send_control(now, payload::resume(&self.config.token, &session.id, seq));
                self.link.resume_sent = true;
                self.counters.resumes = self.counters.resumes.saturating_add(1);
                self.phase = Phase::Resuming { deadline: now + self.config.ready_timeout };
                self.set_status(Status::Resuming);
            }
            _ if self.config.identify_permits => {
                if let Some(limiter) = self.link.limiter.as_mut() {
                    limiter.owe_identify(true);
                }
                self.phase = Phase::AwaitingIdentifyPermit;
                self.actions.push_back(Action::RequestIdentifyPermit);
                self.set_status(Status::AwaitingIdentifyPermit);
            }
            _ => self.send_identify(now),
        }
    }

    fn send_identify(&mut self, now: Instant) {
        let mut frame = payload::identify(&self.config, self.presence.as_deref());
        if frame.len() > MAX_OUTBOUND_SIZE {
            tracing::warn!("remembered presence makes Identify too large; using the configured presence");
            frame = payload::identify(&self.config, self.config.presence.as_deref());
        }
        tracing::info!(shard = %self.config.shard, "identifying");
        self.session = None;
        self.last_seq = None;
        self.sessions_started = self.sessions_started.saturating_add(1);
        self.identifies.push_back(now);
        self.counters.identifies = self.counters.identifies.saturating_add(1);
        if let Some(stuck) = self.stuck.as_mut() {
            stuck.identifies = stuck.identifies.saturating_add(1);
        }
        if let Some(limiter) = self.link.limiter.as_mut() {
            limiter.owe_identify(false);
        }
        self.send_control(now, frame);
        self.phase = Phase::Identifying { deadline: now + self.config.ready_timeout };
        self.set_status(Status::Identifying);
    }

    /// Sends an Identify or Resume: they may use every slot, and as the
    /// first frame after Hello (or with a slot kept for them while an
    /// identify permit is awaited) they always find one. Should the budget
    /// ever be spent, the frame is not sent: the READY timeout then
    /// reconnects, where a frame over the limit would be closed with 4008.
    fn send_control(&mut self, now: Instant, frame: String) -> bool {
        let allowed = self.link.limiter.as_mut().is_none_or(|limiter| limiter.try_acquire(now, Priority::Control));
        if allowed {
            self.transmits.push_back((frame, false));
        } else {
            tracing::error!(shard = %self.config.shard, "send budget exhausted; Identify/Resume not sent");
        }
        allowed
    }

    /// Sends a periodic heartbeat if the send budget has a slot for it;
    /// else defers it to the next free slot (only possible when the
    /// minimum heartbeat interval was lowered under about 6.7 s).
    fn send_periodic_heartbeat(&mut self, now: Instant) {
        let Some(heartbeat) = self.link.heartbeat.as_mut() else { return };
        let (allowed, next_slot) = match self.link.limiter.as_mut() {
            Some(limiter) => {
                let allowed = limiter.try_acquire(now, Priority::Periodic);
                (allowed, if allowed { None } else { limiter.next_slot(Priority::Periodic) })
            }
            None => (true, None),
        };
        if allowed {
            self.transmits.push_back((payload::heartbeat(self.last_seq), false));
            heartbeat.sent_periodic(now);
            self.latency.record_sent(now);
        } else {
            // A slot frees exactly 60 s after a send in the window, so
            // `next_slot` is later than `now`; the fallback only guards
            // against a spin.
            let until = next_slot.filter(|&at| at > now).unwrap_or(now + Duration::from_millis(100));
            tracing::warn!(shard = %self.config.shard, "send budget exhausted; heartbeat deferred to the next free slot");
            heartbeat.defer(until);
        }
    }

    fn on_heartbeat_request(&mut self, now: Instant) {
        // docs/connection.md#server-heartbeat-requests: answer at once with our
        // own seq; never before Hello
        // (docs/edge-cases.md#heartbeats-around-reconnects).
        let Some(limiter) = self.link.limiter.as_mut() else {
            tracing::debug!("heartbeat request before Hello; ignored");
            return;
        };
        if !limiter.try_acquire(now, Priority::HeartbeatReply) {
            tracing::warn!("heartbeat request with no send budget left; skipped");
            return;
        }
        self.transmits.push_back((payload::heartbeat(self.last_seq), false));
        self.latency.record_sent(now);
        if let Some(heartbeat) = self.link.heartbeat.as_mut() {
            heartbeat.sent_on_request(now);
        }
    }

    fn on_dispatch(&mut self, now: Instant, payload: PayloadText<'_>, envelope: Envelope) {
        let text = payload.as_str();
        let Some(event) = envelope.event.as_ref() else {
            self.skip(envelope.seq, &"a dispatch without `t`");
            return;
        };
        let name = event.decode(text);
        let is_ready = name == "READY";
        let is_resumed = name == "RESUMED";
        let before_our_frame = matches!(self.phase, Phase::AwaitingHello { .. } | Phase::AwaitingIdentifyPermit);
        if (is_ready || is_resumed) && before_our_frame || is_resumed && matches!(self.phase, Phase::Identifying { .. })
        {
            // Taking it would mark the shard Active for a session it never
            // started (before Hello: with no heartbeat and no deadline, so
            // a half-open socket would hang forever).
            tracing::warn!(event = %name, "READY/RESUMED answering nothing we sent; reconnecting");
            let reason = DisconnectReason::ProtocolViolation { what: "READY or RESUMED before our Identify or Resume" };
            self.lose(now, reason, Loss::refused().close(RESUMABLE_CLOSE));
            return;
        }
        if before_our_frame {
            // No session is running on this connection yet: a dispatch here
            // is not ours to deliver, and its `s` must not move the resume point.
            tracing::warn!(event = %name, "skipping a dispatch before our Identify or Resume");
            return;
        }
        if is_resumed {
            // The replay is over whatever its `s` says: the state must not
            // hinge on the duplicate check below.
            tracing::info!(seq = ?envelope.seq, "resumed");
            self.become_active(now);
        } else if let Phase::Resuming { .. } = self.phase {
            // A long replay is progress, not a stall (docs/edge-cases.md#hello-and-ready-timeouts).
            self.phase = Phase::Resuming { deadline: now + self.config.ready_timeout };
        }
        let data = envelope.data.clone().unwrap_or(0..0);
        let Some(seq) = envelope.seq else {
            if is_ready {
                // The session still starts here; with no `s` there is
                // nothing to deliver or to resume from but the start.
                tracing::warn!("READY without `s`: session set up, the READY is not delivered");
                self.last_seq = None;
                return self.on_ready(now, text.get(data).unwrap_or_default());
            }
            self.skip(None, &"a dispatch without `s`");
            return;
        };
        // docs/connection.md#replay-and-duplicates,
        // docs/edge-cases.md#duplicate-events: within a session `s` only grows;
        // a replayed or repeated one was already delivered. READY starts a new
        // session.
        if let Some(last) = self.last_seq.filter(|_| !is_ready) {
            if seq <= last {
                tracing::debug!(seq, last, "dropping an already delivered dispatch");
                return;
            }
            if seq > last.saturating_add(1) {
                tracing::debug!(seq, last, "sequence gap");
            }
        }
        self.last_seq = Some(seq);
        if self.stuck.is_some_and(|stuck| {
            // Past the point that kept failing in its own session, or, in a
            // later session, past every point the loop failed at.
            let point = if stuck.session == self.sessions_started { stuck.after_seq } else { stuck.ceiling };
            point.is_none_or(|after| seq > after)
        }) {
            self.stuck = None;
        }
        if is_ready {
            self.on_ready(now, text.get(data.clone()).unwrap_or_default());
        }
        if let Some(wanted) = &self.config.events {
            if !wanted.contains(name.as_ref()) {
                // Handled and counted above; the application asked not to get it.
                return;
            }
        }
        let event_name = match event {
            StrSpan { escaped: false, range } => Ok(range.clone()),
            StrSpan { escaped: true, .. } => Err(Box::from(name.as_ref())),
        };
        let dispatch = Dispatch::new(self.config.shard, seq, payload.into_owned(), event_name, data);
        self.counters.dispatches = self.counters.dispatches.wrapping_add(1);
        self.events.push_back(Event::Dispatch(dispatch));
    }

    fn on_ready(&mut self, now: Instant, data: &str) {
        match serde_json::from_str::<ReadyData>(data) {
            Ok(ready) => {
                tracing::info!(resume_url = ?ready.resume_gateway_url, "READY");
                self.session = Some(SessionIds { id: ready.session_id, resume_url: ready.resume_gateway_url });
            }
            Err(error) => {
                tracing::warn!(%error, "READY without a session_id; this session cannot be resumed");
                self.session = None;
            }
        }
        self.become_active(now);
    }

    fn become_active(&mut self, now: Instant) {
        self.resume_failures = 0;
        self.link.reached_active = true;
        self.phase = Phase::Active { since: now };
        self.set_status(Status::Active);
    }

    fn on_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Waiting { until } if now >= until => return self.connect(now),
            Phase::Connecting { deadline } if now >= deadline => {
                tracing::warn!("socket did not open in time");
                // Close tells the driver to abandon the attempt still in flight.
                return self.lose(now, DisconnectReason::ConnectFailed, Loss::refused().close(RESUMABLE_CLOSE));
            }
            Phase::AwaitingHello { deadline } if now >= deadline && !self.reading_paused => {
                // docs/edge-cases.md#hello-and-ready-timeouts
                tracing::warn!("no Hello in time");
                return self.lose(now, DisconnectReason::HelloTimeout, Loss::refused().close(RESUMABLE_CLOSE));
            }
            Phase::Identifying { deadline } | Phase::Resuming { deadline }
                if now >= deadline && !self.reading_paused =>
            {
                // docs/edge-cases.md#hello-and-ready-timeouts
                tracing::warn!("no READY/RESUMED in time");
                return self.lose(now, DisconnectReason::ReadyTimeout, Loss::refused().close(RESUMABLE_CLOSE));
            }
            _ => {}
        }
        match self.link.heartbeat.as_ref().and_then(|heartbeat| heartbeat.poll(now)) {
            Some(Beat::Zombie) if !self.reading_paused => {
                // docs/connection.md#zombie-connections
                tracing::warn!("no heartbeat ACK; connection is a zombie");
                self.lose(now, DisconnectReason::Zombie, Loss::dropped().close(RESUMABLE_CLOSE));
            }
            // While reading is paused the ACK may sit unread in the socket: keep beating.
            Some(Beat::Send | Beat::Zombie) => self.send_periodic_heartbeat(now),
            None => {}
        }
    }

    fn queue_command(&mut self, now: Instant, command: Command, bounded: bool) -> Result<(), CommandError> {
        if matches!(self.phase, Phase::Closed | Phase::Terminated) {
            return Err(CommandError::Closed);
        }
        if bounded && self.queued_commands() >= self.config.max_queued_commands {
            return Err(CommandError::QueueFull { limit: self.config.max_queued_commands });
        }
        if command.op() == OpCode::PresenceUpdate.code() {
            self.presence = command.data().and_then(|d| RawValue::from_string(d.to_owned()).ok());
        }
        self.commands.push_back(command.into_frame());
        self.drain_commands(now);
        Ok(())
    }

    fn drain_commands(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Active { .. }) {
            return;
        }
        let Some(limiter) = self.link.limiter.as_mut() else { return };
        while !self.commands.is_empty() && limiter.try_acquire(now, Priority::Command) {
            if let Some(frame) = self.commands.pop_front() {
                self.transmits.push_back((frame, true));
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let phase_deadline = match self.phase {
            Phase::Waiting { until } => Some(until),
            Phase::Connecting { deadline } => Some(deadline),
            Phase::AwaitingHello { deadline } | Phase::Identifying { deadline } | Phase::Resuming { deadline }
                if !self.reading_paused =>
            {
                Some(deadline)
            }
            _ => None,
        };
        let heartbeat = self.link.heartbeat.as_ref().map(Heartbeat::next_due);
        let command_slot = match (self.phase, self.link.limiter.as_ref()) {
            (Phase::Active { .. }, Some(limiter)) if !self.commands.is_empty() => limiter.next_slot(Priority::Command),
            _ => None,
        };
        [phase_deadline, heartbeat, command_slot].into_iter().flatten().min()
    }
}

/// Observability: the counters and round trips behind `Machine::stats` and
/// `Machine::latency`.
impl Core {
    /// Counts a WebSocket message as it came off the wire.
    fn count_message(&mut self, len: usize) {
        self.counters.messages = self.counters.messages.wrapping_add(1);
        self.counters.bytes_received = self.counters.bytes_received.wrapping_add(len as u64);
    }

    /// An ACK (op 11): the round trip of the periodic heartbeat it answers,
    /// if one was awaited (an unrequested ACK is harmless: `docs/connection.md#heartbeat-acks`).
    fn on_heartbeat_ack(&mut self, now: Instant) {
        let Some(heartbeat) = self.link.heartbeat.as_mut() else { return };
        if !heartbeat.acked(now) {
            // docs/edge-cases.md#heartbeats-around-reconnects
            tracing::debug!("unrequested heartbeat ACK");
            return;
        }
        if let Some(round_trip) = heartbeat.latency() {
            self.latency.record_ack(now, round_trip);
        }
    }
}

impl Machine {
    /// The kept session's id and resume URL, borrowed: what a driver
    /// compares to decide whether to publish the session again.
    pub(crate) fn session_ids(&self) -> Option<(&str, Option<&str>)> {
        self.core.session.as_ref().map(|ids| (ids.id.as_str(), ids.resume_url.as_deref()))
    }
}
