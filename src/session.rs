//! A resumable gateway session (`docs/connection.md#resume-and-resumed`,
//! `docs/connection.md#resume-url`).

use crate::shard_id::ShardId;

/// What a resume needs: persist it to resume after a process restart.
///
/// ```
/// use discord_gateway_stream::Session;
/// let session = Session {
///     id: "a1b2".into(),
///     seq: 42,
///     resume_url: Some("wss://gateway-us-east1-c.discord.gg".into()),
/// };
/// let saved = serde_json::to_string(&session).unwrap();
/// assert_eq!(serde_json::from_str::<Session>(&saved).unwrap(), session);
/// ```
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// `session_id` from READY.
    pub id: String,
    /// The last sequence number received in this session.
    pub seq: u64,
    /// `resume_gateway_url` from READY, as received (no query); `None` resumes
    /// through the base URL.
    #[serde(default)]
    pub resume_url: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The session id is a credential for resuming: keep it out of logs.
        f.debug_struct("Session")
            .field("id", &"<redacted>")
            .field("seq", &self.seq)
            .field("resume_url", &self.resume_url)
            .finish()
    }
}

/// A shard's [`Session`], tagged with the shard: what
/// [`ShardGroup::shutdown`](crate::ShardGroup::shutdown) returns,
/// [`ShardGroupBuilder::resume`](crate::ShardGroupBuilder::resume) takes and
/// a [`SessionStore`](crate::store::SessionStore) keeps. Serialize it to
/// hand a group's sessions to the next process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardSession {
    /// The shard the session belongs to.
    pub shard: ShardId,
    /// What a resume needs.
    pub session: Session,
}
