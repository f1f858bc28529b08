//! The driver's side of a [`SessionStore`]: when to save, what, and how
//! without ever waiting for the store on the dispatch path.
//!
//! A checkpoint is taken in two steps. A *candidate* is the machine's
//! session (id, last `s`, resume URL) together with how many dispatches the
//! driver had handed to the stream by then. It is saved once the
//! application has handled that many ([`Acks`]), so a checkpoint never
//! claims a dispatch still buffered or being worked on. One store request
//! at most is in flight; the next candidate is taken when it is due (one
//! checkpoint interval after the last request started) and nothing is in
//! flight, so a slow store coalesces to the newest state instead of queuing.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{SessionStore, SessionStoreError, DEFAULT_CHECKPOINT_INTERVAL, MIN_CHECKPOINT_INTERVAL};
use crate::protocol::{CloseMode, Machine, Status};
use crate::session::{Session, ShardSession};
use crate::shard_id::ShardId;

/// How long a shard waits for [`SessionStore::load`] before identifying.
const LOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a store request may take while the shard runs: then it is
/// dropped (abandoned), logged, and the next checkpoint tries again.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a finished shard may spend on its last store requests.
const FINISH_GRACE: Duration = Duration::from_secs(5);
/// A shard whose session does not change saves it again every this much of
/// the store's [`expiry`](SessionStore::expiry), so the record of a quiet
/// but live session never expires.
const KEEP_ALIVE_DIVISOR: u32 = 3;
/// How often a finished shard checks whether the application has handled
/// its last dispatches.
const ACK_POLL: Duration = Duration::from_millis(20);

type Op = BoxFuture<'static, Result<(), SessionStoreError>>;

/// A shard's store and checkpoint interval, as the builders collect them.
#[derive(Clone)]
pub(crate) struct StoreSettings {
    pub(crate) store: Option<Arc<dyn SessionStore>>,
    pub(crate) interval: Duration,
    /// Which connection of each shard id owns its record: shared by the
    /// shards built from these settings (a group's).
    pub(crate) owners: Arc<Owners>,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings { store: None, interval: DEFAULT_CHECKPOINT_INTERVAL, owners: Arc::default() }
    }
}

/// The newest checkpointer of each shard id among shards sharing
/// [`StoreSettings`]: an older connection of the same shard (a group's
/// restart) leaves its final state to it instead of writing over what the
/// newer one saved or cleared. One entry per shard id with a live
/// checkpointer.
#[derive(Default)]
pub(crate) struct Owners {
    next: AtomicU64,
    newest: Mutex<HashMap<ShardId, u64>>,
}

impl Owners {
    /// Makes a new checkpointer of `shard` the newest; returns its number.
    fn claim(&self, shard: ShardId) -> u64 {
        let number = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.lock().insert(shard, number);
        number
    }

    fn is_newest(&self, shard: ShardId, number: u64) -> bool {
        self.lock().get(&shard) == Some(&number)
    }

    fn release(&self, shard: ShardId, number: u64) {
        let mut newest = self.lock();
        if newest.get(&shard) == Some(&number) {
            newest.remove(&shard);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ShardId, u64>> {
        self.newest.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StoreSettings {
    pub(crate) fn set_interval(&mut self, interval: Duration) {
        self.interval = interval.max(MIN_CHECKPOINT_INTERVAL);
    }
}

impl fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSettings").field("store", &self.store.is_some()).field("interval", &self.interval).finish()
    }
}

/// The stream's side: counts the dispatches the application has handled
/// (taken from the stream, and then asked for the next item).
///
/// A lone [`Shard`](crate::Shard) is polled by the application itself, so a
/// poll means the application asks for the next item. A
/// [`ShardGroup`](crate::ShardGroup) polls its shards for its own reasons
/// too (management calls stash what they deliver meanwhile): its shards
/// acknowledge [externally](Self::acknowledge_externally), and the group
/// hands on an [`Ack`] with each item it yields to the application.
pub(crate) struct Acks {
    handled: Arc<AtomicU64>,
    /// Dispatches the stream has yielded.
    yielded: u64,
    /// What `handled` was last set to.
    published: u64,
    /// Whether the owner of the stream acknowledges items with [`Ack`]s
    /// instead of a poll doing it.
    external: bool,
}

/// One dispatch yielded by a shard's stream: once the application asks for
/// the item after it, [`handled`](Self::handled) counts it (and every
/// dispatch of that shard before it) as handled.
pub(crate) struct Ack {
    handled: Arc<AtomicU64>,
    /// The shard's yielded count with this dispatch.
    count: u64,
}

impl Ack {
    /// The application has asked for the next item.
    pub(crate) fn handled(self) {
        self.handled.fetch_max(self.count, Ordering::Release);
    }
}

impl Acks {
    pub(crate) fn new() -> Acks {
        Acks { handled: Arc::default(), yielded: 0, published: 0, external: false }
    }

    /// The count the driver's [`Checkpointer`] reads.
    pub(crate) fn counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.handled)
    }

    /// From now on a poll acknowledges nothing: the stream's owner hands on
    /// [`last`](Self::last) with each item instead.
    pub(crate) fn acknowledge_externally(&mut self) {
        self.external = true;
    }

    /// The acknowledgement of the last dispatch yielded (call right after
    /// it was yielded).
    pub(crate) fn last(&self) -> Ack {
        Ack { handled: Arc::clone(&self.handled), count: self.yielded }
    }

    /// Called when the stream is polled: unless acknowledged externally,
    /// the application asks for the next item, so what it took before is
    /// handled.
    pub(crate) fn on_poll(&mut self) {
        if !self.external && self.yielded != self.published {
            self.published = self.yielded;
            self.handled.store(self.yielded, Ordering::Release);
        }
    }

    /// Called with each item the stream yields.
    pub(crate) fn on_item<T, E>(&mut self, item: &Poll<Option<Result<T, E>>>) {
        if let Poll::Ready(Some(Ok(_))) = item {
            self.yielded += 1;
        }
    }
}

/// What the store holds, as far as this shard knows.
#[derive(PartialEq)]
enum Stored {
    /// A request failed, or the session came from elsewhere.
    Unknown,
    Nothing,
    Session(Session),
}

/// The state to leave in the store once the shard has stopped.
enum Last {
    /// A resumable close: this session, once `at` dispatches are handled.
    Save(Session, u64),
    Clear,
}

/// The driver's checkpointing.
pub(crate) struct Checkpointer {
    store: Arc<dyn SessionStore>,
    shard: ShardId,
    interval: Duration,
    /// Dispatches the application has handled (written by [`Acks`]).
    handled: Arc<AtomicU64>,
    /// Dispatches the driver has handed towards the stream.
    emitted: u64,
    /// No state is saved before the application has handled this many of
    /// this connection's dispatches: 1 for a session given explicitly (see
    /// [`start`](Self::start)), 0 otherwise.
    floor: u64,
    stored: Stored,
    /// A snapshot waiting for the application to handle what came before it.
    candidate: Option<(Session, u64)>,
    in_flight: Option<Op>,
    /// No request starts before this.
    next_due: Instant,
    /// How often the stored session is saved again while it does not
    /// change; `None` when the store's records do not expire.
    keep_alive: Option<Duration>,
    /// When the stored session was last saved; `None` when unknown (it was
    /// loaded: the record may be old).
    saved_at: Option<Instant>,
    timer: async_io::Timer,
    timer_at: Option<Instant>,
    /// What the last snapshot saw; a change means the session may have moved.
    seen_seq: Option<u64>,
    seen_status: Option<Status>,
    /// Set by a close: the final state, saved or cleared by `finish`.
    last: Option<Last>,
    /// This checkpointer's number among `owners`.
    owners: Arc<Owners>,
    owner: u64,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.owners.release(self.shard, self.owner);
    }
}

impl Checkpointer {
    /// Loads the stored session for `shard` (bounded by [`LOAD_TIMEOUT`]),
    /// unless `resume_from` already names one, and returns the session to
    /// resume with the checkpointer; `handled` is the stream's
    /// [`Acks::counter`].
    ///
    /// A session given explicitly (`Config::resume_from`,
    /// `ShardGroupBuilder::resume`, a group's `restart`) comes from a
    /// connection whose dispatches up to its `seq` may still wait, unhandled,
    /// in front of this one's (a restarted shard's old connection hands over
    /// its buffer first). So such a shard saves nothing, not even the
    /// session it was given, until the application has handled a dispatch
    /// of its own: by then it has handled everything queued before it.
    pub(crate) async fn start(
        settings: StoreSettings,
        shard: ShardId,
        resume_from: Option<&Session>,
        handled: Arc<AtomicU64>,
    ) -> Option<(Checkpointer, Option<Session>)> {
        let store = settings.store?;
        let owner = settings.owners.claim(shard);
        let keep_alive = store.expiry().map(|expiry| (expiry / KEEP_ALIVE_DIVISOR).max(settings.interval));
        let (stored, loaded) = match resume_from {
            Some(_) => (Stored::Unknown, None),
            None => match load(&*store, shard).await {
                Ok(Some(session)) => (Stored::Session(session.clone()), Some(session)),
                Ok(None) => (Stored::Nothing, None),
                Err(()) => (Stored::Unknown, None),
            },
        };
        let checkpointer = Checkpointer {
            store,
            shard,
            interval: settings.interval,
            handled,
            emitted: 0,
            floor: u64::from(resume_from.is_some()),
            stored,
            candidate: None,
            in_flight: None,
            next_due: Instant::now(),
            keep_alive,
            saved_at: None,
            timer: async_io::Timer::never(),
            timer_at: None,
            seen_seq: None,
            seen_status: None,
            last: None,
            owners: settings.owners,
            owner,
        };
        Some((checkpointer, loaded))
    }

    /// A dispatch was handed towards the stream.
    pub(crate) fn on_dispatch(&mut self) {
        self.emitted += 1;
    }

    /// The application closed the machine with `mode`; `session` is what
    /// the close returned.
    pub(crate) fn on_close(&mut self, mode: CloseMode, session: Option<&Session>) {
        if self.last.is_some() {
            return;
        }
        self.last = Some(match (mode, session) {
            (CloseMode::Resumable, Some(session)) => Last::Save(session.clone(), self.emitted.max(self.floor)),
            _ => Last::Clear,
        });
    }

    /// After the machine's outputs were applied: starts a store request if
    /// one is due and the session moved on, or if the unchanged session's
    /// record needs keeping alive. Cheap when nothing changed: two
    /// comparisons (and a third with a keep-alive).
    pub(crate) fn tick(&mut self, now: Instant, machine: &Machine) {
        if self.last.is_some() || self.in_flight.is_some() {
            // Closing (`finish` takes over), or coalescing behind a request.
            return;
        }
        let seq = machine.last_seq();
        let status = machine.status();
        let changed = seq != self.seen_seq || self.seen_status.as_ref() != Some(status);
        if changed {
            self.drop_superseded(machine);
        }
        if changed || self.candidate.is_some() {
            if now < self.next_due {
                self.arm(self.next_due);
                return;
            }
            self.checkpoint(now, machine, changed);
        }
        if self.in_flight.is_none() {
            self.keep_alive(now, machine);
        }
    }

    /// Forgets a candidate whose session is no longer the machine's: after
    /// an op 9 (or a new READY) while the application was behind, saving it
    /// later would put an invalidated session back over the clear.
    fn drop_superseded(&mut self, machine: &Machine) {
        let current = machine.session_ids().map(|(id, _)| id);
        if self.candidate.as_ref().is_some_and(|(session, _)| current != Some(session.id.as_str())) {
            self.candidate = None;
        }
    }

    /// A due checkpoint: a fresh snapshot if the session moved on, saved
    /// once the application has handled what came before it.
    fn checkpoint(&mut self, now: Instant, machine: &Machine, changed: bool) {
        if changed && self.candidate.is_none() {
            // A pending candidate is kept until it is saved: replacing it
            // under a steady stream would postpone every checkpoint forever.
            self.seen_seq = machine.last_seq();
            self.seen_status = Some(machine.status().clone());
            match machine.session() {
                None => {
                    if self.stored != Stored::Nothing {
                        // The session ended (op 9, a new one to come): a
                        // crash now must not resume it.
                        self.start_op(Stored::Nothing, self.store.clear(self.shard));
                    }
                }
                Some(session) => {
                    if self.stored != Stored::Session(session.clone()) {
                        self.candidate = Some((session, self.emitted.max(self.floor)));
                    }
                }
            }
        }
        if self.in_flight.is_none() {
            let handled = self.handled.load(Ordering::Acquire);
            if let Some((session, _)) = self.candidate.take_if(|(_, at)| handled >= *at) {
                self.save(now, session);
            }
        }
        // Due again one interval after a request started, or after a
        // candidate found the application still behind.
        self.next_due = now + self.interval;
        if self.in_flight.is_none() && self.candidate.is_some() {
            self.arm(self.next_due);
        }
    }

    /// Saves the stored session again once `keep_alive` has passed since
    /// its last save (and the checkpoint interval since the last request),
    /// while it is still the machine's session: a store that expires
    /// records (Redis's `PX`, [`FileSessionStore::max_age`](super::FileSessionStore::max_age))
    /// would otherwise drop the record of a session that is alive but
    /// quiet, and a crash then would cost an Identify. What was saved
    /// before is handled already: saving it again claims nothing new.
    fn keep_alive(&mut self, now: Instant, machine: &Machine) {
        let Some(period) = self.keep_alive else { return };
        let Stored::Session(stored) = &self.stored else { return };
        if machine.session_ids().map(|(id, _)| id) != Some(stored.id.as_str()) {
            // Ended or replaced: the next checkpoint clears or overwrites it.
            return;
        }
        let at = match self.saved_at {
            Some(saved) => (saved + period).max(self.next_due),
            // Loaded, of unknown age: refreshed once the gateway took it.
            None if *machine.status() == Status::Active => self.next_due,
            None => return,
        };
        if now < at {
            self.arm(at);
            return;
        }
        let session = stored.clone();
        self.save(now, session);
        self.next_due = now + self.interval;
    }

    fn save(&mut self, now: Instant, session: Session) {
        let op = self.store.save(ShardSession { shard: self.shard, session: session.clone() });
        self.start_op(Stored::Session(session), op);
        self.saved_at = Some(now);
    }

    /// Polls the request in flight and the checkpoint timer; `Ready` when
    /// either completes (the driver then calls [`tick`](Self::tick)).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(op) = self.in_flight.as_mut() {
            if let Poll::Ready(result) = op.poll_unpin(cx) {
                self.in_flight = None;
                self.done(result);
                return Poll::Ready(());
            }
        }
        if self.timer_at.is_some() && self.timer.poll_unpin(cx).is_ready() {
            self.timer_at = None;
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// The shard has stopped: finishes the request in flight, then leaves
    /// the final state in the store (a resumable close's session once the
    /// application has handled every dispatch before it; nothing if the
    /// session ended). Takes at most [`FINISH_GRACE`].
    pub(crate) async fn finish(&mut self, machine: &Machine) {
        let deadline = Instant::now() + FINISH_GRACE;
        if let Some(op) = self.in_flight.take() {
            let result = within(deadline, op).await;
            self.done(result);
        }
        let last = self.last.take().unwrap_or_else(|| match machine.session() {
            // Stopped without a close (cannot happen today): keep what it has.
            Some(session) => Last::Save(session, self.emitted.max(self.floor)),
            None => Last::Clear,
        });
        let wanted = match last {
            Last::Clear => Stored::Nothing,
            Last::Save(session, at) => {
                while self.handled.load(Ordering::Acquire) < at {
                    // Nobody left to handle them: the last checkpoint stands.
                    if Arc::strong_count(&self.handled) == 1 || Instant::now() >= deadline {
                        tracing::debug!("dispatches before the close not handled; the last checkpoint stands");
                        return;
                    }
                    async_io::Timer::after(ACK_POLL).await;
                }
                Stored::Session(session)
            }
        };
        if !self.owners.is_newest(self.shard, self.owner) {
            // A newer connection of this shard (a restart) runs: what it
            // saved or cleared is newer than this connection's end.
            tracing::debug!("a newer connection of this shard keeps the checkpoint; no final save");
            return;
        }
        if self.stored == wanted {
            return;
        }
        let op = match &wanted {
            Stored::Session(session) => self.store.save(ShardSession { shard: self.shard, session: session.clone() }),
            _ => self.store.clear(self.shard),
        };
        self.stored = wanted;
        let result = within(deadline, op).await;
        self.done(result);
    }

    fn start_op(&mut self, wanted: Stored, op: Op) {
        self.stored = wanted;
        // A request that never answers (a lost reply, a hung connection)
        // must not end checkpointing: it fails after REQUEST_TIMEOUT, which
        // drops its future, and the next checkpoint tries again.
        self.in_flight = Some(within(Instant::now() + REQUEST_TIMEOUT, op).boxed());
    }

    fn done(&mut self, result: Result<(), SessionStoreError>) {
        if let Err(error) = result {
            tracing::warn!(%error, "session store request failed; retrying with the next checkpoint");
            self.stored = Stored::Unknown;
            // Take a fresh snapshot next time, even if nothing moved.
            self.seen_status = None;
        }
    }

    /// Wakes the driver at `at`, unless the timer fires earlier already
    /// (an early wake only ticks again and re-arms).
    fn arm(&mut self, at: Instant) {
        if self.timer_at.is_none_or(|armed| at < armed) {
            self.timer.set_at(at);
            self.timer_at = Some(at);
        }
    }
}

/// The stored session for `shard`, if there is a usable one. `Err` when the
/// store failed or did not answer in time (what it holds is unknown).
async fn load(store: &dyn SessionStore, shard: ShardId) -> Result<Option<Session>, ()> {
    let deadline = Instant::now() + LOAD_TIMEOUT;
    match within(deadline, store.load(shard)).await {
        Ok(Some(stored)) if stored.shard == shard => {
            tracing::info!(seq = stored.session.seq, "stored session loaded; resuming it");
            Ok(Some(stored.session))
        }
        Ok(Some(stored)) => {
            // Another total's session: its guilds are not this shard's.
            tracing::info!(stored = %stored.shard, "stored session belongs to another shard; identifying");
            Ok(None)
        }
        Ok(None) => Ok(None),
        Err(error) => {
            tracing::warn!(%error, "loading the stored session failed; identifying");
            Err(())
        }
    }
}

/// `op`, or a timeout error at `deadline`.
async fn within<T>(
    deadline: Instant,
    op: BoxFuture<'static, Result<T, SessionStoreError>>,
) -> Result<T, SessionStoreError> {
    let timeout = async_io::Timer::at(deadline);
    match futures_util::future::select(op, timeout).await {
        futures_util::future::Either::Left((result, _)) => result,
        futures_util::future::Either::Right(_) => {
            Err(SessionStoreError::Io("the session store did not answer in time".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intents::Intents;
    use crate::protocol::{Compression, Config, Incoming};
    use crate::store::MemorySessionStore;

    fn drain(machine: &mut Machine) {
        while machine.poll_action().is_some() {}
        while machine.poll_transmit().is_some() {}
        while machine.poll_event().is_some() {}
    }

    fn receive(machine: &mut Machine, now: Instant, json: &str) {
        machine.handle_message(now, Incoming::Text(json));
        drain(machine);
    }

    #[test]
    fn an_op_9_supersedes_a_candidate_of_the_invalidated_session() {
        let store = MemorySessionStore::new();
        let handled = Arc::new(AtomicU64::new(0));
        let settings = StoreSettings {
            store: Some(Arc::new(store.clone())),
            interval: MIN_CHECKPOINT_INTERVAL,
            ..StoreSettings::default()
        };
        let (mut checkpoint, loaded) =
            async_io::block_on(Checkpointer::start(settings, ShardId::ONE, None, Arc::clone(&handled))).unwrap();
        assert!(loaded.is_none());
        let mut now = Instant::now();
        let config = Config::new("token", Intents::GUILDS).compression(Compression::None);
        let mut machine = Machine::new(config, now).unwrap();
        drain(&mut machine);
        machine.handle_open(now);
        drain(&mut machine);
        receive(&mut machine, now, r#"{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250}}"#);
        receive(
            &mut machine,
            now,
            r#"{"t":"READY","s":1,"op":0,"d":{"v":10,"session_id":"sess-1","user":{"id":"1"},"guilds":[]}}"#,
        );
        receive(&mut machine, now, r#"{"t":"MESSAGE_CREATE","s":2,"op":0,"d":{}}"#);
        checkpoint.on_dispatch();
        checkpoint.on_dispatch();
        // A candidate of sess-1 at seq 2; the application is behind.
        checkpoint.tick(now, &machine);
        assert_eq!(store.get(ShardId::ONE), None);
        // The gateway invalidates the session; then the application catches up.
        receive(&mut machine, now, r#"{"op":9,"d":false}"#);
        assert!(machine.session().is_none());
        now += MIN_CHECKPOINT_INTERVAL;
        checkpoint.tick(now, &machine);
        handled.store(2, Ordering::Release);
        now += MIN_CHECKPOINT_INTERVAL;
        checkpoint.tick(now, &machine);
        assert_eq!(store.get(ShardId::ONE), None, "the invalidated session was saved after its op 9");
    }

    #[test]
    fn an_old_connections_final_save_gives_way_to_a_newer_connection_of_the_shard() {
        let store = MemorySessionStore::new();
        let settings = StoreSettings { store: Some(Arc::new(store.clone())), ..StoreSettings::default() };
        let machine = Machine::new(Config::new("token", Intents::GUILDS), Instant::now()).unwrap();
        let session = Session { id: "sess-1".into(), seq: 7, resume_url: None };
        let start = |settings: &StoreSettings| {
            let handled = Arc::new(AtomicU64::new(0));
            async_io::block_on(Checkpointer::start(settings.clone(), ShardId::ONE, Some(&session), handled)).unwrap().0
        };
        // Alone, a resumable close leaves its session (here with nothing
        // of its own to wait for: floor 1 needs one handled dispatch).
        let mut alone = start(&settings);
        alone.on_dispatch();
        alone.handled.store(1, Ordering::Release);
        alone.on_close(CloseMode::Resumable, Some(&session));
        async_io::block_on(alone.finish(&machine));
        assert_eq!(store.get(ShardId::ONE), Some(session.clone()));
        async_io::block_on(store.clear(ShardId::ONE)).unwrap();
        // Restarted: the new connection started before the old one finished.
        let mut old = start(&settings);
        old.on_dispatch();
        old.handled.store(1, Ordering::Release);
        old.on_close(CloseMode::Resumable, Some(&session));
        let new = start(&settings);
        async_io::block_on(old.finish(&machine));
        assert_eq!(store.get(ShardId::ONE), None, "the old connection wrote over the newer one's record");
        drop((old, new));
        assert!(settings.owners.lock().is_empty(), "owners forgets shards without a checkpointer");
    }
}
