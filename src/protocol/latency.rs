//! Heartbeat round trips (`docs/connection.md#heartbeating`), measured from the `now` the
//! machine is fed: no clock is read here.

use std::time::{Duration, Instant};

/// How many round trips [`Latency::recent`] keeps and
/// [`Latency::average`] is the mean of.
const RECENT: usize = 5;

/// Heartbeat latency of a shard: the time from sending a periodic heartbeat
/// (op 1) to receiving its ACK (op 11).
///
/// It spans the shard's connections: a reconnect keeps the round trips
/// measured before it. Only a periodic heartbeat that gets its ACK is
/// measured; a heartbeat sent because the gateway asked for one (op 1 from
/// the server) is counted in [`heartbeats_sent`](Self::heartbeats_sent) but
/// does not start a measurement of its own.
///
/// [`average`](Self::average) is the mean of the last
/// [`Latency::RECENT_LEN`] round trips (the ones [`recent`](Self::recent)
/// lists), not of the shard's whole life: with Discord's ~41 s interval it
/// covers the last three to four minutes, so a connection that got slower
/// shows in it within minutes instead of being diluted by hours of history.
///
/// Read it from [`Machine::latency`](super::Machine::latency),
/// [`Shard::latency`](crate::Shard::latency) or
/// [`ShardHandle::latency`](crate::ShardHandle::latency).
///
/// ```
/// use std::time::Instant;
/// use discord_gateway_stream::protocol::{Compression, Config, Machine};
/// use discord_gateway_stream::Intents;
///
/// let now = Instant::now();
/// let config = Config::new("token", Intents::GUILDS).compression(Compression::None);
/// let machine = Machine::new(config, now).unwrap();
/// // Nothing measured before the first ACK.
/// assert_eq!(machine.latency().average(), None);
/// assert!(machine.latency().recent().is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    /// Newest first; only the first `len` are measured.
    recent: [Duration; RECENT],
    len: usize,
    heartbeats_sent: u64,
    heartbeats_acked: u64,
    sent_at: Option<Instant>,
    acked_at: Option<Instant>,
}

impl Latency {
    /// How many round trips [`recent`](Self::recent) keeps.
    pub const RECENT_LEN: usize = RECENT;

    /// The round trip of the last acknowledged heartbeat; `None` before the
    /// first ACK.
    pub fn last(&self) -> Option<Duration> {
        self.recent().first().copied()
    }

    /// The last [`RECENT_LEN`](Self::RECENT_LEN) round trips at most,
    /// newest first (empty before the first ACK).
    pub fn recent(&self) -> &[Duration] {
        &self.recent[..self.len]
    }

    /// The mean of [`recent`](Self::recent); `None` before the first ACK.
    pub fn average(&self) -> Option<Duration> {
        let count = u32::try_from(self.len).ok().filter(|&n| n > 0)?;
        self.recent().iter().sum::<Duration>().checked_div(count)
    }

    /// Heartbeats sent over the shard's life: periodic ones and those the
    /// gateway asked for. Counted when the protocol core queues one for the
    /// socket, not once the socket has written it.
    pub fn heartbeats_sent(&self) -> u64 {
        self.heartbeats_sent
    }

    /// Periodic heartbeats whose ACK arrived (each one measured).
    pub fn heartbeats_acked(&self) -> u64 {
        self.heartbeats_acked
    }

    /// When the last heartbeat was sent: the `now` the machine was given
    /// when it queued it for the socket.
    pub fn sent_at(&self) -> Option<Instant> {
        self.sent_at
    }

    /// When the last measured ACK arrived (the `now` the machine was given).
    pub fn acked_at(&self) -> Option<Instant> {
        self.acked_at
    }

    /// A heartbeat went out at `now`.
    pub(crate) fn record_sent(&mut self, now: Instant) {
        self.heartbeats_sent = self.heartbeats_sent.saturating_add(1);
        self.sent_at = Some(now);
    }

    /// The ACK of a periodic heartbeat arrived at `now`, `round_trip` after it went out.
    pub(crate) fn record_ack(&mut self, now: Instant, round_trip: Duration) {
        self.heartbeats_acked = self.heartbeats_acked.saturating_add(1);
        self.acked_at = Some(now);
        self.recent.copy_within(..RECENT - 1, 1);
        self.recent[0] = round_trip;
        self.len = (self.len + 1).min(RECENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn keeps_the_newest_round_trips_and_averages_them() {
        let t0 = Instant::now();
        let mut latency = Latency::default();
        assert_eq!((latency.last(), latency.average()), (None, None));
        for (i, rtt) in [10, 20, 30, 40, 50, 60, 70].into_iter().enumerate() {
            let sent = t0 + Duration::from_secs(i as u64);
            latency.record_sent(sent);
            latency.record_ack(sent + ms(rtt), ms(rtt));
        }
        assert_eq!(latency.recent(), &[ms(70), ms(60), ms(50), ms(40), ms(30)]);
        assert_eq!(latency.last(), Some(ms(70)));
        assert_eq!(latency.average(), Some(ms(50)));
        assert_eq!((latency.heartbeats_sent(), latency.heartbeats_acked()), (7, 7));
        assert_eq!(latency.sent_at(), Some(t0 + Duration::from_secs(6)));
        assert_eq!(latency.acked_at(), Some(t0 + Duration::from_secs(6) + ms(70)));
    }

    #[test]
    fn average_of_a_partial_window() {
        let mut latency = Latency::default();
        latency.record_ack(Instant::now(), ms(10));
        latency.record_ack(Instant::now(), ms(25));
        assert_eq!(latency.recent(), &[ms(25), ms(10)]);
        assert_eq!(latency.average(), Some(Duration::from_micros(17_500)));
    }
}
