//! Gateway opcodes (`docs/connection.md#opcodes`).

/// A gateway opcode this crate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpCode {
    /// 0, receive: an event.
    Dispatch,
    /// 1, send and receive: keep-alive, or the server asking for one now.
    Heartbeat,
    /// 2, send: start a new session.
    Identify,
    /// 3, send: change the bot's presence.
    PresenceUpdate,
    /// 4, send: join, move or leave voice channels.
    VoiceStateUpdate,
    /// 6, send: reattach to an existing session.
    Resume,
    /// 7, receive: reconnect and resume now.
    Reconnect,
    /// 8, send: request guild members.
    RequestGuildMembers,
    /// 9, receive: the session is invalid; `d` says whether it may be resumed.
    InvalidSession,
    /// 10, receive: first frame of a connection, carries `heartbeat_interval`.
    Hello,
    /// 11, receive: a heartbeat was received.
    HeartbeatAck,
    /// 31, send: request soundboard sounds.
    RequestSoundboardSounds,
    /// 43, send: request channel info.
    RequestChannelInfo,
}

impl OpCode {
    /// The opcode for a wire number, `None` when it is not documented.
    pub fn from_u64(op: u64) -> Option<OpCode> {
        Some(match op {
            0 => OpCode::Dispatch,
            1 => OpCode::Heartbeat,
            2 => OpCode::Identify,
            3 => OpCode::PresenceUpdate,
            4 => OpCode::VoiceStateUpdate,
            6 => OpCode::Resume,
            7 => OpCode::Reconnect,
            8 => OpCode::RequestGuildMembers,
            9 => OpCode::InvalidSession,
            10 => OpCode::Hello,
            11 => OpCode::HeartbeatAck,
            31 => OpCode::RequestSoundboardSounds,
            43 => OpCode::RequestChannelInfo,
            _ => return None,
        })
    }

    /// The wire number.
    pub fn code(self) -> u8 {
        match self {
            OpCode::Dispatch => 0,
            OpCode::Heartbeat => 1,
            OpCode::Identify => 2,
            OpCode::PresenceUpdate => 3,
            OpCode::VoiceStateUpdate => 4,
            OpCode::Resume => 6,
            OpCode::Reconnect => 7,
            OpCode::RequestGuildMembers => 8,
            OpCode::InvalidSession => 9,
            OpCode::Hello => 10,
            OpCode::HeartbeatAck => 11,
            OpCode::RequestSoundboardSounds => 31,
            OpCode::RequestChannelInfo => 43,
        }
    }

    /// Whether the protocol core sends this opcode itself (heartbeat, identify,
    /// resume): an application sending one would break the session (4005).
    pub fn is_core_owned(self) -> bool {
        matches!(self, OpCode::Heartbeat | OpCode::Identify | OpCode::Resume)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_opcode_round_trips() {
        for op in [0u64, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 31, 43] {
            let code = OpCode::from_u64(op).expect("documented");
            assert_eq!(u64::from(code.code()), op);
        }
    }

    #[test]
    fn undocumented_opcodes_are_none() {
        for op in [5u64, 12, 30, 42, 44, 255, u64::MAX] {
            assert_eq!(OpCode::from_u64(op), None);
        }
    }
}
