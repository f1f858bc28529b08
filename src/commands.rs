//! Typed gateway commands (`docs/connection.md#sent-payloads`): the payloads an
//! application sends. Each converts into a size-checked
//! [`crate::protocol::Command`].

use serde::Serialize;

use crate::protocol::{Command, CommandError, OpCode};

/// The bot's online status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnlineStatus {
    /// Online.
    Online,
    /// Do not disturb.
    Dnd,
    /// Idle.
    Idle,
    /// Shown as offline while connected.
    Invisible,
    /// Offline.
    Offline,
}

/// An activity a bot may set: name, type, and optionally state and URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Activity {
    /// Activity name.
    pub name: String,
    /// 0 Playing, 1 Streaming, 2 Listening, 3 Watching, 4 Custom, 5 Competing.
    #[serde(rename = "type")]
    pub kind: u8,
    /// Custom status text (type 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Stream URL (type 1; Twitch and YouTube only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Presence update (op 3), also the `presence` of Identify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Presence {
    /// Unix time (ms) the client went idle, or `None`.
    pub since: Option<u64>,
    /// The bot's activities.
    pub activities: Vec<Activity>,
    /// Online status.
    pub status: OnlineStatus,
    /// Whether the client is AFK.
    pub afk: bool,
}

impl Presence {
    /// Online with no activity.
    pub fn online() -> Presence {
        Presence { since: None, activities: Vec::new(), status: OnlineStatus::Online, afk: false }
    }
}

/// Request guild members (op 8): `query` or `user_ids`, answered by
/// GUILD_MEMBERS_CHUNK dispatches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestGuildMembers {
    /// The guild.
    pub guild_id: String,
    /// Username prefix; `""` with `limit: 0` asks for everyone (needs GUILD_MEMBERS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Maximum members to return (required with `query`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Include presences (needs GUILD_PRESENCES).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presences: Option<bool>,
    /// Specific users (at most 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_ids: Option<Vec<String>>,
    /// Echoed in the chunks (at most 32 bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

impl RequestGuildMembers {
    /// Members whose username starts with `query` (`""` = all), at most `limit` (0 = no limit).
    pub fn query(guild_id: impl Into<String>, query: impl Into<String>, limit: u32) -> Self {
        RequestGuildMembers {
            guild_id: guild_id.into(),
            query: Some(query.into()),
            limit: Some(limit),
            presences: None,
            user_ids: None,
            nonce: None,
        }
    }

    /// Specific members by id.
    pub fn users(guild_id: impl Into<String>, user_ids: Vec<String>) -> Self {
        RequestGuildMembers {
            guild_id: guild_id.into(),
            query: None,
            limit: None,
            presences: None,
            user_ids: Some(user_ids),
            nonce: None,
        }
    }
}

/// Voice state update (op 4): join, move or leave (`channel_id: None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoiceStateUpdate {
    /// The guild.
    pub guild_id: String,
    /// The voice channel, or `None` to leave.
    pub channel_id: Option<String>,
    /// Self-muted.
    pub self_mute: bool,
    /// Self-deafened.
    pub self_deaf: bool,
}

/// Request soundboard sounds (op 31).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestSoundboardSounds {
    /// The guilds.
    pub guild_ids: Vec<String>,
}

/// Request channel info (op 43): ephemeral voice status and start time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestChannelInfo {
    /// The guild.
    pub guild_id: String,
    /// Any of `"status"`, `"voice_start_time"`.
    pub fields: Vec<String>,
}

fn command<T: Serialize>(op: OpCode, d: &T) -> Result<Command, CommandError> {
    let json = serde_json::to_string(d).map_err(|e| CommandError::InvalidJson(e.to_string()))?;
    Command::new(op.code(), &json)
}

macro_rules! into_command {
    ($($ty:ty => $op:expr),* $(,)?) => {$(
        impl TryFrom<&$ty> for Command {
            type Error = CommandError;
            fn try_from(value: &$ty) -> Result<Command, CommandError> {
                command($op, value)
            }
        }
    )*};
}

into_command! {
    Presence => OpCode::PresenceUpdate,
    RequestGuildMembers => OpCode::RequestGuildMembers,
    VoiceStateUpdate => OpCode::VoiceStateUpdate,
    RequestSoundboardSounds => OpCode::RequestSoundboardSounds,
    RequestChannelInfo => OpCode::RequestChannelInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_command_serializes_to_its_documented_shape() {
        let presence = Presence {
            since: None,
            activities: vec![Activity { name: "tests".into(), kind: 0, state: None, url: None }],
            status: OnlineStatus::Dnd,
            afk: false,
        };
        let cases: Vec<(Command, &str)> = vec![
            (
                Command::try_from(&presence).unwrap(),
                r#"{"op":3,"d":{"since":null,"activities":[{"name":"tests","type":0}],"status":"dnd","afk":false}}"#,
            ),
            (
                Command::try_from(&RequestGuildMembers::query("1", "", 0)).unwrap(),
                r#"{"op":8,"d":{"guild_id":"1","query":"","limit":0}}"#,
            ),
            (
                Command::try_from(&VoiceStateUpdate {
                    guild_id: "1".into(),
                    channel_id: None,
                    self_mute: false,
                    self_deaf: true,
                })
                .unwrap(),
                r#"{"op":4,"d":{"guild_id":"1","channel_id":null,"self_mute":false,"self_deaf":true}}"#,
            ),
            (
                Command::try_from(&RequestSoundboardSounds { guild_ids: vec!["1".into(), "2".into()] }).unwrap(),
                r#"{"op":31,"d":{"guild_ids":["1","2"]}}"#,
            ),
            (
                Command::try_from(&RequestChannelInfo { guild_id: "1".into(), fields: vec!["status".into()] }).unwrap(),
                r#"{"op":43,"d":{"guild_id":"1","fields":["status"]}}"#,
            ),
        ];
        for (command, expected) in cases {
            assert_eq!(command.frame(), expected);
        }
    }

    #[test]
    fn oversized_typed_commands_are_refused() {
        let ids = (0..300).map(|i| format!("{:019}", i)).collect();
        let err = Command::try_from(&RequestGuildMembers::users("1", ids)).unwrap_err();
        assert!(matches!(err, CommandError::TooLarge { .. }));
    }
}
