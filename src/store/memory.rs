//! [`MemorySessionStore`]: sessions kept in this process.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{SessionStore, SessionStoreError};
use crate::session::ShardSession;
use crate::shard_id::ShardId;

/// A [`SessionStore`] in memory: survives a shard (or a group) being
/// rebuilt inside the process, not the process. Clones share the sessions.
///
/// For tests, and for supervisors that rebuild crashed shards or groups in
/// process; use [`FileSessionStore`](super::FileSessionStore) or the
/// `redis` feature's store to survive a process crash.
///
/// ```
/// use discord_gateway_stream::store::{MemorySessionStore, SessionStore};
/// use discord_gateway_stream::{Session, ShardId, ShardSession};
///
/// # async_io::block_on(async {
/// let store = MemorySessionStore::new();
/// let shard = ShardId::new(0, 2).unwrap();
/// let session = Session { id: "abc".into(), seq: 7, resume_url: None };
/// store.save(ShardSession { shard, session: session.clone() }).await.unwrap();
/// assert_eq!(store.get(shard), Some(session));
/// store.clear(shard).await.unwrap();
/// assert_eq!(store.load(shard).await.unwrap(), None);
/// # });
/// ```
#[derive(Clone, Default)]
pub struct MemorySessionStore {
    sessions: Arc<Mutex<HashMap<ShardId, ShardSession>>>,
}

impl MemorySessionStore {
    /// An empty store.
    pub fn new() -> MemorySessionStore {
        MemorySessionStore::default()
    }

    /// The session stored for `shard`, if any.
    pub fn get(&self, shard: ShardId) -> Option<crate::session::Session> {
        self.lock().get(&shard).map(|stored| stored.session.clone())
    }

    /// Every stored session, in shard order.
    pub fn sessions(&self) -> Vec<ShardSession> {
        let mut all: Vec<ShardSession> = self.lock().values().cloned().collect();
        all.sort_by_key(|stored| stored.shard);
        all
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ShardId, ShardSession>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SessionStore for MemorySessionStore {
    fn load(&self, shard: ShardId) -> BoxFuture<'static, Result<Option<ShardSession>, SessionStoreError>> {
        futures_util::future::ready(Ok(self.lock().get(&shard).cloned())).boxed()
    }

    fn save(&self, session: ShardSession) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        self.lock().insert(session.shard, session);
        futures_util::future::ready(Ok(())).boxed()
    }

    fn clear(&self, shard: ShardId) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        self.lock().remove(&shard);
        futures_util::future::ready(Ok(())).boxed()
    }
}

impl fmt::Debug for MemorySessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The shards only: session ids stay out of logs.
        let mut shards: Vec<ShardId> = self.lock().keys().copied().collect();
        shards.sort();
        f.debug_struct("MemorySessionStore").field("shards", &shards).finish()
    }
}
