//! Crash-safe sessions: where shards checkpoint their session so that a
//! process that dies without a graceful shutdown resumes instead of
//! identifying (`docs/connection.md#resume-and-resumed`,
//! `docs/rate-limits.md#daily-session-start-budget`).
//!
//! [`ShardGroup::shutdown`](crate::ShardGroup::shutdown) hands sessions over
//! when a process stops on purpose. A process that crashes (a panic, an OOM
//! kill, `SIGKILL`, a lost machine) never gets to: without a store every one
//! of its shards identifies again, spending the daily session-start budget
//! and losing the events sent while it was down. With a [`SessionStore`]
//! each shard checkpoints its [`Session`](crate::Session) now and then, and
//! the next process's shard loads it and resumes.
//!
//! - [`MemorySessionStore`]: in process (tests, or a supervisor that restarts
//!   shards inside one process).
//! - [`FileSessionStore`]: one JSON file per shard, replaced atomically.
//! - `RedisSessionStore` (feature `redis`): one key per shard, with an expiry.
//!
//! Plug one in with [`ShardBuilder::session_store`](crate::ShardBuilder::session_store)
//! or [`ShardGroupBuilder::session_store`](crate::ShardGroupBuilder::session_store).

mod checkpoint;
mod file;
mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

pub(crate) use self::checkpoint::{Ack, Acks, Checkpointer, StoreSettings};
pub use self::file::FileSessionStore;
pub use self::memory::MemorySessionStore;
#[cfg(feature = "redis")]
pub use self::redis::RedisSessionStore;
use crate::session::ShardSession;
use crate::shard_id::ShardId;

/// Default for [`ShardBuilder::checkpoint_interval`](crate::ShardBuilder::checkpoint_interval):
/// at most one save per shard every 2 s.
///
/// Short enough that a crash replays a few seconds of events, long enough
/// that a thousand shards cost the store about 500 writes a second at most
/// (idle shards only keep their record alive: one write per shard every
/// third of an expiring store's [`expiry`](SessionStore::expiry), every
/// 200 s by default).
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);

/// The shortest checkpoint interval accepted; shorter ones are raised to it.
pub const MIN_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(10);

/// How long a stored session is kept by the stores that expire them
/// (`RedisSessionStore`'s key expiry, [`FileSessionStore::max_age`]): 10
/// minutes.
///
/// Discord does not document how long a session stays resumable after its
/// connection ends; in practice it is a few minutes. A session older than
/// this would almost surely be refused (op 9), so it is not worth a
/// connection attempt. One that is refused anyway costs a Resume, an op 9
/// and the 1–5 s wait before identifying (`docs/connection.md#invalid-session-op-9`), never an extra Identify.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(600);

/// A session store failed. The shard logs it and goes on: a failed load
/// means it identifies; a failed save is retried with the next checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionStoreError {
    /// Reading or writing the store failed (I/O, a connection).
    #[error("session store I/O failed: {0}")]
    Io(String),
    /// A stored record could not be read (not the JSON of a [`ShardSession`]);
    /// the message says where and what kind of fault, never the record's
    /// contents.
    #[error("stored session unreadable: {0}")]
    Corrupt(String),
    /// The backend refused the request (a Redis error reply, a full disk).
    #[error("session store backend failed: {0}")]
    Backend(String),
}

/// A record that is not the JSON of a [`ShardSession`], described by what
/// is wrong and where only: serde's own message may quote the record (a
/// session id among it), which must not reach a log.
pub(crate) fn corrupt(place: impl std::fmt::Display, error: &serde_json::Error) -> SessionStoreError {
    let what = match error.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "not a stored session",
        serde_json::error::Category::Eof => "truncated",
    };
    SessionStoreError::Corrupt(format!("{place}: {what} (line {}, column {})", error.line(), error.column()))
}

/// Where shards keep their session across process crashes.
///
/// # How a shard uses it
///
/// - **On start**, a shard built with a store and without a session to
///   resume ([`Config::resume_from`](crate::Config::resume_from), or
///   [`ShardGroupBuilder::resume`](crate::ShardGroupBuilder::resume)) calls
///   [`load`](Self::load) once, before it connects, waiting at most 10 s.
///   A record for its [`ShardId`] (the same id *and* total) makes it resume
///   instead of identifying; a record of another shard or another shard
///   total is ignored, and a load that fails or times out is logged and the
///   shard identifies.
/// - **While it runs**, it calls [`save`](Self::save) at most once per
///   checkpoint interval ([`DEFAULT_CHECKPOINT_INTERVAL`], configurable)
///   and only when the session moved on since the last save. Saves never
///   run on the dispatch path: the driver polls the save's future beside
///   the socket and timers, never awaits it, and keeps at most one in
///   flight; while one is in flight newer states are not queued, the next
///   save after it carries the newest state (saves coalesce). A slow store
///   makes checkpoints older, never delivery slower. A request that has
///   not answered after 10 s is dropped (abandoning it), logged as a
///   warning, and the next checkpoint tries again. With a store whose
///   records expire ([`expiry`](Self::expiry)) it also saves an unchanged
///   session again every third of the expiry, so a quiet but live
///   session's record stays loadable. A shard given a session to resume
///   (`resume_from`, `resume`, a group's `restart`) saves nothing until
///   the application has handled one of its own dispatches: the
///   dispatches of the connection it takes over may still be waiting in
///   front of its own.
/// - **When its session ends** (op 9 not resumable, a fatal close, a final
///   close) it calls [`clear`](Self::clear); a new session from READY
///   overwrites the record with its next save. A stale record (the session
///   expired while the process was down) is refused by the gateway with
///   op 9, so it is cleared and then overwritten the same way.
/// - **On a resumable close** (`CloseMode::Resumable`,
///   [`ShardGroup::shutdown`](crate::ShardGroup::shutdown), or a dropped
///   shard whose driver was spawned: it goes on to close) it saves the
///   final state once the application has handled every dispatch before
///   it, waiting at most 5 s after its last dispatch was taken from the
///   stream; until then the previous checkpoint stands. A shard dropped
///   with its driver inside (not spawned, or a group without
///   [`spawn_drivers`](crate::ShardGroupBuilder::spawn_drivers)) stops at
///   once, like a crash: its last checkpoint stands and the next shard
///   resumes from it. A shard that a [`ShardGroup`](crate::ShardGroup) has restarted (or
///   removed and added again) meanwhile skips this: the final state of
///   its old connection must not land over what the new one saved or
///   cleared. That holds among the shards of one group (they share the
///   bookkeeping); two [`Shard`](crate::Shard)s of one shard id built
///   separately do not know of each other, so let the old one's driver
///   finish before starting the new one. A final save already sent when
///   the new connection starts is not recalled.
///
/// Session ids are credentials for resuming: implementations must not log
/// them (a [`Session`](crate::Session)'s `Debug` redacts the id).
///
/// # Delivery guarantee
///
/// A checkpoint never records a dispatch the application has not handled:
/// a dispatch counts as handled once the application asks the stream
/// ([`Shard`](crate::Shard) or [`ShardGroup`](crate::ShardGroup)) for the
/// next item after it. Dispatches received but still buffered, or the one
/// the application is working on, are after the checkpoint. A group's
/// management calls (`remove`, `restart`, `shutdown`, ...) keep what the
/// shards deliver meanwhile for the stream: those count as handled only
/// once the application has taken them from the group and asked for more.
///
/// After a crash the next process resumes from the last checkpoint and the
/// gateway replays everything after it, so every dispatch is delivered **at
/// least once** from the checkpoint: the ones handled between the last
/// checkpoint and the crash are delivered again (at most about two
/// checkpoint intervals' worth, plus what the consumer lagged behind).
/// Delivery is **exactly once** if the consumer deduplicates by
/// `(shard, seq)` ([`Dispatch::shard`](crate::Dispatch::shard),
/// [`Dispatch::seq`](crate::Dispatch::seq)), remembering the newest `seq`
/// it handled per shard together with its session, e.g. in the same
/// transaction as its own effects. If the checkpoint is too old to resume
/// (the gateway answers op 9), the shard identifies and the events in
/// between are lost, as they are without a store.
///
/// Consumers that hand dispatches to other tasks and ask for the next one
/// at once count them as handled at that point; keep your own
/// acknowledgement (and deduplication) if that matters.
///
/// # Implementing it
///
/// Like [`IdentifyQueue`](crate::IdentifyQueue), every method returns a
/// `'static` boxed future, polled by the shard's driver on whatever
/// executor runs it: do blocking work on a thread of your own (as
/// [`FileSessionStore`] does), never inside `poll`. Dropping a future
/// abandons the request. Key records by the whole [`ShardId`] (id and
/// total), so two shard totals running side by side while resharding do
/// not overwrite each other.
pub trait SessionStore: Send + Sync + 'static {
    /// The session stored for `shard`, if any. Returning a record of another
    /// shard (another id or total) is allowed; the shard ignores it.
    fn load(&self, shard: ShardId) -> BoxFuture<'static, Result<Option<ShardSession>, SessionStoreError>>;

    /// Stores `session`, replacing what was stored for `session.shard`.
    fn save(&self, session: ShardSession) -> BoxFuture<'static, Result<(), SessionStoreError>>;

    /// Forgets the session stored for `shard` (nothing stored is not an error).
    fn clear(&self, shard: ShardId) -> BoxFuture<'static, Result<(), SessionStoreError>>;

    /// How long a record stays loadable after its last save, if the store
    /// expires records (`RedisSessionStore`'s key expiry,
    /// [`FileSessionStore::max_age`]). A shard whose session does not
    /// change saves it again every third of this (at most once per
    /// checkpoint interval), so the record of a quiet but live session does
    /// not expire. The default, `None`, means records never expire: no
    /// keep-alive saves.
    fn expiry(&self) -> Option<Duration> {
        None
    }
}

impl<S: SessionStore + ?Sized> SessionStore for Arc<S> {
    fn load(&self, shard: ShardId) -> BoxFuture<'static, Result<Option<ShardSession>, SessionStoreError>> {
        (**self).load(shard)
    }

    fn save(&self, session: ShardSession) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        (**self).save(session)
    }

    fn clear(&self, shard: ShardId) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        (**self).clear(shard)
    }

    fn expiry(&self) -> Option<Duration> {
        (**self).expiry()
    }
}
