//! What a close code means for the session (`docs/close-codes.md`).

/// The close code this crate sends when it drops a connection but keeps the
/// session: anything but 1000/1001 keeps it alive
/// (`docs/close-codes.md#our-own-close-codes`); 4000 is what twilight,
/// discord.py and DSharpPlus send.
pub const RESUMABLE_CLOSE: u16 = 4000;

/// The close code for a deliberate shutdown: the session ends and the bot shows
/// offline (`docs/close-codes.md#our-own-close-codes`,
/// `docs/edge-cases.md#wrong-close-code`).
pub const FINAL_CLOSE: u16 = 1000;

/// What to do after the server (or the network) closed the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseAction {
    /// Reconnect and resume the session.
    Resume,
    /// Reconnect and start a new session: the old one cannot be resumed.
    Identify,
    /// Stop: a configuration error that reconnecting cannot fix.
    Fatal(FatalError),
}

/// Why the core stopped for good: a close code after which reconnecting is
/// pointless (`docs/close-codes.md#gateway-close-codes`,
/// `docs/edge-cases.md#reconnect-loops`), or a loop the client refuses to go on
/// with because it would only spend the daily session-start budget (running out
/// of it resets the bot's token).
///
/// Each message says what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum FatalError {
    /// 4004: the token was rejected.
    #[error("gateway closed with 4004 authentication failed: the bot token is invalid; copy a current token from the Developer Portal (reset it if it leaked)")]
    AuthenticationFailed,
    /// 4010: the `[shard_id, num_shards]` pair is invalid.
    #[error("gateway closed with 4010 invalid shard: shard id must be below the shard count, and large bots must use a multiple of their assigned shard count")]
    InvalidShard,
    /// 4011: the session would hold too many guilds.
    #[error("gateway closed with 4011 sharding required: this shard would hold more than 2500 guilds; raise the shard count (GET /gateway/bot recommends one)")]
    ShardingRequired,
    /// 4012: the `v` query parameter was rejected.
    #[error("gateway closed with 4012 invalid API version: this crate sends v=10; check that no proxy rewrites the gateway URL's query")]
    InvalidApiVersion,
    /// 4013: the intents bitfield has undocumented bits.
    #[error("gateway closed with 4013 invalid intents: remove undocumented bits from `intents`")]
    InvalidIntents,
    /// 4014: a privileged intent is not enabled or approved.
    #[error("gateway closed with 4014 disallowed intents: enable the privileged intents in the Developer Portal or remove them from `intents`")]
    DisallowedIntents,
    /// The client stopped: a payload over
    /// [`Config::max_message_size`](super::Config::max_message_size) ended
    /// the connection again and again at the same point of the stream (the
    /// gateway sends it anew on every resume, or in every new session).
    /// Reconnecting would only spend Identifies on it.
    #[error(
        "the gateway sent {} after {} on {failures} connections in a row and would send it again on every reconnect; stopped rather than spend more Identifies on it: raise Config::max_message_size (at most 1 GiB) above the payload's size",
        describe_size(*.size, *.limit),
        describe_seq(*.after_seq)
    )]
    PayloadTooLarge {
        /// The last `s` received before the payload (`None`: before READY).
        after_seq: Option<u64>,
        /// The payload's size in bytes, when the WebSocket layer knew it
        /// (a compressed payload is only known to inflate past the cap).
        size: Option<usize>,
        /// The `max_message_size` in force.
        limit: usize,
        /// Consecutive connections that failed on it.
        failures: u32,
    },
    /// The client stopped: the compressed stream could not be decoded at
    /// the same point of the stream, again and again (the gateway, or a
    /// proxy in between, sends the same bad bytes on every reconnect).
    #[error(
        "the compressed stream could not be decoded after {} on {failures} connections in a row; stopped rather than spend more Identifies on it: check any proxy between the shard and the gateway, or set Config::compression to Compression::None",
        describe_seq(*.after_seq)
    )]
    PayloadUndecodable {
        /// The last `s` received before the bad payload (`None`: before READY).
        after_seq: Option<u64>,
        /// Consecutive connections that failed on it.
        failures: u32,
    },
    /// The client stopped: this shard already identified `limit` times in
    /// the last 24 hours ([`Config::max_identifies_per_day`](super::Config::max_identifies_per_day)).
    /// Something keeps ending its sessions; going on would spend the bot's
    /// daily session-start budget, and running out of it resets the token.
    #[error(
        "this shard identified {limit} times in 24 hours and stopped before spending the daily session-start budget (running out resets the bot token): find what keeps ending its sessions in the logs, or raise Config::max_identifies_per_day"
    )]
    TooManyIdentifies {
        /// The limit that was reached.
        limit: u32,
    },
}

fn describe_size(size: Option<usize>, limit: usize) -> String {
    match size {
        Some(size) => format!("a payload of {size} bytes, over max_message_size ({limit} bytes),"),
        None => format!("a payload over max_message_size ({limit} bytes)"),
    }
}

fn describe_seq(seq: Option<u64>) -> String {
    match seq {
        Some(seq) => format!("sequence {seq}"),
        None => "the start of a session".to_owned(),
    }
}

impl FatalError {
    /// The close code behind this error: the gateway's for a close code,
    /// [`FINAL_CLOSE`] (1000, which the client sends as it stops) for a stop
    /// the client decided itself ([`close_code`](Self::close_code) is then `None`).
    pub fn code(self) -> u16 {
        self.close_code().unwrap_or(FINAL_CLOSE)
    }

    /// The gateway's close code behind this error; `None` when the client
    /// stopped on its own ([`PayloadTooLarge`](Self::PayloadTooLarge),
    /// [`PayloadUndecodable`](Self::PayloadUndecodable),
    /// [`TooManyIdentifies`](Self::TooManyIdentifies)).
    pub fn close_code(self) -> Option<u16> {
        Some(match self {
            FatalError::AuthenticationFailed => 4004,
            FatalError::InvalidShard => 4010,
            FatalError::ShardingRequired => 4011,
            FatalError::InvalidApiVersion => 4012,
            FatalError::InvalidIntents => 4013,
            FatalError::DisallowedIntents => 4014,
            FatalError::PayloadTooLarge { .. }
            | FatalError::PayloadUndecodable { .. }
            | FatalError::TooManyIdentifies { .. } => return None,
        })
    }
}

/// Classifies a close the server (or the network) caused; `None` means the
/// connection ended with no close code (TCP reset, EOF, 1005, 1006).
///
/// Follows the "Crate" columns of `docs/close-codes.md#gateway-close-codes` and
/// `docs/close-codes.md#closes-without-a-gateway-code`: unknown 4xxx codes and
/// every 1xxx code resume (`docs/edge-cases.md#server-sent-1000`,
/// `docs/edge-cases.md#undocumented-close-codes`).
pub fn classify(code: Option<u16>) -> CloseAction {
    match code {
        Some(4004) => CloseAction::Fatal(FatalError::AuthenticationFailed),
        Some(4010) => CloseAction::Fatal(FatalError::InvalidShard),
        Some(4011) => CloseAction::Fatal(FatalError::ShardingRequired),
        Some(4012) => CloseAction::Fatal(FatalError::InvalidApiVersion),
        Some(4013) => CloseAction::Fatal(FatalError::InvalidIntents),
        Some(4014) => CloseAction::Fatal(FatalError::DisallowedIntents),
        // Session gone or rejected: resuming would only cost a round trip
        // before op 9 (docs/close-codes.md#gateway-close-codes: 4001, 4003,
        // 4005, undocumented 4006, 4007, 4009).
        Some(4001 | 4003 | 4005 | 4006 | 4007 | 4009) => CloseAction::Identify,
        _ => CloseAction::Resume,
    }
}

#[cfg(test)]
mod tests {
    //! One test per row of `docs/close-codes.md#gateway-close-codes` and
    //! `docs/close-codes.md#closes-without-a-gateway-code`.
    use super::*;

    #[test]
    fn close_4000_unknown_error_resumes() {
        assert_eq!(classify(Some(4000)), CloseAction::Resume);
    }
    #[test]
    fn close_4001_unknown_opcode_identifies() {
        assert_eq!(classify(Some(4001)), CloseAction::Identify);
    }
    #[test]
    fn close_4002_decode_error_resumes() {
        assert_eq!(classify(Some(4002)), CloseAction::Resume);
    }
    #[test]
    fn close_4003_not_authenticated_identifies() {
        // docs/edge-cases.md#session-invalidated-while-connected: 4003
        // mid-session means the session was invalidated.
        assert_eq!(classify(Some(4003)), CloseAction::Identify);
    }
    #[test]
    fn close_4004_authentication_failed_is_fatal() {
        assert_eq!(classify(Some(4004)), CloseAction::Fatal(FatalError::AuthenticationFailed));
    }
    #[test]
    fn close_4005_already_authenticated_identifies() {
        assert_eq!(classify(Some(4005)), CloseAction::Identify);
    }
    #[test]
    fn close_4006_undocumented_identifies() {
        assert_eq!(classify(Some(4006)), CloseAction::Identify);
    }
    #[test]
    fn close_4007_invalid_seq_identifies() {
        assert_eq!(classify(Some(4007)), CloseAction::Identify);
    }
    #[test]
    fn close_4008_rate_limited_resumes() {
        assert_eq!(classify(Some(4008)), CloseAction::Resume);
    }
    #[test]
    fn close_4009_session_timed_out_identifies() {
        assert_eq!(classify(Some(4009)), CloseAction::Identify);
    }
    #[test]
    fn close_4010_invalid_shard_is_fatal() {
        assert_eq!(classify(Some(4010)), CloseAction::Fatal(FatalError::InvalidShard));
    }
    #[test]
    fn close_4011_sharding_required_is_fatal() {
        assert_eq!(classify(Some(4011)), CloseAction::Fatal(FatalError::ShardingRequired));
    }
    #[test]
    fn close_4012_invalid_api_version_is_fatal() {
        assert_eq!(classify(Some(4012)), CloseAction::Fatal(FatalError::InvalidApiVersion));
    }
    #[test]
    fn close_4013_invalid_intents_is_fatal() {
        assert_eq!(classify(Some(4013)), CloseAction::Fatal(FatalError::InvalidIntents));
    }
    #[test]
    fn close_4014_disallowed_intents_is_fatal() {
        assert_eq!(classify(Some(4014)), CloseAction::Fatal(FatalError::DisallowedIntents));
    }
    #[test]
    fn unknown_4xxx_resumes() {
        // docs/edge-cases.md#undocumented-close-codes: don't treat undocumented codes as fatal.
        assert_eq!(classify(Some(4999)), CloseAction::Resume);
        assert_eq!(classify(Some(4015)), CloseAction::Resume);
    }
    #[test]
    fn server_1000_and_1001_resume() {
        // docs/close-codes.md#closes-without-a-gateway-code /
        // docs/edge-cases.md#server-sent-1000: a server-sent 1000 has been seen
        // around heartbeat trouble.
        assert_eq!(classify(Some(1000)), CloseAction::Resume);
        assert_eq!(classify(Some(1001)), CloseAction::Resume);
    }
    #[test]
    fn no_close_code_resumes() {
        // docs/connection.md#resume-or-identify: TCP reset, EOF, 1005 and 1006
        // are resume cases (docs/edge-cases.md#close-without-a-code).
        assert_eq!(classify(None), CloseAction::Resume);
        assert_eq!(classify(Some(1005)), CloseAction::Resume);
        assert_eq!(classify(Some(1006)), CloseAction::Resume);
    }
    #[test]
    fn message_too_big_and_other_1xxx_resume() {
        for code in [1009, 1011, 1012, 1013, 1014] {
            assert_eq!(classify(Some(code)), CloseAction::Resume, "{code}");
        }
    }
    #[test]
    fn fatal_messages_name_the_code_and_the_fix() {
        let all = [
            FatalError::AuthenticationFailed,
            FatalError::InvalidShard,
            FatalError::ShardingRequired,
            FatalError::InvalidApiVersion,
            FatalError::InvalidIntents,
            FatalError::DisallowedIntents,
        ];
        for fatal in all {
            let text = fatal.to_string();
            assert!(text.contains(&fatal.code().to_string()), "{text}");
            assert_eq!(classify(Some(fatal.code())), CloseAction::Fatal(fatal));
        }
        assert!(FatalError::DisallowedIntents.to_string().contains("Developer Portal"));
    }
    #[test]
    fn our_own_reconnect_code_keeps_the_session() {
        // docs/close-codes.md#our-own-close-codes: only 1000/1001 invalidate;
        // never 1005/1006/1015 in a frame.
        assert!(!matches!(RESUMABLE_CLOSE, 1000 | 1001 | 1005 | 1006 | 1015));
        assert_eq!(FINAL_CLOSE, 1000);
    }
}
