//! The async shard: a `Stream` of dispatches over a real WebSocket.
//!
//! The driver here only moves bytes and deadlines between async-tungstenite
//! and the sans-IO [`Machine`]; every protocol decision is the machine's.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use async_tungstenite::tungstenite::{Bytes, Message};
use async_tungstenite::WebSocketStream;
use futures_channel::{mpsc, oneshot};
use futures_util::future::BoxFuture;
use futures_util::task::AtomicWaker;
use futures_util::{FutureExt, Sink, Stream, StreamExt};
use tracing::Instrument;

use crate::commands::{Presence, RequestChannelInfo, RequestGuildMembers, RequestSoundboardSounds, VoiceStateUpdate};
use crate::dispatch::{Dispatch, FrameText, KeptFrame};
use crate::error::ShardError;
use crate::identify::{IdentifyError, IdentifyPermit, IdentifyQueue};
use crate::observe::{Published, Publisher, StatusCell, StatusWatcher};
use crate::protocol::{
    Action, CloseMode, Command, CommandError, Config, Event, Incoming, Latency, Machine, ShardStats, Status,
    ValidConfig, FINAL_CLOSE,
};
use crate::queue;
use crate::session::Session;
use crate::shard_id::ShardId;
use crate::store::{Ack, Acks, Checkpointer, SessionStore, StoreSettings};
use crate::transport::{self, BoxedStream, Connector, Target};

mod budget;

use self::budget::{CommandBudget, DriverBudget};

/// How long sending a close frame may take before the socket is just dropped
/// (`docs/edge-cases.md#half-open-connections`).
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// The driver takes no more frames from the core while its outbox (frames
/// the socket has not accepted yet) holds this many frames...
const OUTBOX_MAX_FRAMES: usize = 16;
/// ...or this many bytes (eight maximum-size frames). With the one frame the
/// WebSocket itself may hold, a socket that never drains ties up at most
/// about 36 KiB per shard; the rest waits in the core, whose send budget
/// bounds what it emits and whose command queue is bounded.
const OUTBOX_MAX_BYTES: usize = 32 * 1024;
/// An uncompressed payload at least this large becomes its dispatch as the
/// WebSocket frame's own bytes instead of a copy: the copy of a large frame
/// costs more than the fresh read buffer tungstenite then starts, and a
/// burst of large frames no longer leaves a read buffer of the largest one's
/// size behind (benches/README.md). A smaller frame shares its read buffer
/// with its neighbours, so it is copied: keeping it could pin a whole
/// buffer for a few bytes.
const KEEP_FRAMES_FROM: usize = 64 * 1024;
/// A wake that finds a message on the socket handles up to this many that
/// are already read, before it looks at requests, timers and the outbox
/// again: the per-wake work (reading the clock, polling the request channel
/// and the timer) is paid once per batch, not per message...
const BATCH_MESSAGES: usize = 64;
/// ...and starts no further message once the batch has handled this many
/// payload bytes (after decompression), so requests and timers wait for at
/// most this much work beyond one message, well under a millisecond, and the
/// one clock reading of the batch is never later than that. Large payloads
/// gain nothing from batching; they end it.
const BATCH_BYTES: u64 = 64 * 1024;

type Socket = WebSocketStream<BoxedStream>;
/// What the socket yields: a message, an error, or its end.
type SocketItem = Option<Result<Message, async_tungstenite::tungstenite::Error>>;
type Connecting = Pin<Box<dyn Future<Output = io::Result<Box<Socket>>> + Send>>;
type Item = Result<Dispatch, ShardError>;
type Permit = BoxFuture<'static, Result<IdentifyPermit, IdentifyError>>;

enum Request {
    Command(Command),
    Close(CloseMode, oneshot::Sender<Option<Session>>),
}

/// One gateway connection as a `Stream` of dispatches.
///
/// Items are opcode-0 dispatches only (READY and RESUMED included, unless
/// [`Config::events`] leaves them out), in sequence order, each once. A
/// fatal close yields one `Err` and the stream ends. By default the connection is driven while you poll the stream; for
/// consumers that may pause for long, spawn [`Shard::take_driver`] on your
/// runtime so heartbeats go on regardless.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use discord_gateway_stream::{Config, Intents, Shard};
/// use futures::StreamExt;
///
/// let token = std::env::var("DISCORD_TOKEN")?;
/// let mut shard = Shard::new(Config::new(token, Intents::GUILDS | Intents::GUILD_MESSAGES))?;
/// while let Some(item) = shard.next().await {
///     let dispatch = item?;
///     println!("{} {} {}", dispatch.seq(), dispatch.event(), dispatch.data().len());
/// }
/// # Ok(()) }
/// ```
pub struct Shard {
    id: ShardId,
    driver: Option<ShardDriver>,
    events: queue::Consumer<Item>,
    handle: ShardHandle,
    /// With a session store: counts the dispatches the application handled.
    acks: Option<Acks>,
}

/// The future that runs a shard's connection. Spawn it (any runtime) to
/// keep heartbeating while the application is busy.
#[must_use = "a driver does nothing unless polled or spawned"]
pub struct ShardDriver {
    inner: Pin<Box<dyn Future<Output = ()> + Send>>,
    done: bool,
}

/// A cloneable handle that sends commands to a shard, reads its status and
/// closes it.
///
/// Commands are queued until the session is Active and paced by the
/// 120/60 s limit; heartbeats keep their reserved slots.
///
/// Between the protocol core and the socket the driver holds at most 16
/// frames or 32 KiB (plus one frame inside the WebSocket). When the socket
/// does not drain (a server that stops reading), everything else waits in
/// the core, and commands in its queue count against
/// [`Config::max_queued_commands`] (see [`queued_commands`](Self::queued_commands)).
#[derive(Clone)]
pub struct ShardHandle {
    id: ShardId,
    requests: mpsc::UnboundedSender<Request>,
    status: Arc<StatusCell>,
    /// Counters, latency and session as the driver last published them.
    published: Arc<Published>,
    /// What [`queued_commands`](Self::queued_commands) reads; bounds [`send`](Self::send).
    commands: CommandBudget,
    /// The machine's count of unreadable payloads it skipped.
    skipped: Arc<AtomicU64>,
}

/// Builds a [`Shard`] with a chosen connector and identify queue.
///
/// ```no_run
/// # fn build() -> Result<(), discord_gateway_stream::ShardError> {
/// use discord_gateway_stream::identify::{IdentifyLimits, LocalIdentifyQueue};
/// use discord_gateway_stream::{Config, Intents, Shard, ShardId};
///
/// let queue = LocalIdentifyQueue::new(IdentifyLimits::new(1));
/// let config = Config::new("token", Intents::GUILDS);
/// let first = Shard::builder(config.clone().shard(ShardId::new(0, 2).unwrap()))
///     .identify_queue(queue.clone())
///     .build()?;
/// let second = Shard::builder(config.shard(ShardId::new(1, 2).unwrap())).identify_queue(queue).build()?;
/// # Ok(()) }
/// ```
#[must_use = "call build() to get the shard"]
pub struct ShardBuilder {
    config: BuilderConfig,
    connector: Option<Arc<dyn Connector>>,
    queue: Option<Arc<dyn IdentifyQueue>>,
    status_waker: Option<Arc<AtomicWaker>>,
    store: StoreSettings,
    tls: transport::Tls,
}

/// A builder's configuration: checked when the shard is built, unless its
/// maker checked it already (a group, for the template its shards share).
enum BuilderConfig {
    Unchecked(Config),
    Valid(ValidConfig),
}

impl ShardBuilder {
    fn with(config: BuilderConfig) -> ShardBuilder {
        ShardBuilder {
            config,
            connector: None,
            queue: None,
            status_waker: None,
            store: StoreSettings::default(),
            tls: transport::Tls::default(),
        }
    }

    /// Opens byte streams through `connector` instead of the
    /// [`DefaultConnector`](transport::DefaultConnector) (which already
    /// covers tokio, async-std and any other executor).
    pub fn connector(mut self, connector: impl Connector) -> Self {
        self.connector = Some(Arc::new(connector));
        self
    }

    /// Opens byte streams through a shared connector.
    pub fn shared_connector(mut self, connector: Arc<dyn Connector>) -> Self {
        self.connector = Some(connector);
        self
    }

    /// Secures `wss://` connections with `config` instead of the default
    /// configuration built from the roots features (e.g. a client
    /// configuration that trusts a corporate proxy's CA).
    ///
    /// The configuration is used as given: its root store or verifier,
    /// crypto provider, protocol versions and SNI setting. It may offer no
    /// ALPN protocol or `http/1.1` alone (a WebSocket handshake is HTTP/1.1);
    /// anything else makes [`build`](Self::build) fail with
    /// [`TlsError::Alpn`](transport::TlsError::Alpn). Nothing else about it
    /// is checked or changed, so verification is exactly as strict as the
    /// configuration makes it.
    ///
    /// ```no_run
    /// # fn build(ca_der: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    ///
    /// use discord_gateway_stream::transport::rustls;
    /// use discord_gateway_stream::{Config, Intents, Shard};
    ///
    /// let mut roots = rustls::RootCertStore::empty();
    /// roots.add(rustls::pki_types::CertificateDer::from(ca_der))?;
    /// let provider = Arc::new(rustls::crypto::ring::default_provider());
    /// let tls = rustls::ClientConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions()?
    ///     .with_root_certificates(roots)
    ///     .with_no_client_auth();
    /// let shard = Shard::builder(Config::new("token", Intents::GUILDS)).tls_config(tls).build()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "rustls")]
    pub fn tls_config(mut self, config: impl Into<Arc<transport::rustls::ClientConfig>>) -> Self {
        self.tls = transport::Tls::given(config.into());
        self
    }

    /// The TLS settings a group hands its shards.
    pub(crate) fn tls(mut self, tls: transport::Tls) -> Self {
        self.tls = tls;
        self
    }

    /// Awaits `queue` before every Identify (never before a Resume,
    /// `docs/rate-limits.md#identify-concurrency`). Without one, a shard
    /// identifies as soon as Hello arrives: fine for a single shard, a
    /// collision (op 9) for several.
    pub fn identify_queue(mut self, queue: impl IdentifyQueue) -> Self {
        self.queue = Some(Arc::new(queue));
        self
    }

    /// Awaits a shared queue before every Identify.
    pub fn shared_identify_queue(mut self, queue: Arc<dyn IdentifyQueue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Checkpoints the session in `store` and, unless the configuration
    /// names a session to resume, resumes the session stored for this
    /// shard instead of identifying: a crashed process's shards resume in
    /// the next one. See [`SessionStore`] for when it saves, clears and
    /// loads, and the delivery guarantee.
    pub fn session_store(self, store: impl SessionStore) -> Self {
        self.shared_session_store(Arc::new(store))
    }

    /// Checkpoints the session in a shared store (see [`session_store`](Self::session_store)).
    pub fn shared_session_store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store.store = Some(store);
        self
    }

    /// At most one checkpoint per `interval` (default
    /// [`DEFAULT_CHECKPOINT_INTERVAL`](crate::store::DEFAULT_CHECKPOINT_INTERVAL),
    /// 2 s; at least [`MIN_CHECKPOINT_INTERVAL`](crate::store::MIN_CHECKPOINT_INTERVAL)).
    /// Shorter means fewer dispatches delivered twice after a crash and
    /// more writes to the store.
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.store.set_interval(interval);
        self
    }

    /// The group's store settings.
    pub(crate) fn store_settings(mut self, settings: StoreSettings) -> Self {
        self.store = settings;
        self
    }

    /// Woken whenever the shard's status changes (a group watching its shards).
    pub(crate) fn status_waker(mut self, waker: Arc<AtomicWaker>) -> Self {
        self.status_waker = Some(waker);
        self
    }

    /// The shard. Fails if the configuration is invalid, or if the gateway
    /// URL is `wss://` and TLS cannot be set up ([`ShardError::Tls`], or
    /// [`TlsError::Unavailable`](transport::TlsError::Unavailable)
    /// without the `rustls` feature).
    pub fn build(self) -> Result<Shard, ShardError> {
        Shard::build(self)
    }
}

impl Shard {
    /// A shard using the [`DefaultConnector`](transport::DefaultConnector)
    /// (tokio's TCP inside a tokio runtime with the `tokio` feature, else
    /// async-std's with `async-std`, else async-io's) and the default TLS
    /// configuration for `wss://`.
    ///
    /// The connection is driven while the shard is polled; on tokio, spawn
    /// the driver so it runs between polls:
    /// `tokio::spawn(shard.take_driver().expect("a new shard has its driver"))`.
    pub fn new(config: Config) -> Result<Shard, ShardError> {
        Shard::builder(config).build()
    }

    /// A shard that opens its byte streams through `connector` (see
    /// [`Connector`]).
    pub fn with_connector(config: Config, connector: impl Connector) -> Result<Shard, ShardError> {
        Shard::builder(config).connector(connector).build()
    }

    /// A builder for a shard with a custom connector or identify queue.
    pub fn builder(config: Config) -> ShardBuilder {
        ShardBuilder::with(BuilderConfig::Unchecked(config))
    }

    /// A builder for a shard whose configuration was checked already.
    pub(crate) fn builder_valid(config: ValidConfig) -> ShardBuilder {
        ShardBuilder::with(BuilderConfig::Valid(config))
    }

    fn build(builder: ShardBuilder) -> Result<Shard, ShardError> {
        let ShardBuilder { config, connector, queue, status_waker, store, tls } = builder;
        let connector = connector.unwrap_or_else(|| Arc::new(transport::DefaultConnector));
        let base_url = match &config {
            BuilderConfig::Unchecked(config) => &config.base_url,
            BuilderConfig::Valid(config) => &config.base_url,
        };
        tls.check(base_url)?;
        // The one check of this shard's configuration: the machine takes it as it is.
        let mut config = match config {
            BuilderConfig::Unchecked(config) => ValidConfig::new(config)?,
            BuilderConfig::Valid(config) => config,
        };
        let id = config.shard_id();
        if config.seed().is_none() {
            config = config.rng_seed(entropy_seed(id));
        }
        config = config.identify_permits(queue.is_some());
        let status = StatusCell::new(Status::Connecting { resume: config.resume_from.is_some() });
        let published = Arc::new(Published::default());
        // Built out here so that dropping the driver unpolled still ends the status.
        let publisher = Publisher::new(Arc::clone(&published), Arc::clone(&status));
        let ws_config = WebSocketConfig::default()
            // Small eager buffer: idle shards stay cheap; big frames still fit.
            .read_buffer_size(transport::READ_BUFFER_BYTES)
            .write_buffer_size(0)
            .max_message_size(Some(config.max_message_size_limit()))
            .max_frame_size(Some(config.max_message_size_limit()));
        let (events_tx, events) =
            queue::bounded(config.max_buffered_dispatches_limit(), config.max_buffered_bytes_limit());
        let (requests_tx, requests) = mpsc::unbounded();
        let (commands, driver_commands) = CommandBudget::new(config.max_queued_commands_limit());
        let skipped = Arc::new(AtomicU64::new(0));
        let driver_skipped = Arc::clone(&skipped);
        let acks = store.store.is_some().then(Acks::new);
        let handled = acks.as_ref().map(Acks::counter).unwrap_or_default();
        // The machine is built when the driver first runs, so its connect
        // deadline is not spent before anyone polls.
        let run = async move {
            let checkpoint = match Checkpointer::start(store, id, config.resume_from.as_ref(), handled).await {
                Some((checkpoint, Some(session))) => {
                    // The machine says `Connecting { resume: true }` once the
                    // session is published (in `apply_outputs`).
                    config = config.resume_from(Some(session));
                    Some(checkpoint)
                }
                Some((checkpoint, None)) => Some(checkpoint),
                None => None,
            };
            let machine = Machine::with_valid(config, Instant::now());
            let driver = Driver {
                id,
                machine,
                connector,
                tls,
                ws_config,
                events: events_tx,
                pending: VecDeque::new(),
                requests,
                commands: driver_commands,
                skipped: driver_skipped,
                socket: None,
                connecting: None,
                timer: async_io::Timer::never(),
                timer_at: None,
                close_replies: Vec::new(),
                reading_paused: false,
                held_frame: None,
                frame_dropped: Arc::new(AtomicWaker::new()),
                outbox: VecDeque::new(),
                outbox_bytes: 0,
                transmits_waiting: false,
                unsent: Vec::new(),
                flush_needed: false,
                queue,
                permit: None,
                held_permit: None,
                status_waker,
                checkpoint,
                publisher,
            };
            driver.run().await;
        };
        let span = tracing::info_span!("shard", id = id.id, total = id.total);
        let driver = ShardDriver { inner: Box::pin(run.instrument(span)), done: false };
        let handle = ShardHandle { id, requests: requests_tx, status, published, commands, skipped };
        Ok(Shard { id, driver: Some(driver), events, handle, acks })
    }

    /// This shard's id.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// Where the connection stands now (see [`Status`]).
    pub fn status(&self) -> Status {
        self.handle.status()
    }

    /// How many payloads the shard skipped because they could not be read
    /// (see [`ShardHandle::skipped_payloads`]).
    pub fn skipped_payloads(&self) -> u64 {
        self.handle.skipped_payloads()
    }

    /// A cloneable command sender.
    pub fn handle(&self) -> ShardHandle {
        self.handle.clone()
    }

    /// Takes the connection driver out so you can spawn it; the stream then
    /// only delivers what the spawned driver produces. `None` if taken already.
    pub fn take_driver(&mut self) -> Option<ShardDriver> {
        self.driver.take()
    }

    /// Closes the shard: `Final` sends 1000 and ends the session;
    /// `Resumable` sends 4000 and returns the [`Session`] to resume later.
    /// Dispatches already received stay readable from the stream.
    pub async fn close(&mut self, mode: CloseMode) -> Option<Session> {
        let reply = self.handle.request_close(mode)?;
        let Some(driver) = self.driver.as_mut() else {
            return reply.await.ok().flatten();
        };
        // Drive the connection here until it has answered. A driver that
        // finishes has answered or dropped the reply, which wakes us.
        let mut reply = reply;
        futures_util::future::poll_fn(|cx| {
            if let Poll::Ready(session) = reply.poll_unpin(cx) {
                return Poll::Ready(session.ok().flatten());
            }
            let _ = driver.poll_drive(cx);
            Poll::Pending
        })
        .await
    }
}

impl ShardDriver {
    /// Polls the connection; once it has finished, stays finished (never
    /// resumes the completed future).
    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.done && self.inner.as_mut().poll(cx).is_ready() {
            self.done = true;
        }
        if self.done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Future for ShardDriver {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_drive(cx)
    }
}

impl Shard {
    /// Runs the local driver, if any, without taking events: a shard
    /// waiting behind another's leftovers keeps its connection alive.
    pub(crate) fn poll_drive(&mut self, cx: &mut Context<'_>) {
        if let Some(driver) = self.driver.as_mut() {
            if driver.poll_drive(cx).is_ready() {
                self.driver = None;
            }
        }
    }

    /// Polling the stream no longer counts the item taken before as
    /// handled: the owner (a group) hands on [`last_ack`](Self::last_ack)
    /// once the application asks it for the next item.
    pub(crate) fn acknowledge_externally(&mut self) {
        if let Some(acks) = self.acks.as_mut() {
            acks.acknowledge_externally();
        }
    }

    /// The acknowledgement of the dispatch just yielded (with a session store).
    pub(crate) fn last_ack(&self) -> Option<Ack> {
        self.acks.as_ref().map(Acks::last)
    }

    /// Marks the status `Closed` if the connection ended without saying so
    /// (its driver was dropped unpolled, or panicked).
    pub(crate) fn mark_ended(&self) {
        self.handle.status.mark_closed();
    }
}

impl Stream for Shard {
    type Item = Result<Dispatch, ShardError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        if let Some(acks) = self.acks.as_mut() {
            acks.on_poll();
        }
        self.poll_drive(cx);
        let item = self.events.poll_next(cx);
        if let Some(acks) = self.acks.as_mut() {
            acks.on_item(&item);
        }
        item
    }
}

impl futures_util::stream::FusedStream for Shard {
    fn is_terminated(&self) -> bool {
        self.events.is_finished()
    }
}

impl ShardHandle {
    /// The shard this handle talks to.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// Where the shard's connection stands now: connecting, waiting for an
    /// identify permit, identifying, resuming, active, reconnecting (with the
    /// delay), closed, or fatal (with the code).
    pub fn status(&self) -> Status {
        self.status.get()
    }

    /// Commands accepted by [`send`](Self::send) that the driver has not
    /// taken for the socket yet: on their way to the driver, or queued in the
    /// protocol core until the session is Active and the send budget allows.
    /// [`Config::max_queued_commands`] bounds it. Commands the driver took
    /// but could not write before a disconnect are handed back to the core
    /// and counted here again.
    pub fn queued_commands(&self) -> usize {
        self.commands.queued()
    }

    /// How many payloads the shard skipped because they could not be read:
    /// not UTF-8, not a gateway envelope (malformed JSON, a mistyped `op`,
    /// `s` or `t`), or a dispatch without `t` or `s`. Such a payload is
    /// dropped (never delivered, the connection goes on) and logged at warn
    /// level with the shard, its `s` if known and the reason; watch this
    /// count to notice it. See [`Machine::skipped_payloads`] for what is
    /// not counted.
    pub fn skipped_payloads(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Queues a command.
    pub fn send(&self, command: Command) -> Result<(), CommandError> {
        self.commands.reserve()?;
        self.requests.unbounded_send(Request::Command(command)).map_err(|_| {
            self.commands.cancel();
            CommandError::Closed
        })
    }

    /// Presence update (op 3); also used by the next Identify.
    pub fn update_presence(&self, presence: &Presence) -> Result<(), CommandError> {
        self.send(Command::try_from(presence)?)
    }

    /// Request guild members (op 8).
    pub fn request_guild_members(&self, request: &RequestGuildMembers) -> Result<(), CommandError> {
        self.send(Command::try_from(request)?)
    }

    /// Voice state update (op 4).
    pub fn update_voice_state(&self, update: &VoiceStateUpdate) -> Result<(), CommandError> {
        self.send(Command::try_from(update)?)
    }

    /// Request soundboard sounds (op 31).
    pub fn request_soundboard_sounds(&self, request: &RequestSoundboardSounds) -> Result<(), CommandError> {
        self.send(Command::try_from(request)?)
    }

    /// Request channel info (op 43).
    pub fn request_channel_info(&self, request: &RequestChannelInfo) -> Result<(), CommandError> {
        self.send(Command::try_from(request)?)
    }

    /// Any other command: opcode and raw JSON `d` (checked, at most 4096 bytes framed).
    pub fn send_raw(&self, op: u8, d: &str) -> Result<(), CommandError> {
        self.send(Command::new(op, d)?)
    }

    /// Asks the driver to close; resolves once it has. Needs the driver to be
    /// running (spawned, or the stream being polled).
    pub async fn close(&self, mode: CloseMode) -> Option<Session> {
        self.request_close(mode)?.await.ok().flatten()
    }

    fn request_close(&self, mode: CloseMode) -> Option<oneshot::Receiver<Option<Session>>> {
        let (tx, rx) = oneshot::channel();
        self.requests.unbounded_send(Request::Close(mode, tx)).ok()?;
        Some(rx)
    }
}

/// Observability: what the driver last published about the shard, read
/// without a round trip to it.
impl ShardHandle {
    /// The shard's counters (see [`ShardStats`]): dispatches, messages and
    /// bytes received, reconnects, identifies, resumes, heartbeats and
    /// skipped payloads.
    ///
    /// Cheap enough for every metrics scrape: a few relaxed atomic loads, no
    /// lock. The driver publishes the counters after each socket message,
    /// timer or request it handles (a wake may handle several messages the
    /// socket had already read), before the dispatches that came of it reach
    /// the stream or a status change it caused becomes visible, so each
    /// counter is exact as of the last thing the driver handled and never
    /// goes back; counters read together may straddle one of them.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use discord_gateway_stream::{Config, Intents, Shard};
    ///
    /// let shard = Shard::new(Config::new(std::env::var("DISCORD_TOKEN")?, Intents::GUILDS))?;
    /// let handle = shard.handle();
    /// // From a metrics task, while another polls the shard:
    /// let stats = handle.stats();
    /// let latency = handle.latency();
    /// println!(
    ///     "dispatches={} bytes={} reconnects={} latency_ms={:?}",
    ///     stats.dispatches,
    ///     stats.bytes_received,
    ///     stats.reconnects,
    ///     latency.average().map(|rtt| rtt.as_millis()),
    /// );
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> ShardStats {
        self.published.stats()
    }

    /// Heartbeat round trips: the last, the last few and their mean, and
    /// heartbeats sent and acknowledged (see [`Latency`]). Measured by the
    /// protocol core; published when a heartbeat goes out or its ACK arrives.
    pub fn latency(&self) -> Latency {
        self.published.latency()
    }

    /// The session the shard would resume now: its id, the last sequence
    /// and the resume URL. The id and the sequence always belong to the
    /// same session.
    ///
    /// `None` before the first READY, unless the shard was given a session
    /// to resume ([`Config::resume_from`](crate::Config::resume_from), or
    /// one a session store kept): that one is reported from the driver's
    /// first wake. `None` while a new session is being identified, after
    /// a close (a resumable [`close`](Self::close) returns the session
    /// instead) and after a fatal error ended the session.
    ///
    /// A driver that ends without a close (the [`Shard`] or its
    /// [`ShardDriver`] dropped, or the task running it panicked) leaves
    /// its last session readable here, with the status `Closed`: Discord
    /// still lets it resume, and without a session store this is the one
    /// way to resume it in a new shard instead of identifying again. Its
    /// sequence may count dispatches the application never handled (they
    /// were dropped with the shard); a session store checkpoints only
    /// handled ones.
    ///
    /// The session id is a credential for resuming: [`Session`]'s `Debug`
    /// redacts it; do not log it otherwise. To hand a session over to
    /// another process, prefer [`close`](Self::close) with
    /// `CloseMode::Resumable`: a session read here while the shard runs is
    /// out of date by the next dispatch.
    pub fn session(&self) -> Option<Session> {
        self.published.session()
    }

    /// The last sequence number received (`s` of the last dispatch);
    /// `None` before the first dispatch and after an Identify reset it.
    ///
    /// A sequence of `u64::MAX` (no real gateway sends one) reads back as
    /// `u64::MAX - 1` here and in [`session`](Self::session), so that it
    /// is never taken for none; [`close`](Self::close) and
    /// [`Machine::last_seq`](crate::protocol::Machine::last_seq) keep it
    /// exact.
    pub fn last_seq(&self) -> Option<u64> {
        self.published.last_seq()
    }

    /// A stream of the shard's status changes from now on, in order (see
    /// [`StatusWatcher`]); it ends once the shard's driver has finished.
    /// Any number of watchers may run at once.
    pub fn watch_status(&self) -> StatusWatcher {
        self.status.watch()
    }

    /// Resolves with the shard's next status change, or `None` if the
    /// shard has ended (see [`watch_status`](Self::watch_status) to follow
    /// every change without missing one between two calls).
    ///
    /// ```no_run
    /// # async fn run(handle: discord_gateway_stream::ShardHandle) {
    /// if let Some(status) = handle.status_changed().await {
    ///     println!("shard {} is now {status:?}", handle.id());
    /// }
    /// # }
    /// ```
    pub fn status_changed(&self) -> impl Future<Output = Option<Status>> + Send + 'static {
        let mut watcher = self.watch_status();
        async move { watcher.changed().await }
    }

    /// Resolves with the first status that satisfies `predicate`: the
    /// current one if it does, else the first later change that does;
    /// `None` if the shard ends without one (see [`StatusWatcher::wait_for`]).
    ///
    /// ```no_run
    /// # async fn run(handle: discord_gateway_stream::ShardHandle) {
    /// use discord_gateway_stream::protocol::Status;
    ///
    /// handle.wait_for_status(|status| *status == Status::Active).await;
    /// # }
    /// ```
    pub fn wait_for_status(
        &self,
        predicate: impl FnMut(&Status) -> bool + Send + 'static,
    ) -> impl Future<Output = Option<Status>> + Send + 'static {
        let mut watcher = self.watch_status();
        async move { watcher.wait_for(predicate).await }
    }
}

/// Observability (see the same methods on [`ShardHandle`]).
impl Shard {
    /// The shard's counters (see [`ShardHandle::stats`]).
    pub fn stats(&self) -> ShardStats {
        self.handle.stats()
    }

    /// Heartbeat round trips (see [`ShardHandle::latency`]).
    pub fn latency(&self) -> Latency {
        self.handle.latency()
    }

    /// The session the shard would resume now (see [`ShardHandle::session`]).
    pub fn session(&self) -> Option<Session> {
        self.handle.session()
    }

    /// The last sequence number received (see [`ShardHandle::last_seq`]).
    pub fn last_seq(&self) -> Option<u64> {
        self.handle.last_seq()
    }

    /// A stream of status changes (see [`ShardHandle::watch_status`]). The
    /// shard itself must be polled (or its driver spawned) for the status
    /// to change.
    pub fn watch_status(&self) -> StatusWatcher {
        self.handle.watch_status()
    }
}

impl fmt::Debug for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shard").field("id", &self.id).field("driver_local", &self.driver.is_some()).finish()
    }
}

impl fmt::Debug for ShardDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShardDriver")
    }
}

impl fmt::Debug for ShardHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardHandle").field("id", &self.id).finish()
    }
}

/// What woke the driver.
enum Wake {
    Request(Option<Request>),
    Connected(io::Result<Box<Socket>>),
    Message(SocketItem),
    Timer,
    Drained,
    WriteFailed(async_tungstenite::tungstenite::Error),
    Permit(Result<IdentifyPermit, IdentifyError>),
    /// A session store request completed, or a checkpoint is due.
    Checkpoint,
}

struct Driver {
    id: ShardId,
    machine: Machine,
    connector: Arc<dyn Connector>,
    tls: transport::Tls,
    ws_config: WebSocketConfig,
    events: queue::Producer<Item>,
    /// Items the channel has not taken yet; while any wait, the socket is not read.
    pending: VecDeque<Item>,
    requests: mpsc::UnboundedReceiver<Request>,
    /// Counts the commands in `requests` and in the machine.
    commands: DriverBudget,
    /// What [`ShardHandle::skipped_payloads`] reads.
    skipped: Arc<AtomicU64>,
    socket: Option<Socket>,
    connecting: Option<Connecting>,
    /// Wakes the driver for the machine's deadline; armed for `timer_at`.
    timer: async_io::Timer,
    /// When `timer` fires; `None` once it has fired (or was never armed).
    timer_at: Option<Instant>,
    close_replies: Vec<(oneshot::Sender<Option<Session>>, Option<Session>)>,
    /// Whether the machine was told that the socket is not being read.
    reading_paused: bool,
    /// The last text frame a dispatch kept, held while tungstenite's read
    /// buffer may still be the rest of that frame's allocation. Were the
    /// dispatch dropped first, tungstenite would find the allocation
    /// unshared and take it back as its read buffer, keeping a buffer the
    /// size of the largest frame for the connection's life; held, the
    /// allocation stays shared, so tungstenite starts a new buffer once it
    /// has read past the frame's slack, and the hold is let go as soon as
    /// nothing else refers to the allocation (checked after every socket
    /// poll, and whenever a dispatch's copy is dropped: `frame_dropped`). It
    /// costs no memory: the allocation is alive anyway while anything else
    /// refers to it. tungstenite's tail does until it has read past it:
    /// about one read buffer of further traffic (up to the buffer's size
    /// before the frame, 16 KiB after a kept frame, at most 128 KiB), which
    /// on a shard gone quiet right after a large frame can take a while.
    held_frame: Option<Bytes>,
    /// Woken when a dispatch's copy of a kept frame is dropped, so the
    /// driver sees at once when its hold is the last reference.
    frame_dropped: Arc<AtomicWaker>,
    /// Frames for the current socket not yet handed to it, each with whether
    /// it is an application command; at most [`OUTBOX_MAX_FRAMES`] and about
    /// [`OUTBOX_MAX_BYTES`].
    outbox: VecDeque<(String, bool)>,
    /// The bytes of the frames in `outbox`.
    outbox_bytes: usize,
    /// Frames were left in the core because the outbox was full: take more
    /// once it has room.
    transmits_waiting: bool,
    /// Commands from the outbox of a socket that is gone, never handed to
    /// it: the core takes them back (issue 12.8) once it has seen the loss.
    unsent: Vec<String>,
    /// Something was handed to the socket (or a pong queued) since the last flush.
    flush_needed: bool,
    /// Awaited before every Identify; `None`: identify at once.
    queue: Option<Arc<dyn IdentifyQueue>>,
    /// The identify permit being waited for.
    permit: Option<Permit>,
    /// The permit of the Identify awaiting its READY.
    held_permit: Option<IdentifyPermit>,
    /// Publishes the status, counters, latency and session to the handles.
    publisher: Publisher,
    /// Woken on every status change.
    status_waker: Option<Arc<AtomicWaker>>,
    /// Saves the session now and then (with a session store).
    checkpoint: Option<Checkpointer>,
}

impl Driver {
    async fn run(mut self) {
        loop {
            self.apply_outputs().await;
            if let Some(checkpoint) = self.checkpoint.as_mut() {
                checkpoint.tick(Instant::now(), &self.machine);
            }
            self.commands.settle(self.machine.queued_commands());
            // Backpressure pauses reading; the machine must know so unread ACKs
            // are not taken for a zombie (heartbeats continue).
            let paused = !self.pending.is_empty();
            if paused != self.reading_paused {
                self.reading_paused = paused;
                self.machine.set_reading_paused(Instant::now(), paused);
            }
            // After every wake (and every message of a batch, in
            // `on_messages`): what the handles read (stats, latency, session).
            self.publisher.publish(&self.machine);
            if self.machine.is_finished() && self.socket.is_none() {
                for (reply, session) in self.close_replies.drain(..) {
                    let _ = reply.send(session);
                }
                // Nothing will read requests while the last dispatches wait
                // for the application: refuse new ones and answer the queued
                // ones now, or a close() sent meanwhile would wait forever.
                self.requests.close();
                while let Ok(request) = self.requests.try_recv() {
                    match request {
                        Request::Close(_, reply) => {
                            let _ = reply.send(None);
                        }
                        Request::Command(_) => self.commands.unread(),
                    }
                }
                self.flush_pending().await;
                if let Some(checkpoint) = self.checkpoint.as_mut() {
                    checkpoint.finish(&self.machine).await;
                }
                return;
            }
            match self.next_wake().await {
                Wake::Request(Some(Request::Command(command))) => {
                    // It stays counted against the handle's bound while the
                    // machine holds it.
                    // Its place was reserved by the handle's `send`: the
                    // machine never refuses it for a full queue.
                    let sent = self.machine.send_reserved_command(Instant::now(), command);
                    if let Err(error) = &sent {
                        tracing::warn!(%error, "command dropped");
                    }
                    self.commands.handed_to_machine(sent.is_ok());
                }
                Wake::Request(Some(Request::Close(mode, reply))) => {
                    let session = self.close_machine(mode);
                    self.close_replies.push((reply, session));
                }
                Wake::Request(None) => {
                    // Every handle and the Shard are gone: nobody can read events.
                    let _ = self.close_machine(CloseMode::Resumable);
                }
                Wake::Connected(Ok(socket)) => {
                    self.connecting = None;
                    self.drop_socket();
                    self.socket = Some(*socket);
                    self.machine.handle_open(Instant::now());
                }
                Wake::Connected(Err(error)) => {
                    tracing::warn!(%error, "connect failed");
                    self.connecting = None;
                    self.machine.handle_connect_failed(Instant::now());
                }
                Wake::Message(message) => self.on_messages(message).await,
                Wake::Timer => {
                    self.timer_at = None;
                    self.machine.handle_timeout(Instant::now());
                }
                Wake::Drained | Wake::Checkpoint => {}
                Wake::WriteFailed(error) => {
                    tracing::info!(%error, "write failed; connection lost");
                    self.drop_socket();
                    self.machine.handle_close(Instant::now(), None);
                }
                Wake::Permit(result) => {
                    self.permit = None;
                    match result {
                        Ok(permit) => {
                            self.machine.grant_identify(Instant::now());
                            // Held until the Identify's outcome
                            // (docs/edge-cases.md#identify-collisions).
                            self.held_permit = Some(permit);
                        }
                        Err(error) => {
                            tracing::error!(%error, "identify refused; the shard stops");
                            self.pending.push_back(Err(ShardError::Identify(error)));
                            let _ = self.close_machine(CloseMode::Final);
                        }
                    }
                }
            }
        }
    }

    /// Handles `first` and, in the same wake, the messages the socket has
    /// already read after it: at most [`BATCH_MESSAGES`], none started after
    /// [`BATCH_BYTES`] of work, all stamped with the one `now` of the batch.
    /// The batch also ends when nothing more is ready, when the stream has
    /// not taken a dispatch (backpressure, as in [`Self::poll_wake`]), when
    /// something waits to be written (a reply to op 1 goes out at once) or
    /// when the socket is gone; requests, timers and the outbox are then
    /// served as usual.
    async fn on_messages(&mut self, first: SocketItem) {
        let now = Instant::now();
        // Payload bytes handled (after decompression, if any).
        let work = |machine: &Machine| machine.stats().bytes_decompressed;
        let start = work(&self.machine);
        self.on_message(now, first).await;
        for _ in 1..BATCH_MESSAGES {
            if self.socket.is_none() {
                break;
            }
            // The last message's dispatch (or reply) leaves the core first,
            // and what the handles read counts it before the stream has it
            // (`ShardHandle::stats`).
            self.apply_outputs().await;
            self.publisher.publish(&self.machine);
            if !self.outbox.is_empty() || work(&self.machine).saturating_sub(start) >= BATCH_BYTES {
                break;
            }
            let Some(message) = futures_util::future::poll_fn(|cx| Poll::Ready(self.poll_ready_message(cx))).await
            else {
                break;
            };
            self.on_message(now, message).await;
        }
    }

    /// The socket's next message if it is already read and the stream has
    /// taken every dispatch so far; `None` otherwise. A `None` may leave
    /// `cx` registered with the socket or the event queue only: the caller
    /// must go through [`Self::poll_wake`] before the task waits.
    fn poll_ready_message(&mut self, cx: &mut Context<'_>) -> Option<SocketItem> {
        self.push_pending(cx);
        if !self.pending.is_empty() {
            return None;
        }
        let polled = self.socket.as_mut()?.poll_next_unpin(cx);
        self.release_held_frame();
        match polled {
            Poll::Ready(message) => Some(message),
            Poll::Pending => None,
        }
    }

    async fn on_message(&mut self, now: Instant, message: SocketItem) {
        match message {
            Some(Ok(Message::Text(text))) if text.len() >= KEEP_FRAMES_FROM => {
                self.held_frame = Some(Bytes::from(text.clone()));
                let kept = KeptFrame::new(text, Arc::clone(&self.frame_dropped));
                self.machine.handle_owned_text(now, FrameText::Frame(kept));
                self.skipped.store(self.machine.skipped_payloads(), Ordering::Relaxed);
            }
            Some(Ok(Message::Text(text))) => {
                self.machine.handle_message(now, Incoming::Text(text.as_str()));
                self.skipped.store(self.machine.skipped_payloads(), Ordering::Relaxed);
            }
            Some(Ok(Message::Binary(bytes))) => {
                // Not held (`held_frame`): tungstenite then keeps reusing a
                // read buffer the size of the largest compressed frame. Held,
                // each large frame lands in fresh memory: 1.2× the CPU on a
                // GUILD_CREATE-heavy zstd-stream replay (benches/README.md).
                self.machine.handle_message(now, Incoming::Binary(&bytes));
                self.skipped.store(self.machine.skipped_payloads(), Ordering::Relaxed);
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                // tungstenite queued the pong; the next poll flushes it out.
                self.flush_needed = true;
            }
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map(|f| u16::from(f.code));
                tracing::info!(?code, "server closed the connection");
                self.drop_socket();
                self.machine.handle_close(now, code);
            }
            Some(Err(async_tungstenite::tungstenite::Error::Capacity(
                async_tungstenite::tungstenite::error::CapacityError::MessageTooLong { size, .. },
            ))) => {
                // Counted by the machine: one the gateway replays forever stops the shard.
                self.drop_socket();
                self.machine.handle_message_too_large(now, size);
            }
            Some(Err(error)) => {
                // docs/edge-cases.md#close-without-a-code: after a close, EOF
                // without close_notify is a normal end.
                tracing::info!(%error, "connection lost");
                self.drop_socket();
                self.machine.handle_close(now, None);
            }
            None => {
                self.drop_socket();
                self.machine.handle_close(now, None);
            }
        }
    }

    /// Moves the machine's outputs to the socket and the event channel.
    async fn apply_outputs(&mut self) {
        loop {
            let mut progressed = false;
            if !self.unsent.is_empty() {
                // Every socket drop is followed by the core learning of the
                // loss (or was its own Close/Connect), which has moved the
                // commands it still held to its queue: these were taken
                // earlier and go in front of them.
                let unsent = std::mem::take(&mut self.unsent);
                let count = unsent.len();
                let back = self.machine.requeue_commands(Instant::now(), unsent);
                tracing::debug!(count, back, "commands not written before the connection ended handed back");
                progressed = true;
            }
            while let Some(action) = self.machine.poll_action() {
                progressed = true;
                match action {
                    Action::Connect { url } => self.start_connect(url),
                    Action::Close { code } => self.close_socket(code).await,
                    Action::RequestIdentifyPermit => match &self.queue {
                        Some(queue) => self.permit = Some(queue.acquire(self.id)),
                        None => self.machine.grant_identify(Instant::now()),
                    },
                }
            }
            // Written from poll_wake, so a stalled socket never blocks timers,
            // requests or zombie detection
            // (docs/edge-cases.md#half-open-connections). Bounded: while the
            // outbox is full the frames stay in the core (issue 12.2), and with
            // no socket they stay there until it sees the loss (it then takes
            // the commands back and drops the rest).
            self.transmits_waiting = false;
            while self.socket.is_some() {
                if !self.outbox_has_room() {
                    self.transmits_waiting = true;
                    break;
                }
                let Some((frame, is_command)) = self.machine.poll_transmit_tagged() else { break };
                progressed = true;
                self.outbox_bytes += frame.len();
                self.outbox.push_back((frame, is_command));
            }
            while let Some(event) = self.machine.poll_event() {
                progressed = true;
                match event {
                    Event::Dispatch(dispatch) => {
                        self.pending.push_back(Ok(dispatch));
                        if let Some(checkpoint) = self.checkpoint.as_mut() {
                            checkpoint.on_dispatch();
                        }
                    }
                    Event::Fatal(fatal) => self.pending.push_back(Err(ShardError::Fatal(fatal))),
                    // The machine already logged the transition and its reason.
                    Event::Status(status) => {
                        tracing::debug!(?status, "status");
                        if status != Status::AwaitingIdentifyPermit {
                            // The connection that asked is gone: withdraw (the
                            // queue gives the slot back).
                            self.permit = None;
                        }
                        if status != Status::Identifying {
                            // READY, or the attempt failed: release the bucket.
                            self.held_permit = None;
                        }
                        // After the stats and session of this change (never per message).
                        self.publisher.set_status(&self.machine, status);
                        if let Some(waker) = &self.status_waker {
                            waker.wake();
                        }
                    }
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Closes the machine, telling the checkpointer what to leave in the store.
    fn close_machine(&mut self, mode: CloseMode) -> Option<Session> {
        let session = self.machine.close(mode);
        if let Some(checkpoint) = self.checkpoint.as_mut() {
            checkpoint.on_close(mode, session.as_ref());
        }
        session
    }

    fn outbox_has_room(&self) -> bool {
        self.outbox.len() < OUTBOX_MAX_FRAMES && self.outbox_bytes < OUTBOX_MAX_BYTES
    }

    /// Lets go of [`Self::held_frame`] once nothing else refers to its
    /// allocation (tungstenite has moved to a new buffer and the dispatch is
    /// gone).
    fn release_held_frame(&mut self) {
        if self.held_frame.as_ref().is_some_and(Bytes::is_unique) {
            self.held_frame = None;
        }
    }

    /// Forgets the current socket and what was waiting to be written to it,
    /// keeping the commands among that for the core to take back. Frames
    /// already handed to the socket may or may not have reached the server,
    /// as with any write to a connection that then fails; they are not sent
    /// again.
    fn drop_socket(&mut self) {
        self.socket = None;
        self.held_frame = None;
        // Nothing to watch for: no dispatch kept for later keeps this task.
        self.frame_dropped.take();
        let commands = self.outbox.drain(..).filter_map(|(frame, is_command)| is_command.then_some(frame));
        self.unsent.extend(commands);
        self.outbox_bytes = 0;
        self.flush_needed = false;
    }

    fn start_connect(&mut self, url: String) {
        self.drop_socket();
        let connector = Arc::clone(&self.connector);
        let tls = self.tls.clone();
        let ws_config = self.ws_config;
        self.connecting = Some(Box::pin(async move {
            let target = Target::from_url(&url)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "unusable gateway URL"))?;
            let mut stream = connector.connect(target.clone()).await?;
            if target.tls {
                stream = tls.wrap(&target.host, stream).await?;
            }
            let socket = transport::websocket_handshake(&url, stream, ws_config).await?;
            Ok(Box::new(socket))
        }));
    }

    async fn close_socket(&mut self, code: u16) {
        self.connecting = None;
        let socket = self.socket.take();
        self.drop_socket();
        let Some(mut socket) = socket else { return };
        let frame = CloseFrame { code: CloseCode::from(code), reason: "".into() };
        // Bounded: never wait long on a dead peer (docs/edge-cases.md#half-open-connections).
        let closing = async {
            if socket.send(Message::Close(Some(frame))).await.is_err() || code != FINAL_CLOSE {
                return;
            }
            // A final close must reach the gateway (it ends the session).
            // Dropping a socket with unread input makes TCP reset it, which
            // can discard our close frame, so read to the server's reply.
            while let Some(Ok(message)) = socket.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        };
        let closing = std::pin::pin!(closing);
        let grace = std::pin::pin!(async_io::Timer::after(CLOSE_GRACE));
        let _ = futures_util::future::select(closing, grace).await;
    }

    async fn flush_pending(&mut self) {
        // The stream ends when the driver (and with it the producer) is dropped.
        while let Some(item) = self.pending.pop_front() {
            let weight = item_weight(&item);
            if self.events.push(item, weight).await.is_err() {
                return;
            }
        }
    }

    async fn next_wake(&mut self) -> Wake {
        let deadline = self.machine.poll_timeout();
        // Re-arming a timer is work for the reactor (and an allocation):
        // only when the deadline comes earlier than the armed time. A timer
        // that fires before a deadline that moved later is a spurious wake,
        // and `handle_timeout` fires only what is due.
        if let Some(at) = deadline {
            if self.timer_at.is_none_or(|armed| at < armed) {
                self.timer.set_at(at);
                self.timer_at = Some(at);
            }
        }
        futures_util::future::poll_fn(|cx| self.poll_wake(cx)).await
    }

    /// Hands waiting items to the stream while it has room; whether any
    /// left `pending`.
    fn push_pending(&mut self, cx: &mut Context<'_>) -> bool {
        let mut drained = false;
        while let Some(item) = self.pending.pop_front() {
            let weight = item_weight(&item);
            match self.events.try_push(item, weight, cx) {
                Ok(None) => drained = true,
                Ok(Some(back)) => {
                    self.pending.push_front(back);
                    break;
                }
                Err(queue::Gone) => {
                    // The stream was dropped; nothing will read these.
                    self.pending.clear();
                    drained = true;
                }
            }
        }
        drained
    }

    fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<Wake> {
        if self.held_frame.is_some() {
            // Registered before looking, so a dispatch dropped in between
            // still wakes the driver.
            self.frame_dropped.register(cx.waker());
            self.release_held_frame();
        }
        let drained = self.push_pending(cx);
        if let Poll::Ready(request) = self.requests.poll_next_unpin(cx) {
            return Poll::Ready(Wake::Request(request));
        }
        if let Some(connecting) = self.connecting.as_mut() {
            if let Poll::Ready(result) = connecting.as_mut().poll(cx) {
                return Poll::Ready(Wake::Connected(result));
            }
        }
        if let Some(socket) = self.socket.as_mut() {
            while !self.outbox.is_empty() {
                match Pin::new(&mut *socket).poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        let Some((frame, _)) = self.outbox.pop_front() else { break };
                        self.outbox_bytes = self.outbox_bytes.saturating_sub(frame.len());
                        if let Err(error) = Pin::new(&mut *socket).start_send(Message::text(frame)) {
                            return Poll::Ready(Wake::WriteFailed(error));
                        }
                        self.flush_needed = true;
                    }
                    Poll::Ready(Err(error)) => return Poll::Ready(Wake::WriteFailed(error)),
                    Poll::Pending => break,
                }
            }
            if self.flush_needed {
                match Pin::new(&mut *socket).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.flush_needed = false,
                    Poll::Ready(Err(error)) => return Poll::Ready(Wake::WriteFailed(error)),
                    Poll::Pending => {}
                }
            }
        }
        if self.transmits_waiting && self.outbox_has_room() {
            // The core holds frames the full outbox left there.
            return Poll::Ready(Wake::Drained);
        }
        // Deadlines before the socket: a gateway that never stops sending
        // must not delay heartbeats or zombie detection (beyond one batch of
        // already-read messages, see `BATCH_BYTES`).
        if self.timer_at.is_some() && self.timer.poll_unpin(cx).is_ready() {
            return Poll::Ready(Wake::Timer);
        }
        // Never awaited: a slow store only makes checkpoints older. Before
        // the socket (it is cheap), so a firehose cannot starve a save in
        // flight or a due checkpoint.
        if let Some(checkpoint) = self.checkpoint.as_mut() {
            if checkpoint.poll(cx).is_ready() {
                return Poll::Ready(Wake::Checkpoint);
            }
        }
        // Backpressure: no reading while the application is behind.
        if self.pending.is_empty() {
            if let Some(socket) = self.socket.as_mut() {
                let polled = socket.poll_next_unpin(cx);
                self.release_held_frame();
                if let Poll::Ready(message) = polled {
                    return Poll::Ready(Wake::Message(message));
                }
                // Nothing more is waiting: a large working buffer is only
                // worth keeping while payloads arrive back to back.
                self.machine.handle_read_idle();
            }
        }
        if let Some(permit) = self.permit.as_mut() {
            if let Poll::Ready(result) = permit.as_mut().poll(cx) {
                return Poll::Ready(Wake::Permit(result));
            }
        }
        if drained {
            Poll::Ready(Wake::Drained)
        } else {
            Poll::Pending
        }
    }
}

/// Heap bytes a stream item keeps alive, for the buffer's byte bound.
fn item_weight(item: &Item) -> usize {
    item.as_ref().map_or(0, Dispatch::heap_size)
}

/// A seed for the machine's jitter that differs between shards and runs.
fn entropy_seed(id: ShardId) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    // std's RandomState is keyed from OS entropy.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    id.hash(&mut hasher);
    Instant::now().hash(&mut hasher);
    hasher.finish()
}
