//! [`ShardGroup`]: many shards, one merged stream
//! (`docs/sharding.md#shard-formula`,
//! `docs/rate-limits.md#identify-concurrency`).

mod control;
mod merge;
mod roster;
mod slot;

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_channel::{mpsc, oneshot};
use futures_util::stream::FuturesUnordered;
use futures_util::task::AtomicWaker;
use futures_util::{FutureExt, Stream, StreamExt};

pub use self::control::GroupController;
use self::control::{Closed, PendingClose, Request, Scope};
use self::merge::{Merge, Merged};
use self::roster::{Removed, Restart, Roster};
use self::slot::Slot;
use crate::dispatch::Dispatch;
use crate::error::ShardError;
use crate::identify::{IdentifyQueue, LocalIdentifyQueue};
use crate::protocol::{CloseMode, Config, ConfigError, ShardStats, Status, ValidConfig};
use crate::session::Session;
use crate::shard::{Shard, ShardDriver, ShardHandle};
use crate::shard_id::ShardId;
use crate::store::{Ack, SessionStore, StoreSettings};
use crate::transport::Connector;

type Configure = Arc<dyn Fn(ShardId, Config) -> Config + Send + Sync>;
type Spawner = Arc<dyn Fn(ShardDriver) + Send + Sync>;
/// An item of the group's stream, with the acknowledgement of a dispatch.
type Acked = (Result<Dispatch, GroupError>, Option<Ack>);

/// Default for [`ShardGroupBuilder::max_connecting`].
const DEFAULT_MAX_CONNECTING: usize = 8;

/// A shard of a [`ShardGroup`] stopped: which one, and why. The other shards
/// go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shard {shard}: {error}")]
pub struct GroupError {
    /// The shard that stopped.
    pub shard: ShardId,
    /// Why it stopped.
    #[source]
    pub error: ShardError,
}

/// Why a [`ShardGroup`] could not add, restart or remove a shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The shard is already running in this group.
    #[error("shard {0} is already running in this group")]
    AlreadyRunning(ShardId),
    /// The group has no such shard.
    #[error("shard {0} is not in this group")]
    UnknownShard(ShardId),
    /// The shard could not be built (its configuration was rejected).
    #[error(transparent)]
    Shard(#[from] ShardError),
    /// The group was dropped before it carried out a controller's request.
    #[error("the shard group is gone")]
    GroupGone,
}

use crate::session::ShardSession;

/// The shard that receives a guild's events: `(guild_id >> 22) % total`
/// (`docs/sharding.md#shard-formula`). `None` when `total` is 0.
pub fn shard_for_guild(guild_id: u64, total: u32) -> Option<ShardId> {
    ShardId::for_guild(guild_id, total)
}

/// Many shards of one bot as a single `Stream` of dispatches.
///
/// Each item is a [`Dispatch`] (its [`shard()`](Dispatch::shard) says which
/// shard) or a [`GroupError`] for a shard that stopped, e.g. on a fatal
/// close code; the other shards go on. The merge is fair: after each item a
/// shard goes to the back of the line, so one busy shard cannot starve the
/// rest. Every Identify waits for the group's [`IdentifyQueue`]; Resumes
/// never do.
///
/// Shards can be added, restarted and removed while the group runs, and shards
/// of another total can run beside the old ones (resharding,
/// `docs/sharding.md#several-totals-side-by-side`).
/// [`shutdown`](Self::shutdown) closes every shard resumably and returns its
/// session, so the next process resumes them all without an Identify.
///
/// The connections are driven while the group is polled; spawn each driver
/// instead with [`ShardGroupBuilder::spawn_drivers`] if the consumer may
/// pause for long. The stream ends when no shard is left (all removed,
/// failed or shut down); adding a shard later restarts it.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use discord_gateway_stream::identify::{IdentifyLimits, LocalIdentifyQueue, SessionStartLimit};
/// use discord_gateway_stream::{Config, Intents, ShardGroup};
/// use futures::StreamExt;
///
/// // From your REST client's GET /gateway/bot:
/// let limit = SessionStartLimit { total: 1000, remaining: 996, reset_after: 3_600_000, max_concurrency: 16 };
/// let config = Config::new(std::env::var("DISCORD_TOKEN")?, Intents::GUILDS);
/// let mut group = ShardGroup::builder(config, 64)
///     .shards(16..32)
///     .identify_queue(LocalIdentifyQueue::new(IdentifyLimits::from_session_start_limit(limit)))
///     .build()?;
/// while let Some(item) = group.next().await {
///     match item {
///         Ok(dispatch) => println!("{} {} {}", dispatch.shard(), dispatch.seq(), dispatch.event()),
///         Err(stopped) => eprintln!("{stopped}"),
///     }
/// }
/// # Ok(()) }
/// ```
pub struct ShardGroup {
    /// Every shard's configuration but its id, checked once at build.
    template: ValidConfig,
    connector: Arc<dyn Connector>,
    tls: crate::transport::Tls,
    queue: Arc<dyn IdentifyQueue>,
    configure: Option<Configure>,
    spawner: Option<Spawner>,
    /// Every shard id the group knows: its state, its slot in `merge` and
    /// the session it is to resume.
    roster: Roster,
    merge: Merge<Slot>,
    max_connecting: usize,
    /// Woken by any shard's status change (a connecting slot may be free).
    status_waker: Arc<AtomicWaker>,
    /// Requests from [`GroupController`]s, and the closes they wait for.
    control_tx: mpsc::UnboundedSender<Request>,
    control_rx: mpsc::UnboundedReceiver<Request>,
    closing: FuturesUnordered<PendingClose>,
    /// Dispatches delivered while a management call drove the group, each
    /// with its acknowledgement: stashed is not handled.
    stash: VecDeque<Acked>,
    /// The acknowledgement of the last dispatch the application took: it
    /// counts as handled once the application asks for the next item.
    unacked: Option<Ack>,
    /// Start errors of shards that an add or restart of another shard
    /// started on its way: that call answers for its own shard only, the
    /// stream reports these.
    failed: VecDeque<GroupError>,
    /// Where each shard checkpoints its session, if anywhere.
    store: StoreSettings,
}

/// Configures a [`ShardGroup`].
#[must_use = "call build() to get the group"]
pub struct ShardGroupBuilder {
    config: Config,
    total: u32,
    range: Range<u32>,
    queue: Option<Arc<dyn IdentifyQueue>>,
    connector: Option<Arc<dyn Connector>>,
    tls: crate::transport::Tls,
    resume: Vec<ShardSession>,
    configure: Option<Configure>,
    spawner: Option<Spawner>,
    max_connecting: usize,
    store: StoreSettings,
}

impl ShardGroup {
    /// A group of shards of `total`; `config` is the template for each
    /// shard (its shard id is set per shard). Runs every shard of `total`
    /// unless [`shards`](ShardGroupBuilder::shards) picks a range.
    pub fn builder(config: Config, total: u32) -> ShardGroupBuilder {
        ShardGroupBuilder {
            config,
            total,
            range: 0..total,
            queue: None,
            connector: None,
            tls: crate::transport::Tls::default(),
            resume: Vec::new(),
            configure: None,
            spawner: None,
            max_connecting: DEFAULT_MAX_CONNECTING,
            store: StoreSettings::default(),
        }
    }

    /// A cloneable handle to add, restart and remove shards, or shut the
    /// group down, from other tasks while this one polls the stream.
    pub fn controller(&self) -> GroupController {
        GroupController { requests: self.control_tx.clone() }
    }

    /// Every shard the group knows (running, stopped, or waiting to
    /// connect), in order.
    pub fn shard_ids(&self) -> Vec<ShardId> {
        self.roster.ids()
    }

    /// Whether `shard` is in the group and its connection runs (or waits
    /// for a connecting slot).
    pub fn is_running(&self, shard: ShardId) -> bool {
        self.roster.is_running(shard)
    }

    /// The status of `shard` now (`None` if the group has no such shard). A
    /// shard waiting for a connecting slot is `Connecting`.
    pub fn status(&self, shard: ShardId) -> Option<Status> {
        self.roster.status(shard)
    }

    /// Every shard's status now, in shard order.
    pub fn statuses(&self) -> Vec<(ShardId, Status)> {
        self.shard_ids().into_iter().filter_map(|id| Some((id, self.status(id)?))).collect()
    }

    /// How many shards (of `total`, or of any total when `None`) are Active.
    pub fn active_count(&self, total: Option<u32>) -> usize {
        self.roster
            .handles()
            .filter(|(id, handle)| total.is_none_or(|t| id.total == t) && handle.status() == Status::Active)
            .count()
    }

    /// The command sender of `shard`'s newest connection; `None` if the
    /// group has no such shard or it waits for a connecting slot (after
    /// [`add`](Self::add) or [`restart`](Self::restart), while
    /// [`ShardGroupBuilder::max_connecting`] shards are opening sockets).
    pub fn handle(&self, shard: ShardId) -> Option<ShardHandle> {
        self.roster.handle(shard).cloned()
    }

    /// The command sender of the shard of `total` that receives `guild_id`'s
    /// events (`docs/sharding.md#shard-formula`), if the group runs it.
    pub fn handle_for_guild(&self, guild_id: u64, total: u32) -> Option<ShardHandle> {
        self.handle(shard_for_guild(guild_id, total)?)
    }

    /// Starts `shard` (resuming it if the group holds its session) once a
    /// connecting slot is free. A shard of another total may run beside the
    /// current ones: resharding starts the new total, waits for it to be
    /// Active, then removes the old one.
    pub fn add(&mut self, shard: ShardId) -> Result<(), ControlError> {
        if !self.roster.add(shard) {
            return Err(ControlError::AlreadyRunning(shard));
        }
        self.start_queued_for(shard)
    }

    /// Starts shards `range` of `total` (see [`add`](Self::add)); stops at
    /// the first error.
    pub fn add_range(&mut self, total: u32, range: Range<u32>) -> Result<(), ControlError> {
        for id in range {
            let shard = ShardId::new(id, total).ok_or(ShardError::ShardOutOfRange { id, total })?;
            self.add(shard)?;
        }
        Ok(())
    }

    /// Closes `shard` with `mode` and forgets it; returns its session when
    /// `mode` is `Resumable`. Dispatches it had already received are still
    /// yielded by the stream. A shard still waiting for a connecting slot
    /// never connected: its session (if it was to resume one) is returned
    /// for `Resumable` and dropped for `Final` (no 1000 is sent; the
    /// session expires on its own).
    ///
    /// Like every management call (these methods and [`GroupController`]'s),
    /// it waits for those before it, so two never act on a shard at once.
    /// While it waits, the group goes on driving its shards; what they
    /// deliver meanwhile is kept for the stream, in order.
    pub async fn remove(&mut self, shard: ShardId, mode: CloseMode) -> Result<Option<Session>, ControlError> {
        self.request(|reply| Request::Remove(shard, mode, reply)).await?
    }

    /// Closes every shard of `total` with `mode` (the old set, after a
    /// reshard) and returns the sessions of those closed resumably.
    pub async fn remove_total(&mut self, total: u32, mode: CloseMode) -> Vec<ShardSession> {
        self.request(|reply| Request::CloseWhere(Scope::Total(total), mode, reply)).await.unwrap_or_default()
    }

    /// Restarts `shard`: a running one is closed resumably and reconnects
    /// resuming its session (no Identify); a stopped one starts afresh.
    /// Either way it waits for a connecting slot
    /// ([`ShardGroupBuilder::max_connecting`]) like any other start, so
    /// restarting many shards at once does not open their sockets at once.
    pub async fn restart(&mut self, shard: ShardId) -> Result<(), ControlError> {
        self.request(|reply| Request::Restart(shard, reply)).await?
    }

    /// Closes every shard resumably (close code 4000,
    /// `docs/close-codes.md#our-own-close-codes`) and returns their sessions,
    /// for a process that takes over with [`ShardGroupBuilder::resume`] and
    /// resumes them all without a single Identify. Keep polling the stream
    /// afterwards: it yields the dispatches the shards had already received,
    /// then ends.
    ///
    /// If the future is dropped before it completes, the group still closes
    /// the shards when next polled, but their sessions are lost: put a
    /// timeout around the draining that follows, not around this.
    pub async fn shutdown(&mut self) -> Vec<ShardSession> {
        self.request(|reply| Request::CloseWhere(Scope::All, CloseMode::Resumable, reply)).await.unwrap_or_default()
    }

    /// Queues a management request behind any earlier one and drives the
    /// group until it is answered, keeping what the shards deliver
    /// meanwhile for the stream.
    async fn request<T>(&mut self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, ControlError> {
        let (reply, mut answer) = oneshot::channel();
        self.control_tx.unbounded_send(make(reply)).map_err(|_| ControlError::GroupGone)?;
        futures_util::future::poll_fn(|cx| loop {
            if let Poll::Ready(answered) = answer.poll_unpin(cx) {
                return Poll::Ready(answered.map_err(|_| ControlError::GroupGone));
            }
            match self.poll_group(cx) {
                Poll::Ready(Some(item)) => self.stash.push_back(item),
                Poll::Ready(None) | Poll::Pending => {
                    return answer.poll_unpin(cx).map(|answered| answered.map_err(|_| ControlError::GroupGone));
                }
            }
        })
        .await
    }

    /// Carries out a controller's request; closes run in `closing` while
    /// the group goes on polling (and so driving) its shards.
    fn on_request(&mut self, request: Request) {
        match request {
            Request::Add(shard, reply) => {
                let _ = reply.send(self.add(shard));
            }
            Request::Restart(shard, reply) => {
                let handle = match self.roster.restart(shard) {
                    Restart::Waiting => {
                        let _ = reply.send(Ok(()));
                        return;
                    }
                    Restart::Unknown => {
                        let _ = reply.send(Err(ControlError::UnknownShard(shard)));
                        return;
                    }
                    Restart::Stopped => {
                        let _ = reply.send(self.requeue(shard, None));
                        return;
                    }
                    Restart::Running(handle) => handle,
                };
                self.closing.push(Box::pin(async move {
                    let session = handle.close(CloseMode::Resumable).await;
                    Closed::Restart(shard, session, reply)
                }));
            }
            Request::Remove(shard, mode, reply) => match self.roster.remove(shard, mode) {
                Removed::Unknown => {
                    let _ = reply.send(Err(ControlError::UnknownShard(shard)));
                }
                // One waiting for a connecting slot never connected: a
                // session it was to resume is still valid.
                Removed::NotRunning(session) => {
                    let _ = reply.send(Ok(session));
                }
                Removed::Running(handle) => {
                    self.closing.push(Box::pin(async move { Closed::Removed(handle.close(mode).await, reply) }));
                }
            },
            Request::CloseWhere(scope, mode, reply) => {
                let (mut sessions, running) = self.roster.remove_where(|id| scope.contains(id), mode);
                self.closing.push(Box::pin(async move {
                    let closing = running.iter().map(|handle| async move {
                        let session = handle.close(mode).await?;
                        Some(ShardSession { shard: handle.id(), session })
                    });
                    sessions.extend(futures_util::future::join_all(closing).await.into_iter().flatten());
                    sessions.sort_by_key(|s| s.shard);
                    Closed::Many(sessions, reply)
                }));
            }
        }
    }

    fn on_closed(&mut self, closed: Closed) {
        match closed {
            Closed::Restart(shard, session, reply) => {
                let _ = reply.send(self.requeue(shard, session));
            }
            Closed::Removed(session, reply) => {
                let _ = reply.send(Ok(session));
            }
            Closed::Many(sessions, reply) => {
                let _ = reply.send(sessions);
            }
        }
    }

    /// `shard`'s configuration: the template's, with its own seed and session.
    fn shard_config(&self, shard: ShardId, session: Option<Session>) -> Result<ValidConfig, ConfigError> {
        // A template's session or seed is not every shard's.
        let seed = self
            .template
            .seed()
            .map(|seed| seed ^ u64::from(shard.id).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(shard.total));
        let Some(configure) = &self.configure else {
            // Only the shard id differs from the checked template.
            let config = self.template.for_shard(shard)?;
            let config = match seed {
                Some(seed) => config.rng_seed(seed),
                None => config,
            };
            return Ok(config.resume_from(session));
        };
        let mut config = Config::clone(&self.template).shard(shard);
        config.resume_from = None;
        if let Some(seed) = seed {
            config = config.rng_seed(seed);
        }
        config = configure(shard, config);
        if let Some(session) = session {
            config = config.resume_from(session);
        }
        // `configure` may change anything but which shard this is: all is checked again.
        ValidConfig::new(config.shard(shard))
    }

    fn start(&mut self, shard: ShardId, session: Option<Session>) -> Result<(), ShardError> {
        let config = self.shard_config(shard, session)?;
        let mut running = Shard::builder_valid(config)
            .shared_connector(Arc::clone(&self.connector))
            .tls(self.tls.clone())
            .shared_identify_queue(Arc::clone(&self.queue))
            .status_waker(Arc::clone(&self.status_waker))
            .store_settings(self.store.clone())
            .build()?;
        // Handled is what the application took from the group and then asked
        // for more; the group's own polls of the shard do not count.
        running.acknowledge_externally();
        if let Some(spawn) = &self.spawner {
            if let Some(driver) = running.take_driver() {
                spawn(driver);
            }
        }
        let handle = running.handle();
        // Behind the shard id's previous connection if it is still handing
        // over dispatches, so the shard's dispatches stay in order.
        let draining = self.roster.slot(shard).and_then(|key| Some((key, self.merge.get_mut(key)?)));
        let key = if let Some((key, slot)) = draining {
            slot.push(running);
            self.merge.wake(key);
            key
        } else {
            self.merge.insert(Slot::new(running))
        };
        self.roster.started(shard, handle, key);
        Ok(())
    }

    /// Puts a restarted `shard` back in line (resuming `session`), behind
    /// the `max_connecting` limit like every other start.
    fn requeue(&mut self, shard: ShardId, session: Option<Session>) -> Result<(), ControlError> {
        self.roster.requeue(shard, session);
        self.start_queued_for(shard)
    }

    /// Starts queued shards for a call about `shard`: `shard`'s own start
    /// error is the call's answer; one of a shard ahead of it in line is
    /// left for the stream to report.
    fn start_queued_for(&mut self, shard: ShardId) -> Result<(), ControlError> {
        loop {
            match self.start_queued() {
                Ok(()) => return Ok(()),
                Err(failed) if failed.shard == shard => return Err(ControlError::Shard(failed.error)),
                // It left the line: go on, `shard` may start now.
                Err(failed) => self.failed.push_back(failed),
            }
        }
    }

    /// Starts queued shards while fewer than `max_connecting` are opening a
    /// socket: a thousand shards do not all hit the network (and the CPU) in
    /// the same instant, and identify pacing
    /// (`docs/rate-limits.md#identify-concurrency`) is not skewed by it.
    fn start_queued(&mut self) -> Result<(), GroupError> {
        while let Some((shard, session)) = self.roster.next_to_start(self.max_connecting) {
            let unused = session.clone();
            if let Err(error) = self.start(shard, session) {
                // No connection used the session: it stays valid.
                self.roster.not_started(shard, unused);
                return Err(GroupError { shard, error });
            }
        }
        Ok(())
    }
}

impl ShardGroupBuilder {
    /// Runs only shards `range` of the total (e.g. `16..32` of 64, the
    /// rest running in other processes).
    pub fn shards(mut self, range: Range<u32>) -> Self {
        self.range = range;
        self
    }

    /// The identify coordinator shared by the group's shards (default: a
    /// [`LocalIdentifyQueue`] with one bucket). Give every group of the bot
    /// the same queue: in one process a clone of one `LocalIdentifyQueue`,
    /// across processes a shared one such as the `redis` feature's.
    pub fn identify_queue(mut self, queue: impl IdentifyQueue) -> Self {
        self.queue = Some(Arc::new(queue));
        self
    }

    /// Opens byte streams through `connector` (default: the
    /// [`DefaultConnector`](crate::transport::DefaultConnector), which
    /// covers tokio, async-std and any other executor).
    pub fn connector(mut self, connector: impl Connector) -> Self {
        self.connector = Some(Arc::new(connector));
        self
    }

    /// Secures every shard's `wss://` connections with `config`, used as
    /// given (see [`ShardBuilder::tls_config`](crate::ShardBuilder::tls_config)).
    #[cfg(feature = "rustls")]
    pub fn tls_config(mut self, config: impl Into<Arc<crate::transport::rustls::ClientConfig>>) -> Self {
        self.tls = crate::transport::Tls::given(config.into());
        self
    }

    /// Sessions from a previous process's [`ShardGroup::shutdown`]: those
    /// shards resume instead of identifying.
    pub fn resume(mut self, sessions: impl IntoIterator<Item = ShardSession>) -> Self {
        self.resume.extend(sessions);
        self
    }

    /// Adjusts each shard's configuration (e.g. a presence per shard).
    pub fn configure(mut self, configure: impl Fn(ShardId, Config) -> Config + Send + Sync + 'static) -> Self {
        self.configure = Some(Arc::new(configure));
        self
    }

    /// Hands each shard's connection driver to `spawn` (e.g.
    /// `|driver| { tokio::spawn(driver); }`), so connections keep
    /// heartbeating while the stream is not polled.
    pub fn spawn_drivers(mut self, spawn: impl Fn(ShardDriver) + Send + Sync + 'static) -> Self {
        self.spawner = Some(Arc::new(spawn));
        self
    }

    /// How many shards may be opening a socket at once (default 8), whether
    /// they start, are added or restart; the others wait their turn.
    /// Identify pacing is slower than this anyway.
    pub fn max_connecting(mut self, count: usize) -> Self {
        self.max_connecting = count.max(1);
        self
    }

    /// Every shard checkpoints its session in `store`, and a shard without
    /// a session from [`resume`](Self::resume) resumes the one stored for
    /// it (same id and total) instead of identifying, so the shards of a
    /// crashed process resume in the next one. See
    /// [`SessionStore`](crate::store::SessionStore) for when shards save,
    /// clear and load, and the delivery guarantee.
    pub fn session_store(mut self, store: impl SessionStore) -> Self {
        self.store.store = Some(Arc::new(store));
        self
    }

    /// At most one checkpoint per shard per `interval` (see
    /// [`ShardBuilder::checkpoint_interval`](crate::ShardBuilder::checkpoint_interval)).
    pub fn checkpoint_interval(mut self, interval: std::time::Duration) -> Self {
        self.store.set_interval(interval);
        self
    }

    /// Starts the shards. Fails if the range does not fit the total, the
    /// configuration is invalid, or TLS cannot be set up for a `wss://` URL.
    pub fn build(self) -> Result<ShardGroup, ShardError> {
        if self.total == 0 || self.range.end > self.total {
            return Err(ShardError::ShardOutOfRange { id: self.range.end.saturating_sub(1), total: self.total });
        }
        let template = ValidConfig::new(self.config)?;
        self.tls.check(&template.base_url)?;
        let connector = self.connector.unwrap_or_else(|| Arc::new(crate::transport::DefaultConnector));
        let (control_tx, control_rx) = mpsc::unbounded();
        let mut group = ShardGroup {
            template,
            connector,
            tls: self.tls,
            queue: self.queue.unwrap_or_else(|| Arc::new(LocalIdentifyQueue::default())),
            configure: self.configure,
            spawner: self.spawner,
            roster: Roster::new(self.resume, self.range.filter_map(|id| ShardId::new(id, self.total))),
            merge: Merge::new(),
            max_connecting: self.max_connecting,
            status_waker: Arc::default(),
            control_tx,
            control_rx,
            closing: FuturesUnordered::new(),
            stash: VecDeque::new(),
            unacked: None,
            failed: VecDeque::new(),
            store: self.store,
        };
        group.start_queued().map_err(|failed| failed.error)?;
        Ok(group)
    }
}

impl Stream for ShardGroup {
    type Item = Result<Dispatch, GroupError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // The application asks for the next item: the one it took is handled
        // (only here; the group's own polls, e.g. in a management call, are not
        // the application's).
        if let Some(ack) = this.unacked.take() {
            ack.handled();
        }
        let (item, ack) = match this.stash.pop_front() {
            Some(stashed) => stashed,
            None => match this.poll_group(cx) {
                Poll::Ready(Some(yielded)) => yielded,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            },
        };
        this.unacked = ack;
        Poll::Ready(Some(item))
    }
}

impl ShardGroup {
    /// Carries out management requests one at a time, starts queued shards
    /// and yields the next item of the fair merge, with the acknowledgement
    /// of a dispatch (with a session store).
    fn poll_group(&mut self, cx: &mut Context<'_>) -> Poll<Option<Acked>> {
        let this = self;
        this.status_waker.register(cx.waker());
        loop {
            while let Poll::Ready(Some(closed)) = this.closing.poll_next_unpin(cx) {
                this.on_closed(closed);
            }
            // One request at a time: the next waits until the closes of the
            // previous are done, so two never act on the same shard.
            if !this.closing.is_empty() {
                break;
            }
            match this.control_rx.poll_next_unpin(cx) {
                Poll::Ready(Some(request)) => this.on_request(request),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        loop {
            if let Some(failed) = this.failed.pop_front() {
                return Poll::Ready(Some((Err(failed), None)));
            }
            // Again after each ended stream: it may have freed a connecting slot.
            if let Err(failed) = this.start_queued() {
                // A configuration `configure` made invalid for this shard.
                return Poll::Ready(Some((Err(failed), None)));
            }
            match this.merge.poll_next(cx) {
                Poll::Ready(Some(Merged::Item(key, Ok(dispatch)))) => {
                    let ack = this.merge.get_mut(key).and_then(|slot| slot.last_ack());
                    return Poll::Ready(Some((Ok(dispatch), ack)));
                }
                Poll::Ready(Some(Merged::Item(key, Err(error)))) => {
                    let Some(slot) = this.merge.get_mut(key) else { continue };
                    let shard = slot.id();
                    // An error ends that connection; unless a newer one
                    // waits behind it, the shard has stopped.
                    if !slot.has_successor() {
                        this.roster.stopped(shard);
                    }
                    return Poll::Ready(Some((Err(GroupError { shard, error }), None)));
                }
                Poll::Ready(Some(Merged::Ended(key, ended))) => {
                    let shard = ended.id();
                    ended.mark_ended();
                    // It no longer holds a connecting slot either (its
                    // driver may have died before connecting).
                    this.roster.stopped(shard);
                    this.roster.slot_ended(shard, key);
                }
                Poll::Ready(None) if !this.roster.has_waiting() && this.closing.is_empty() => return Poll::Ready(None),
                // Shards wait for a connecting slot (the status waker is
                // registered) or closes are pending (they wake us).
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Observability: each shard's counters, latency and session, through its
/// [`ShardHandle`].
impl ShardGroup {
    /// The handle of every shard the group has started (running or
    /// stopped; not those still waiting for a connecting slot), in shard
    /// order: read [`stats`](ShardHandle::stats),
    /// [`latency`](ShardHandle::latency), [`session`](ShardHandle::session)
    /// or [`watch_status`](ShardHandle::watch_status) from each.
    ///
    /// ```no_run
    /// # fn export(group: &discord_gateway_stream::ShardGroup) {
    /// for handle in group.handles() {
    ///     let (stats, latency) = (handle.stats(), handle.latency());
    ///     println!("{} {} {:?}", handle.id(), stats.dispatches, latency.average());
    /// }
    /// # }
    /// ```
    pub fn handles(&self) -> Vec<ShardHandle> {
        self.shard_ids().into_iter().filter_map(|id| self.handle(id)).collect()
    }

    /// The counters of `shard`'s newest connection (see
    /// [`ShardHandle::stats`]); `None` if the group has no such shard or it
    /// waits for a connecting slot. A restarted shard is a new connection:
    /// its counters start again from zero.
    pub fn stats(&self, shard: ShardId) -> Option<ShardStats> {
        Some(self.handle(shard)?.stats())
    }

    /// Every started shard's counters, in shard order (see [`stats`](Self::stats)).
    pub fn shard_stats(&self) -> Vec<(ShardId, ShardStats)> {
        self.handles().iter().map(|handle| (handle.id(), handle.stats())).collect()
    }
}

impl fmt::Debug for ShardGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardGroup").field("shards", &self.shard_ids()).finish()
    }
}

impl fmt::Debug for ShardGroupBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardGroupBuilder").field("total", &self.total).field("range", &self.range).finish()
    }
}
