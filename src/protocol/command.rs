//! Application commands (ops 3, 4, 8, 31, 43 and future ones) bound for the gateway.

use serde_json::value::RawValue;

use super::opcode::OpCode;
use super::payload::{self, MAX_OUTBOUND_SIZE};

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// Heartbeat, Identify and Resume belong to the core; sending one yourself
    /// would break the session (a second Identify closes with 4005).
    #[error("opcode {0} is sent by the protocol core itself")]
    CoreOwnedOpcode(u8),
    /// The frame would exceed the gateway's 4096-byte limit (4002 otherwise).
    #[error("command is {len} bytes, over the gateway's 4096-byte limit")]
    TooLarge {
        /// Size of the serialized frame.
        len: usize,
    },
    /// `d` is not valid JSON.
    #[error("command `d` is not valid JSON: {0}")]
    InvalidJson(String),
    /// Too many commands are waiting for the connection or the rate limit.
    #[error("{limit} commands are already queued")]
    QueueFull {
        /// The configured queue bound.
        limit: usize,
    },
    /// The shard was closed or ended fatally.
    #[error("the shard is closed")]
    Closed,
    /// A presence update (op 3) whose `d` is not a JSON object. The last
    /// presence is sent again in every later Identify, so a bad one would
    /// break every reconnect after it.
    #[error("a presence update's `d` must be a JSON object")]
    InvalidPresence,
}

/// One serialized command frame, checked against the size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    op: u8,
    frame: String,
}

impl Command {
    /// A command with opcode `op` and JSON `d`.
    ///
    /// ```
    /// use discord_gateway_stream::protocol::Command;
    /// let cmd = Command::new(8, r#"{"guild_id":"1","query":"","limit":0}"#).unwrap();
    /// assert_eq!(cmd.frame(), r#"{"op":8,"d":{"guild_id":"1","query":"","limit":0}}"#);
    /// assert!(Command::new(2, "{}").is_err());
    /// assert!(Command::new(3, "null").is_err(), "a presence is an object");
    /// ```
    pub fn new(op: u8, d: &str) -> Result<Command, CommandError> {
        if OpCode::from_u64(op.into()).is_some_and(OpCode::is_core_owned) {
            return Err(CommandError::CoreOwnedOpcode(op));
        }
        let d: &RawValue = serde_json::from_str(d).map_err(|e| CommandError::InvalidJson(e.to_string()))?;
        if op == OpCode::PresenceUpdate.code() && !d.get().trim_start().starts_with('{') {
            return Err(CommandError::InvalidPresence);
        }
        let frame = payload::command(op, d);
        if frame.len() > MAX_OUTBOUND_SIZE {
            return Err(CommandError::TooLarge { len: frame.len() });
        }
        Ok(Command { op, frame })
    }

    /// The opcode.
    pub fn op(&self) -> u8 {
        self.op
    }

    /// The serialized frame, `{"op":…,"d":…}`.
    pub fn frame(&self) -> &str {
        &self.frame
    }

    /// The raw `d`, as sent.
    pub(crate) fn data(&self) -> Option<&str> {
        let start = self.frame.find(",\"d\":")? + 5;
        self.frame.get(start..self.frame.len().checked_sub(1)?)
    }

    pub(crate) fn into_frame(self) -> String {
        self.frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_commands_are_refused_before_sending() {
        // docs/connection.md#outgoing-size-limit: over 4096 bytes closes with
        // 4002, so fail locally.
        let big = format!(r#"{{"guild_ids":["{}"]}}"#, "1".repeat(4100));
        assert!(matches!(Command::new(31, &big), Err(CommandError::TooLarge { .. })));
    }

    #[test]
    fn core_owned_opcodes_and_bad_json_are_refused() {
        for op in [1, 2, 6] {
            assert_eq!(Command::new(op, "{}"), Err(CommandError::CoreOwnedOpcode(op)));
        }
        assert!(matches!(Command::new(3, "{not json"), Err(CommandError::InvalidJson(_))));
    }

    #[test]
    fn data_returns_d_as_sent() {
        let cmd = Command::new(3, r#"{"since":null,"activities":[],"status":"dnd","afk":false}"#).unwrap();
        assert_eq!(cmd.data(), Some(r#"{"since":null,"activities":[],"status":"dnd","afk":false}"#));
    }
}
