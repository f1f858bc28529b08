//! [`GroupController`]: manage a [`ShardGroup`](super::ShardGroup) from other tasks.

use futures_channel::{mpsc, oneshot};
use futures_util::future::BoxFuture;

use super::ControlError;
use crate::protocol::CloseMode;
use crate::session::{Session, ShardSession};
use crate::shard_id::ShardId;

/// A management request, carried out by the group's `poll_next`, one at a time.
pub(super) enum Request {
    Add(ShardId, oneshot::Sender<Result<(), ControlError>>),
    Restart(ShardId, oneshot::Sender<Result<(), ControlError>>),
    Remove(ShardId, CloseMode, oneshot::Sender<Result<Option<Session>, ControlError>>),
    CloseWhere(Scope, CloseMode, oneshot::Sender<Vec<ShardSession>>),
}

/// Which shards a [`Request::CloseWhere`] closes.
#[derive(Clone, Copy)]
pub(super) enum Scope {
    All,
    Total(u32),
}

impl Scope {
    pub(super) fn contains(self, shard: ShardId) -> bool {
        match self {
            Scope::All => true,
            Scope::Total(total) => shard.total == total,
        }
    }
}

/// A close the group waits for while it goes on polling its shards.
pub(super) type PendingClose = BoxFuture<'static, Closed>;

/// What to do once a close requested by a controller has completed.
pub(super) enum Closed {
    /// Start the shard again, resuming `session` if any.
    Restart(ShardId, Option<Session>, oneshot::Sender<Result<(), ControlError>>),
    /// Hand the session to whoever removed the shard.
    Removed(Option<Session>, oneshot::Sender<Result<Option<Session>, ControlError>>),
    /// Hand every session to whoever closed a set of shards.
    Many(Vec<ShardSession>, oneshot::Sender<Vec<ShardSession>>),
}

/// A cloneable handle that adds, restarts and removes shards of a
/// [`ShardGroup`](super::ShardGroup), or shuts it down, from any task.
///
/// Requests are carried out while the group's stream is polled (the task
/// consuming dispatches keeps doing so), one at a time in the order they
/// arrive, together with the group's own management calls; the futures
/// resolve once they are done, or with [`ControlError::GroupGone`] if the
/// group was dropped. A request sent after the stream ended waits until the
/// group is polled again or dropped.
///
/// ```no_run
/// # async fn run(mut group: discord_gateway_stream::ShardGroup) {
/// use discord_gateway_stream::{CloseMode, ShardId};
/// let control = group.controller();
/// // From another task:
/// # let _ = async {
/// control.restart(ShardId::new(3, 16).unwrap()).await.unwrap();
/// let sessions = control.shutdown().await.unwrap();
/// # };
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct GroupController {
    pub(super) requests: mpsc::UnboundedSender<Request>,
}

impl GroupController {
    /// Starts `shard` (see [`ShardGroup::add`](super::ShardGroup::add)).
    pub async fn add(&self, shard: ShardId) -> Result<(), ControlError> {
        self.ask(|reply| Request::Add(shard, reply)).await?
    }

    /// Restarts `shard`: a running one closes with 4000 and resumes (no
    /// Identify); a stopped one starts afresh.
    pub async fn restart(&self, shard: ShardId) -> Result<(), ControlError> {
        self.ask(|reply| Request::Restart(shard, reply)).await?
    }

    /// Closes `shard` with `mode` and forgets it; its session when `mode`
    /// is `Resumable`.
    pub async fn remove(&self, shard: ShardId, mode: CloseMode) -> Result<Option<Session>, ControlError> {
        self.ask(|reply| Request::Remove(shard, mode, reply)).await?
    }

    /// Closes every shard of `total` with `mode` (see
    /// [`ShardGroup::remove_total`](super::ShardGroup::remove_total)).
    pub async fn remove_total(&self, total: u32, mode: CloseMode) -> Result<Vec<ShardSession>, ControlError> {
        self.ask(|reply| Request::CloseWhere(Scope::Total(total), mode, reply)).await
    }

    /// Closes every shard resumably and returns their sessions (see
    /// [`ShardGroup::shutdown`](super::ShardGroup::shutdown)).
    pub async fn shutdown(&self) -> Result<Vec<ShardSession>, ControlError> {
        self.ask(|reply| Request::CloseWhere(Scope::All, CloseMode::Resumable, reply)).await
    }

    async fn ask<T>(&self, request: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, ControlError> {
        let (reply, answer) = oneshot::channel();
        self.requests.unbounded_send(request(reply)).map_err(|_| ControlError::GroupGone)?;
        answer.await.map_err(|_| ControlError::GroupGone)
    }
}
