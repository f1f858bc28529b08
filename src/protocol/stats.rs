//! Per-shard counters the protocol core keeps as it goes.

/// A snapshot of one shard's counters, for metrics exporters.
///
/// Every counter starts at zero when the [`Machine`](super::Machine) (or the
/// [`Shard`](crate::Shard)) is built and only grows: a restarted shard (a
/// new `Shard`, e.g. [`ShardGroup::restart`](crate::ShardGroup::restart))
/// starts again from zero, which metrics systems read as a counter reset.
///
/// Read it from [`Machine::stats`](super::Machine::stats),
/// [`Shard::stats`](crate::Shard::stats) or
/// [`ShardHandle::stats`](crate::ShardHandle::stats). New counters may be
/// added in a minor release (the struct is `#[non_exhaustive]`).
///
/// Payloads the shard sends (Identify, Resume, heartbeats) are counted when
/// the protocol core queues them for the socket, not once the socket has
/// written them: one queued just before the connection drops still counts.
///
/// ```no_run
/// # fn export(handle: &discord_gateway_stream::ShardHandle) {
/// let stats = handle.stats();
/// println!(
///     "shard {}: {} dispatches, {} bytes on the wire, {} reconnects ({} resumes, {} identifies)",
///     handle.id(),
///     stats.dispatches,
///     stats.bytes_received,
///     stats.reconnects,
///     stats.resumes,
///     stats.identifies,
/// );
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ShardStats {
    /// Dispatches (opcode 0) handed to the application, READY and RESUMED
    /// included; not those [`Config::events`](super::Config::events) filters
    /// out, nor duplicates a resume replays.
    pub dispatches: u64,
    /// WebSocket text and binary messages received (pings, pongs and close
    /// frames are not counted). Neither are messages the shard refuses: one
    /// over [`Config::max_message_size`](super::Config::max_message_size)
    /// (refused by the transport; the shard reconnects, see
    /// [`DisconnectReason::MessageTooLarge`](super::DisconnectReason::MessageTooLarge)),
    /// nor one reported to the [`Machine`](super::Machine) while it has no
    /// open connection.
    pub messages: u64,
    /// Bytes of those messages as they came off the wire (compressed under
    /// transport compression; WebSocket framing not included). Refused
    /// messages are not counted (see `messages`).
    pub bytes_received: u64,
    /// Bytes of the JSON payloads read out of them: after decompression
    /// under transport compression, else the same as `bytes_received`.
    pub bytes_decompressed: u64,
    /// Connections lost or given up on after which the shard connected
    /// again (each time its status became
    /// [`Reconnecting`](super::Status::Reconnecting)); failed connects count.
    pub reconnects: u64,
    /// Identify payloads (op 2) sent: each starts a new session.
    pub identifies: u64,
    /// Resume payloads (op 6) sent. A resume that fails (op 9, or a close
    /// before RESUMED) is followed by another Resume or by an Identify.
    pub resumes: u64,
    /// Heartbeats (op 1) sent: periodic ones and those the gateway asked
    /// for; counted when queued for the socket (see above).
    pub heartbeats_sent: u64,
    /// Periodic heartbeats whose ACK (op 11) arrived.
    pub heartbeats_acked: u64,
    /// Payloads skipped because they could not be read (see
    /// [`Machine::skipped_payloads`](super::Machine::skipped_payloads)).
    pub skipped_payloads: u64,
}
