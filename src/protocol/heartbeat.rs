//! Heartbeating (`docs/connection.md#heartbeating`): jittered first beat, fixed
//! interval, ACK tracking and zombie detection. One instance per connection
//! (`docs/connection.md#one-timer-per-connection`).

use std::time::{Duration, Instant};

/// What the heartbeat timer asks for when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Send a heartbeat now.
    Send,
    /// The previous heartbeat was never acknowledged: the connection is a zombie.
    Zombie,
}

/// Heartbeat state of one connection, created from that connection's Hello.
#[derive(Debug, Clone)]
pub(crate) struct Heartbeat {
    interval: Duration,
    next_due: Instant,
    awaiting_ack: bool,
    last_sent: Option<Instant>,
    latency: Option<Duration>,
}

impl Heartbeat {
    /// Starts the timer: first beat after `interval × jitter`, `jitter` in [0, 1).
    pub(crate) fn new(interval: Duration, now: Instant, jitter: f64) -> Heartbeat {
        Heartbeat {
            interval,
            next_due: now + interval.mul_f64(jitter.clamp(0.0, 1.0)),
            awaiting_ack: false,
            last_sent: None,
            latency: None,
        }
    }

    /// When the next periodic heartbeat is due.
    pub(crate) fn next_due(&self) -> Instant {
        self.next_due
    }

    /// What to do if the timer has fired by `now`; `None` if it has not.
    pub(crate) fn poll(&self, now: Instant) -> Option<Beat> {
        if now < self.next_due {
            None
        } else if self.awaiting_ack {
            Some(Beat::Zombie)
        } else {
            Some(Beat::Send)
        }
    }

    /// Records a periodic heartbeat sent at `now`; the next is due one interval later.
    pub(crate) fn sent_periodic(&mut self, now: Instant) {
        self.awaiting_ack = true;
        self.last_sent = Some(now);
        self.next_due = now + self.interval;
    }

    /// Moves a due beat that could not be sent (no send budget) to `until`.
    pub(crate) fn defer(&mut self, until: Instant) {
        self.next_due = self.next_due.max(until);
    }

    /// Records a heartbeat sent because the server asked (op 1). The periodic
    /// timer is left alone (`docs/connection.md#server-heartbeat-requests`).
    pub(crate) fn sent_on_request(&mut self, now: Instant) {
        self.last_sent.get_or_insert(now);
    }

    /// Records an ACK (op 11). An unrequested ACK is harmless
    /// (`docs/connection.md#heartbeat-acks`).
    pub(crate) fn acked(&mut self, now: Instant) -> bool {
        let was_awaiting = self.awaiting_ack;
        if was_awaiting {
            self.latency = self.last_sent.map(|sent| now.saturating_duration_since(sent));
        }
        self.awaiting_ack = false;
        was_awaiting
    }

    /// Round trip of the last acknowledged heartbeat.
    pub(crate) fn latency(&self) -> Option<Duration> {
        self.latency
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(41_250);

    #[test]
    fn first_beat_waits_interval_times_jitter() {
        let t0 = Instant::now();
        let hb = Heartbeat::new(INTERVAL, t0, 0.25);
        assert_eq!(hb.next_due(), t0 + INTERVAL.mul_f64(0.25));
        assert_eq!(hb.poll(t0), None);
        assert_eq!(hb.poll(hb.next_due()), Some(Beat::Send));
    }

    #[test]
    fn later_beats_follow_the_interval() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(INTERVAL, t0, 0.0);
        hb.sent_periodic(t0);
        hb.acked(t0 + Duration::from_millis(80));
        assert_eq!(hb.next_due(), t0 + INTERVAL);
        assert_eq!(hb.latency(), Some(Duration::from_millis(80)));
    }

    #[test]
    fn unacked_beat_at_next_due_is_a_zombie() {
        // docs/connection.md#zombie-connections: no ACK by the time the next heartbeat is due.
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(INTERVAL, t0, 0.0);
        hb.sent_periodic(t0);
        assert_eq!(hb.poll(t0 + INTERVAL), Some(Beat::Zombie));
    }

    #[test]
    fn unrequested_ack_is_harmless() {
        // docs/connection.md#heartbeat-acks, docs/edge-cases.md#heartbeats-around-reconnects.
        let mut hb = Heartbeat::new(INTERVAL, Instant::now(), 0.5);
        assert!(!hb.acked(Instant::now()));
        assert_eq!(hb.latency(), None);
    }

    #[test]
    fn requested_beat_keeps_the_periodic_timer() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(INTERVAL, t0, 0.5);
        let due = hb.next_due();
        hb.sent_on_request(t0 + Duration::from_secs(1));
        assert_eq!(hb.next_due(), due);
        assert_eq!(hb.poll(due), Some(Beat::Send));
    }
}
