//! What a [`ShardHandle`](crate::ShardHandle) can read about its shard
//! without asking the driver: the status (and a way to await its changes),
//! counters, heartbeat latency, the session and the last sequence.
//!
//! The driver owns the [`Machine`] and publishes what it knows here after
//! every socket message, timer or request it handles, and again right before a
//! status change becomes visible (so a task woken by that change reads the
//! counters and session that go with it); never per dispatch with a
//! lock: counters and the last sequence are relaxed atomic stores; the
//! session's id and resume URL (which change a few times a day) and the
//! latency (which changes twice per heartbeat interval) are written under a
//! mutex only when they changed.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_util::Stream;

use crate::protocol::{Latency, Machine, ShardStats, Status};
use crate::session::Session;

/// Status changes kept for watchers that have not seen them yet; a watcher
/// further behind skips to the oldest kept.
const HISTORY: usize = 16;

/// A shard's status, shared by its driver and handles, with the changes
/// its watchers have not seen yet.
pub(crate) struct StatusCell {
    state: Mutex<StatusState>,
}

struct StatusState {
    status: Status,
    /// How many changes so far: a watcher has seen those up to its `seen`.
    version: u64,
    /// The newest changes, each with its `version`, while any watcher lives.
    history: VecDeque<(u64, Status)>,
    /// The driver is gone: the status changes no more.
    ended: bool,
    watchers: usize,
    next_id: u64,
    /// Watchers waiting for a change, by id.
    waiting: HashMap<u64, Waker>,
}

impl StatusCell {
    pub(crate) fn new(status: Status) -> Arc<StatusCell> {
        Arc::new(StatusCell {
            state: Mutex::new(StatusState {
                status,
                version: 0,
                history: VecDeque::new(),
                ended: false,
                watchers: 0,
                next_id: 0,
                waiting: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, StatusState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self) -> Status {
        self.lock().status.clone()
    }

    /// Records a new status and wakes the watchers waiting for one.
    pub(crate) fn set(&self, status: Status) {
        let waiting = {
            let mut state = self.lock();
            if state.status == status {
                return;
            }
            state.version += 1;
            if state.watchers > 0 {
                if state.history.len() == HISTORY {
                    state.history.pop_front();
                }
                let version = state.version;
                state.history.push_back((version, status.clone()));
            }
            state.status = status;
            std::mem::take(&mut state.waiting)
        };
        for waker in waiting.into_values() {
            waker.wake();
        }
    }

    /// `Closed` unless the shard already ended (`Closed` or `Fatal`).
    pub(crate) fn mark_closed(&self) {
        let status = self.get();
        if !matches!(status, Status::Closed | Status::Fatal(_)) {
            self.set(Status::Closed);
        }
    }

    /// The driver is gone: the status is final, and watchers end once they
    /// have seen it.
    fn end(&self) {
        self.mark_closed();
        let waiting = {
            let mut state = self.lock();
            state.ended = true;
            std::mem::take(&mut state.waiting)
        };
        for waker in waiting.into_values() {
            waker.wake();
        }
    }

    pub(crate) fn watch(self: &Arc<Self>) -> StatusWatcher {
        let mut state = self.lock();
        state.watchers += 1;
        state.next_id += 1;
        StatusWatcher { cell: Arc::clone(self), id: state.next_id, seen: state.version }
    }
}

/// Status changes of one shard, in order: a [`Stream`] of each new
/// [`Status`] from the moment it was created.
///
/// Made by [`ShardHandle::watch_status`](crate::ShardHandle::watch_status)
/// (or [`Shard::watch_status`](crate::Shard::watch_status)). Runtime
/// agnostic: it is woken by the shard's driver, on whatever executor that
/// runs. A watcher polled rarely still sees every change, in order, unless
/// it falls more than 16 changes behind: it then skips to the oldest change
/// still kept (the newest status is never skipped). The stream ends once
/// the shard's driver has finished (or was dropped) and the final status
/// (`Closed` or `Fatal`) was yielded.
///
/// What the shard's handles read when a change wakes the watcher is at
/// least as new as that change: woken by `Active`,
/// [`session`](crate::ShardHandle::session) is the session just
/// identified or resumed; woken by `Reconnecting`,
/// [`stats`](crate::ShardHandle::stats) counts that reconnect.
///
/// ```no_run
/// # async fn run(handle: discord_gateway_stream::ShardHandle) {
/// use discord_gateway_stream::protocol::Status;
/// use futures::StreamExt;
///
/// let mut changes = handle.watch_status();
/// while let Some(status) = changes.next().await {
///     match status {
///         Status::Reconnecting { reason, delay, .. } => eprintln!("reconnecting in {delay:?}: {reason:?}"),
///         Status::Active => eprintln!("shard {} is live", handle.id()),
///         _ => {}
///     }
/// }
/// // The shard has ended.
/// # }
/// ```
#[must_use = "a watcher yields nothing unless polled"]
pub struct StatusWatcher {
    cell: Arc<StatusCell>,
    id: u64,
    /// The last change this watcher yielded (or the version it was made at).
    seen: u64,
}

impl StatusWatcher {
    /// The shard's status now (what it changed to last), whether or not this
    /// watcher has yielded it yet.
    pub fn current(&self) -> Status {
        self.cell.get()
    }

    /// The next change: resolves with the status the shard changed to, or
    /// `None` once the shard has ended and every change was yielded. The
    /// same as [`StreamExt::next`](futures_util::StreamExt::next).
    pub fn changed(&mut self) -> impl Future<Output = Option<Status>> + Send + '_ {
        futures_util::future::poll_fn(move |cx| self.poll_change(cx))
    }

    /// The first status that satisfies `predicate`: the current one if it
    /// does, else the first later change that does; `None` if the shard
    /// ends without one. Never a status older than the current one: the
    /// changes this watcher had not yielded yet are skipped either way.
    ///
    /// ```no_run
    /// # async fn run(handle: discord_gateway_stream::ShardHandle) {
    /// use discord_gateway_stream::protocol::Status;
    ///
    /// let mut changes = handle.watch_status();
    /// if changes.wait_for(|status| *status == Status::Active).await.is_none() {
    ///     eprintln!("shard {} ended before it was live", handle.id());
    /// }
    /// # }
    /// ```
    pub async fn wait_for(&mut self, mut predicate: impl FnMut(&Status) -> bool) -> Option<Status> {
        {
            let mut state = self.cell.lock();
            // The current status and those before it are settled: only
            // later changes may satisfy `predicate` (an older one from the
            // history would be stale, e.g. `Active` after the shard closed).
            self.seen = state.version;
            if predicate(&state.status) {
                let status = state.status.clone();
                drop_waker(&mut state, self.id);
                return Some(status);
            }
        }
        loop {
            let status = self.changed().await?;
            if predicate(&status) {
                return Some(status);
            }
        }
    }

    fn poll_change(&mut self, cx: &mut Context<'_>) -> Poll<Option<Status>> {
        let mut state = self.cell.lock();
        if state.version > self.seen {
            // The first change after `seen` still kept, else the newest.
            let next = state.history.iter().find(|(version, _)| *version > self.seen);
            let (version, status) = match next {
                Some((version, status)) => (*version, status.clone()),
                None => (state.version, state.status.clone()),
            };
            self.seen = version;
            drop_waker(&mut state, self.id);
            return Poll::Ready(Some(status));
        }
        if state.ended {
            return Poll::Ready(None);
        }
        match state.waiting.entry(self.id) {
            Entry::Occupied(mut waiting) => waiting.get_mut().clone_from(cx.waker()),
            Entry::Vacant(waiting) => {
                waiting.insert(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

fn drop_waker(state: &mut StatusState, id: u64) {
    state.waiting.remove(&id);
}

impl Stream for StatusWatcher {
    type Item = Status;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Status>> {
        self.poll_change(cx)
    }
}

impl Drop for StatusWatcher {
    fn drop(&mut self) {
        let mut state = self.cell.lock();
        drop_waker(&mut state, self.id);
        state.watchers -= 1;
        if state.watchers == 0 {
            // Nobody needs the changes kept: give their memory back.
            state.history = VecDeque::new();
        }
    }
}

impl std::fmt::Debug for StatusWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusWatcher").field("current", &self.current()).finish_non_exhaustive()
    }
}

/// The counters, last sequence, session and latency the driver publishes
/// for its handles.
#[derive(Default)]
pub(crate) struct Published {
    dispatches: AtomicU64,
    messages: AtomicU64,
    bytes_received: AtomicU64,
    bytes_decompressed: AtomicU64,
    reconnects: AtomicU64,
    identifies: AtomicU64,
    resumes: AtomicU64,
    heartbeats_sent: AtomicU64,
    heartbeats_acked: AtomicU64,
    skipped_payloads: AtomicU64,
    /// The last sequence plus one; 0: none yet.
    last_seq: AtomicU64,
    /// Odd while the driver replaces `session` (a sequence lock): a reader
    /// never pairs one session's id with another session's sequence.
    session_version: AtomicU64,
    /// The session's id and resume URL.
    session: Mutex<Option<(String, Option<String>)>>,
    latency: Mutex<Latency>,
}

impl Published {
    pub(crate) fn stats(&self) -> ShardStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ShardStats {
            dispatches: load(&self.dispatches),
            messages: load(&self.messages),
            bytes_received: load(&self.bytes_received),
            bytes_decompressed: load(&self.bytes_decompressed),
            reconnects: load(&self.reconnects),
            identifies: load(&self.identifies),
            resumes: load(&self.resumes),
            heartbeats_sent: load(&self.heartbeats_sent),
            heartbeats_acked: load(&self.heartbeats_acked),
            skipped_payloads: load(&self.skipped_payloads),
        }
    }

    pub(crate) fn last_seq(&self) -> Option<u64> {
        self.last_seq.load(Ordering::Acquire).checked_sub(1)
    }

    pub(crate) fn latency(&self) -> Latency {
        *self.latency.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn session(&self) -> Option<Session> {
        loop {
            let before = self.session_version.load(Ordering::Acquire);
            if before % 2 == 1 {
                // The driver is between two stores: nanoseconds, unless preempted.
                std::thread::yield_now();
                continue;
            }
            let ids = self.session.lock().unwrap_or_else(PoisonError::into_inner).clone();
            let seq = self.last_seq.load(Ordering::Relaxed).checked_sub(1);
            fence(Ordering::Acquire);
            if self.session_version.load(Ordering::Relaxed) == before {
                return ids.map(|(id, resume_url)| Session { id, seq: seq.unwrap_or(0), resume_url });
            }
        }
    }
}

/// The driver's side: publishes the machine's state for the handles after
/// every message, timer or request the driver handles, and marks the status
/// final when the driver is dropped.
pub(crate) struct Publisher {
    published: Arc<Published>,
    status: Arc<StatusCell>,
    /// The session ids last published.
    session: Option<(String, Option<String>)>,
    /// Heartbeats sent and acknowledged when the latency was last published.
    heartbeats: (u64, u64),
}

impl Publisher {
    pub(crate) fn new(published: Arc<Published>, status: Arc<StatusCell>) -> Publisher {
        Publisher { published, status, session: None, heartbeats: (0, 0) }
    }

    /// Makes `status` the shard's status, after publishing what the machine
    /// knows at this change: a task the change wakes (on any thread: the
    /// status lock orders the stores before it) never reads counters or a
    /// session older than the status. Status changes are rare: this second
    /// publish costs nothing per message.
    pub(crate) fn set_status(&mut self, machine: &Machine, status: Status) {
        self.publish(machine);
        self.status.set(status);
    }

    /// Copies what the machine knows to the handles: relaxed stores of a few
    /// counters, plus a lock when the session or the latency changed.
    pub(crate) fn publish(&mut self, machine: &Machine) {
        let stats = machine.stats();
        let published = &*self.published;
        let store = |counter: &AtomicU64, value: u64| counter.store(value, Ordering::Relaxed);
        store(&published.dispatches, stats.dispatches);
        store(&published.messages, stats.messages);
        store(&published.bytes_received, stats.bytes_received);
        store(&published.bytes_decompressed, stats.bytes_decompressed);
        store(&published.reconnects, stats.reconnects);
        store(&published.identifies, stats.identifies);
        store(&published.resumes, stats.resumes);
        store(&published.heartbeats_sent, stats.heartbeats_sent);
        store(&published.heartbeats_acked, stats.heartbeats_acked);
        store(&published.skipped_payloads, stats.skipped_payloads);
        // u64::MAX (a hostile `s`) reads back as u64::MAX - 1, never as none
        // (documented on `ShardHandle::last_seq`).
        let seq = machine.last_seq().map_or(0, |seq| seq.saturating_add(1));
        let ids = machine.session_ids();
        if ids == self.session.as_ref().map(|(id, url)| (id.as_str(), url.as_deref())) {
            published.last_seq.store(seq, Ordering::Release);
        } else {
            self.session = ids.map(|(id, url)| (id.to_owned(), url.map(str::to_owned)));
            let version = published.session_version.load(Ordering::Relaxed);
            published.session_version.store(version.wrapping_add(1), Ordering::Relaxed);
            fence(Ordering::Release);
            *published.session.lock().unwrap_or_else(PoisonError::into_inner) = self.session.clone();
            published.last_seq.store(seq, Ordering::Relaxed);
            published.session_version.store(version.wrapping_add(2), Ordering::Release);
        }
        let latency = machine.latency();
        let heartbeats = (latency.heartbeats_sent(), latency.heartbeats_acked());
        if heartbeats != self.heartbeats {
            self.heartbeats = heartbeats;
            *published.latency.lock().unwrap_or_else(PoisonError::into_inner) = *latency;
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // The driver finished, was dropped unpolled, or panicked. The session
        // stays published: unless a close or a fatal error already cleared
        // it, it is still resumable (see `ShardHandle::session`).
        self.status.end();
    }
}
