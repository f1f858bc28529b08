//! Typed gateway commands (`docs/connection.md#sent-payloads`): the payloads an
//! application sends. Each converts into a size-checked
//! [`crate::protocol::Command`].
//!
//! Guild, channel and user ids are `u64`. On the wire they are JSON strings,
//! as Discord sends and expects snowflakes (`"guild_id":"41771983444115456"`);
//! deserializing accepts a string or a number.
//!
//! Send them through a [`ShardHandle`](crate::ShardHandle) (or
//! [`ShardGroup::handle`](crate::ShardGroup::handle)). The connection queues
//! them until READY/RESUMED, paces them at 120 per 60 s with slots reserved
//! for heartbeats (`docs/rate-limits.md#send-limit`), and sends them again
//! after a reconnect if they had not been written, once and in order. They
//! are checked before they are queued: core opcodes (Heartbeat, Identify,
//! Resume) are refused, frames over 4096 bytes too, and a presence update
//! must be a JSON object (the last one is sent again in every Identify).
//!
//! ```
//! use discord_gateway_stream::commands::RequestGuildMembers;
//! use discord_gateway_stream::protocol::Command;
//!
//! let request = RequestGuildMembers::query(81384788765712384, "", 0);
//! let command = Command::try_from(&request)?;
//! assert_eq!(command.op(), 8);
//! # Ok::<(), discord_gateway_stream::CommandError>(())
//! ```

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::protocol::{Command, CommandError, OpCode};

/// The bot's online status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// An activity's `type`: what the name shown after it means ("Playing …",
/// "Listening to …"). Serialized as Discord's integer.
///
/// Codes this version does not name deserialize as [`Unknown`](Self::Unknown)
/// and serialize back unchanged. Build one from a code with
/// [`ActivityType::from`]; two values are equal when their codes are, so
/// `Unknown(0)` equals `Playing`.
///
/// ```
/// use discord_gateway_stream::commands::ActivityType;
/// assert_eq!(serde_json::to_string(&ActivityType::Listening).unwrap(), "2");
/// assert_eq!(serde_json::from_str::<ActivityType>("5").unwrap(), ActivityType::Competing);
/// assert_eq!(ActivityType::from(42), ActivityType::Unknown(42));
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum ActivityType {
    /// 0: "Playing {name}".
    Playing,
    /// 1: "Streaming {details}"; the activity's `url` must be a Twitch or YouTube URL.
    Streaming,
    /// 2: "Listening to {name}".
    Listening,
    /// 3: "Watching {name}".
    Watching,
    /// 4: "{emoji} {state}", a custom status: the text is the activity's `state`.
    Custom,
    /// 5: "Competing in {name}".
    Competing,
    /// A code this version does not name.
    Unknown(u8),
}

impl ActivityType {
    /// Discord's integer for this type.
    pub const fn code(self) -> u8 {
        match self {
            ActivityType::Playing => 0,
            ActivityType::Streaming => 1,
            ActivityType::Listening => 2,
            ActivityType::Watching => 3,
            ActivityType::Custom => 4,
            ActivityType::Competing => 5,
            ActivityType::Unknown(code) => code,
        }
    }
}

impl From<u8> for ActivityType {
    fn from(code: u8) -> ActivityType {
        match code {
            0 => ActivityType::Playing,
            1 => ActivityType::Streaming,
            2 => ActivityType::Listening,
            3 => ActivityType::Watching,
            4 => ActivityType::Custom,
            5 => ActivityType::Competing,
            other => ActivityType::Unknown(other),
        }
    }
}

impl From<ActivityType> for u8 {
    fn from(kind: ActivityType) -> u8 {
        kind.code()
    }
}

impl PartialEq for ActivityType {
    fn eq(&self, other: &ActivityType) -> bool {
        self.code() == other.code()
    }
}

impl Eq for ActivityType {}

impl std::hash::Hash for ActivityType {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.code().hash(state);
    }
}

impl Serialize for ActivityType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.code())
    }
}

impl<'de> Deserialize<'de> for ActivityType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ActivityType, D::Error> {
        u8::deserialize(deserializer).map(ActivityType::from)
    }
}

/// An activity a bot may set: name, type, and optionally state and URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// Activity name.
    pub name: String,
    /// What the activity is (Playing, Listening, …).
    #[serde(rename = "type")]
    pub kind: ActivityType,
    /// Custom status text (type 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Stream URL (type 1; Twitch and YouTube only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Activity {
    /// An activity of `kind` named `name`, with no state or URL.
    pub fn new(kind: ActivityType, name: impl Into<String>) -> Activity {
        Activity { name: name.into(), kind, state: None, url: None }
    }
}

/// Presence update (op 3), also the `presence` of Identify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
///
/// ```
/// use discord_gateway_stream::commands::RequestGuildMembers;
/// use discord_gateway_stream::protocol::Command;
/// let request = RequestGuildMembers::query(41771983444115456, "", 0);
/// assert_eq!(
///     Command::try_from(&request).unwrap().frame(),
///     r#"{"op":8,"d":{"guild_id":"41771983444115456","query":"","limit":0}}"#,
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestGuildMembers {
    /// The guild.
    #[serde(with = "snowflake")]
    pub guild_id: u64,
    /// Username prefix; `""` with `limit: 0` asks for everyone (needs GUILD_MEMBERS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Maximum members to return (required with `query`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Include presences (needs GUILD_PRESENCES).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presences: Option<bool>,
    /// Specific users (at most 100).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "snowflake::option_vec")]
    pub user_ids: Option<Vec<u64>>,
    /// Echoed in the chunks (at most 32 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

impl RequestGuildMembers {
    /// Members whose username starts with `query` (`""` = all), at most `limit` (0 = no limit).
    pub fn query(guild_id: u64, query: impl Into<String>, limit: u32) -> Self {
        RequestGuildMembers {
            guild_id,
            query: Some(query.into()),
            limit: Some(limit),
            presences: None,
            user_ids: None,
            nonce: None,
        }
    }

    /// Specific members by id.
    pub fn users(guild_id: u64, user_ids: impl IntoIterator<Item = u64>) -> Self {
        RequestGuildMembers {
            guild_id,
            query: None,
            limit: None,
            presences: None,
            user_ids: Some(user_ids.into_iter().collect()),
            nonce: None,
        }
    }
}

/// Voice state update (op 4): join, move or leave (`channel_id: None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceStateUpdate {
    /// The guild.
    #[serde(with = "snowflake")]
    pub guild_id: u64,
    /// The voice channel, or `None` to leave.
    #[serde(with = "snowflake::option")]
    pub channel_id: Option<u64>,
    /// Self-muted.
    pub self_mute: bool,
    /// Self-deafened.
    pub self_deaf: bool,
}

/// Request soundboard sounds (op 31), answered by a SOUNDBOARD_SOUNDS
/// dispatch per guild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSoundboardSounds {
    /// The guilds.
    #[serde(with = "snowflake::vec")]
    pub guild_ids: Vec<u64>,
}

/// Request channel info (op 43): ephemeral voice status and start time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestChannelInfo {
    /// The guild.
    #[serde(with = "snowflake")]
    pub guild_id: u64,
    /// Any of `"status"`, `"voice_start_time"`.
    pub fields: Vec<String>,
}

/// Snowflakes as Discord writes them: a `u64` serialized as a JSON string;
/// deserialized from a string or a number.
mod snowflake {
    use super::*;

    /// One snowflake, for the `Option` and `Vec` forms.
    struct Id(u64);

    impl Serialize for Id {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_str(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for Id {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Id, D::Error> {
            deserializer.deserialize_any(IdVisitor).map(Id)
        }
    }

    struct IdVisitor;

    impl serde::de::Visitor<'_> for IdVisitor {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a snowflake: a non-negative integer or a string of one")
        }

        fn visit_u64<E: serde::de::Error>(self, id: u64) -> Result<u64, E> {
            Ok(id)
        }

        fn visit_i64<E: serde::de::Error>(self, id: i64) -> Result<u64, E> {
            u64::try_from(id).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(id), &self))
        }

        fn visit_str<E: serde::de::Error>(self, id: &str) -> Result<u64, E> {
            id.parse().map_err(|_| E::invalid_value(serde::de::Unexpected::Str(id), &self))
        }
    }

    pub(super) fn serialize<S: Serializer>(id: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        Id(*id).serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        Id::deserialize(deserializer).map(|Id(id)| id)
    }

    /// `null` or a snowflake.
    pub(super) mod option {
        use super::*;

        pub(in super::super) fn serialize<S: Serializer>(id: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
            id.map(Id).serialize(serializer)
        }

        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<u64>, D::Error> {
            Ok(Option::<Id>::deserialize(deserializer)?.map(|Id(id)| id))
        }
    }

    /// An array of snowflakes.
    pub(super) mod vec {
        use super::*;

        pub(in super::super) fn serialize<S: Serializer>(ids: &[u64], serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(ids.iter().map(|id| Id(*id)))
        }

        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u64>, D::Error> {
            Ok(Vec::<Id>::deserialize(deserializer)?.into_iter().map(|Id(id)| id).collect())
        }
    }

    /// An optional array of snowflakes (a field left out when `None`).
    pub(super) mod option_vec {
        use super::*;

        pub(in super::super) fn serialize<S: Serializer>(
            ids: &Option<Vec<u64>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match ids {
                Some(ids) => serializer.serialize_some(&Ids(ids)),
                None => serializer.serialize_none(),
            }
        }

        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Vec<u64>>, D::Error> {
            let ids = Option::<Vec<Id>>::deserialize(deserializer)?;
            Ok(ids.map(|ids| ids.into_iter().map(|Id(id)| id).collect()))
        }

        struct Ids<'a>(&'a [u64]);

        impl Serialize for Ids<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                vec::serialize(self.0, serializer)
            }
        }
    }
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
            activities: vec![Activity::new(ActivityType::Playing, "tests")],
            status: OnlineStatus::Dnd,
            afk: false,
        };
        let cases: Vec<(Command, &str)> = vec![
            (
                Command::try_from(&presence).unwrap(),
                r#"{"op":3,"d":{"since":null,"activities":[{"name":"tests","type":0}],"status":"dnd","afk":false}}"#,
            ),
            (
                Command::try_from(&RequestGuildMembers::query(1, "", 0)).unwrap(),
                r#"{"op":8,"d":{"guild_id":"1","query":"","limit":0}}"#,
            ),
            (
                Command::try_from(&VoiceStateUpdate {
                    guild_id: 1,
                    channel_id: None,
                    self_mute: false,
                    self_deaf: true,
                })
                .unwrap(),
                r#"{"op":4,"d":{"guild_id":"1","channel_id":null,"self_mute":false,"self_deaf":true}}"#,
            ),
            (
                Command::try_from(&RequestSoundboardSounds { guild_ids: vec![1, 2] }).unwrap(),
                r#"{"op":31,"d":{"guild_ids":["1","2"]}}"#,
            ),
            (
                Command::try_from(&RequestChannelInfo { guild_id: 1, fields: vec!["status".into()] }).unwrap(),
                r#"{"op":43,"d":{"guild_id":"1","fields":["status"]}}"#,
            ),
        ];
        for (command, expected) in cases {
            assert_eq!(command.frame(), expected);
        }
    }

    #[test]
    fn snowflakes_deserialize_from_strings_and_numbers() {
        let from_strings: VoiceStateUpdate = serde_json::from_str(
            r#"{"guild_id":"18446744073709551615","channel_id":"2","self_mute":false,"self_deaf":false}"#,
        )
        .unwrap();
        let from_numbers: VoiceStateUpdate = serde_json::from_str(
            r#"{"guild_id":18446744073709551615,"channel_id":2,"self_mute":false,"self_deaf":false}"#,
        )
        .unwrap();
        assert_eq!(from_strings, from_numbers);
        assert_eq!((from_strings.guild_id, from_strings.channel_id), (u64::MAX, Some(2)));
        for bad in [r#""-1""#, "-1", r#""1.5""#, "1.5", r#""""#, r#""18446744073709551616""#, "true"] {
            let json = format!(r#"{{"guild_ids":[{bad}]}}"#);
            assert!(serde_json::from_str::<RequestSoundboardSounds>(&json).is_err(), "{json}");
        }
    }

    #[test]
    fn activity_types_keep_unknown_codes() {
        for code in 0..=u8::MAX {
            let kind = ActivityType::from(code);
            assert_eq!(kind.code(), code);
            assert_eq!(serde_json::to_string(&kind).unwrap(), code.to_string());
            assert_eq!(serde_json::from_str::<ActivityType>(&code.to_string()).unwrap(), kind);
            assert_eq!(matches!(kind, ActivityType::Unknown(_)), code > 5, "{kind:?}");
        }
        assert_eq!(ActivityType::Unknown(3), ActivityType::Watching);
        assert!(serde_json::from_str::<ActivityType>("256").is_err());
    }

    #[test]
    fn oversized_typed_commands_are_refused() {
        let ids = (0..300).map(|i| 1_000_000_000_000_000_000 + i);
        let err = Command::try_from(&RequestGuildMembers::users(1, ids)).unwrap_err();
        assert!(matches!(err, CommandError::TooLarge { .. }));
    }
}
