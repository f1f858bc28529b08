//! Frames the core sends: Heartbeat, Identify, Resume (`docs/connection.md#sent-payloads`).

use serde::Serialize;
use serde_json::value::RawValue;

use super::config::{Config, IdentifyProperties, Token};

/// A sent payload over 4096 bytes closes the connection with 4002
/// (`docs/connection.md#outgoing-size-limit`).
pub const MAX_OUTBOUND_SIZE: usize = 4096;

#[derive(Serialize)]
struct Frame<T> {
    op: u8,
    d: T,
}

#[derive(Serialize)]
struct Identify<'a> {
    token: &'a str,
    properties: &'a IdentifyProperties,
    compress: bool,
    large_threshold: u16,
    shard: [u32; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    presence: Option<&'a RawValue>,
    intents: u64,
}

#[derive(Serialize)]
struct Resume<'a> {
    token: &'a str,
    session_id: &'a str,
    seq: u64,
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serializing these plain structs cannot fail; an empty frame would be
    // rejected by the size check rather than panic.
    serde_json::to_string(value).unwrap_or_default()
}

/// `{"op":1,"d":<seq or null>}`.
pub(crate) fn heartbeat(seq: Option<u64>) -> String {
    to_json(&Frame { op: 1, d: seq })
}

/// Identify with `compress:false`: transport compression replaces payload
/// compression (`docs/compression.md#choosing-it`).
pub(crate) fn identify(config: &Config, presence: Option<&RawValue>) -> String {
    to_json(&Frame {
        op: 2,
        d: Identify {
            token: config.token.expose(),
            properties: &config.properties,
            compress: false,
            large_threshold: config.large_threshold,
            shard: [config.shard.id, config.shard.total],
            presence,
            intents: config.intents.bits(),
        },
    })
}

/// `{"op":6,"d":{"token":…,"session_id":…,"seq":…}}`.
pub(crate) fn resume(token: &Token, session_id: &str, seq: u64) -> String {
    to_json(&Frame { op: 6, d: Resume { token: token.expose(), session_id, seq } })
}

/// `{"op":<op>,"d":<d>}` for an application command.
pub(crate) fn command(op: u8, d: &RawValue) -> String {
    to_json(&Frame { op, d })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intents::Intents;
    use crate::shard_id::ShardId;

    #[test]
    fn heartbeat_carries_seq_or_null() {
        assert_eq!(heartbeat(None), r#"{"op":1,"d":null}"#);
        assert_eq!(heartbeat(Some(42)), r#"{"op":1,"d":42}"#);
    }

    #[test]
    fn identify_has_every_field_and_compress_false() {
        let config = Config::new("Bot abc", Intents::GUILDS | Intents::GUILD_MESSAGES)
            .shard(ShardId::new(1, 4).unwrap())
            .properties(IdentifyProperties { os: "linux".into(), browser: "lib".into(), device: "lib".into() });
        let presence =
            RawValue::from_string(r#"{"since":null,"activities":[],"status":"idle","afk":false}"#.into()).unwrap();
        assert_eq!(
            identify(&config, Some(&presence)),
            concat!(
                r#"{"op":2,"d":{"token":"abc","properties":{"os":"linux","browser":"lib","device":"lib"},"#,
                r#""compress":false,"large_threshold":50,"shard":[1,4],"#,
                r#""presence":{"since":null,"activities":[],"status":"idle","afk":false},"intents":513}}"#
            )
        );
    }

    #[test]
    fn resume_has_token_session_and_seq() {
        assert_eq!(
            resume(&Token::new("abc"), "sess", 7),
            r#"{"op":6,"d":{"token":"abc","session_id":"sess","seq":7}}"#
        );
    }
}
