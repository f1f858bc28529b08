//! Send rate limit (`docs/rate-limits.md#send-limit`,
//! `docs/edge-cases.md#send-budget-exhaustion`): 120 frames per 60 s per
//! connection, as a sliding-window log, with slots only heartbeats, Identify
//! and Resume may use.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Frames a connection may send per window.
pub const SEND_LIMIT: usize = 120;
/// The window the limit applies to.
pub const SEND_WINDOW: Duration = Duration::from_secs(60);

/// Who is asking to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Priority {
    /// Periodic heartbeats: may use every slot.
    Periodic,
    /// Identify, Resume: may use every slot.
    Control,
    /// Answers to a server heartbeat request (op 1): may use the reserve
    /// except the slots the periodic heartbeats still need in this window,
    /// so a server that keeps asking cannot push a periodic beat past the
    /// limit (found by fuzzing).
    HeartbeatReply,
    /// Application commands: must leave the whole reserve free.
    Command,
}

/// Sliding-window log of one connection's sends.
#[derive(Debug, Clone)]
pub(crate) struct SendLimiter {
    /// When each frame in the window was sent, and whether it was a periodic heartbeat.
    sent: VecDeque<(Instant, bool)>,
    /// Periodic heartbeats that fit in one window (they are an interval apart).
    periodic: usize,
    /// Control frames this connection still owes (an Identify waiting for
    /// its permit): replies to op 1 must leave room for them too.
    owed: usize,
}

impl SendLimiter {
    /// A fresh budget for a connection whose Hello announced `heartbeat_interval`.
    ///
    /// Reserves `ceil(60 s / interval) + 1` slots (at most 10) for heartbeats,
    /// as twilight does: 3 at the usual 41.25 s interval (twilight#1947).
    pub(crate) fn new(heartbeat_interval: Duration) -> SendLimiter {
        let interval_ms = heartbeat_interval.as_millis().max(1);
        let per_window = SEND_WINDOW.as_millis().div_ceil(interval_ms);
        let periodic = usize::try_from(per_window).unwrap_or(usize::MAX).min(9);
        SendLimiter { sent: VecDeque::with_capacity(SEND_LIMIT), periodic, owed: 0 }
    }

    /// Slots commands may not use: the periodic heartbeats plus one reply to op 1.
    fn reserved(&self) -> usize {
        self.periodic + 1
    }

    fn limit(&self, priority: Priority) -> usize {
        match priority {
            Priority::Periodic | Priority::Control => SEND_LIMIT,
            Priority::HeartbeatReply => {
                let periodic_sent = self.sent.iter().filter(|(_, periodic)| *periodic).count();
                SEND_LIMIT - self.periodic.saturating_sub(periodic_sent) - self.owed
            }
            Priority::Command => SEND_LIMIT - self.reserved(),
        }
    }

    fn expire(&mut self, now: Instant) {
        while self.sent.front().is_some_and(|&(t, _)| now.saturating_duration_since(t) >= SEND_WINDOW) {
            self.sent.pop_front();
        }
    }

    /// Whether an Identify is still to be sent on this connection (the
    /// permit wait): heartbeat replies then keep a slot free for it.
    pub(crate) fn owe_identify(&mut self, owed: bool) {
        self.owed = usize::from(owed);
    }

    /// Takes a slot at `now` if `priority` has one left.
    pub(crate) fn try_acquire(&mut self, now: Instant, priority: Priority) -> bool {
        self.expire(now);
        if self.sent.len() < self.limit(priority) {
            self.sent.push_back((now, priority == Priority::Periodic));
            true
        } else {
            false
        }
    }

    /// When `priority` gets its next slot, if none is free among the sends
    /// recorded so far (expired ones count until the next acquire, which only
    /// makes the answer earlier, never later).
    pub(crate) fn next_slot(&self, priority: Priority) -> Option<Instant> {
        let limit = self.limit(priority);
        let index = self.sent.len().checked_sub(limit)?;
        self.sent.get(index).map(|&(t, _)| t + SEND_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_three_slots_at_the_usual_interval() {
        // docs/rate-limits.md#send-limit: ceil(60 / 41.25) + 1 = 3.
        assert_eq!(SendLimiter::new(Duration::from_millis(41_250)).reserved(), 3);
        assert_eq!(SendLimiter::new(Duration::from_millis(100)).reserved(), 10);
    }

    #[test]
    fn commands_stop_at_117_and_control_frames_get_the_rest() {
        let t0 = Instant::now();
        let mut limiter = SendLimiter::new(Duration::from_millis(41_250));
        let commands = (0..200).filter(|_| limiter.try_acquire(t0, Priority::Command)).count();
        assert_eq!(commands, 117);
        let control = (0..10).filter(|_| limiter.try_acquire(t0, Priority::Control)).count();
        assert_eq!(control, 3);
    }

    #[test]
    fn heartbeat_requests_cannot_take_the_periodic_heartbeats_slots() {
        // Fuzz finding: commands plus op 1 replies filled all 120 slots and
        // the next periodic heartbeat was frame 121 (a 4008 close).
        let t0 = Instant::now();
        let mut limiter = SendLimiter::new(Duration::from_millis(41_250));
        let commands = (0..200).filter(|_| limiter.try_acquire(t0, Priority::Command)).count();
        let replies = (0..200).filter(|_| limiter.try_acquire(t0, Priority::HeartbeatReply)).count();
        assert_eq!((commands, replies), (117, 1));
        assert!(limiter.try_acquire(t0, Priority::Periodic));
        assert!(!limiter.try_acquire(t0, Priority::HeartbeatReply), "the last slot is the next periodic beat's");
        assert!(limiter.try_acquire(t0, Priority::Periodic));
        assert!(!limiter.try_acquire(t0, Priority::Periodic), "120 in the window");
    }

    #[test]
    fn heartbeat_requests_leave_room_for_an_identify_still_owed() {
        // Fuzz finding: during a long identify-permit wait, replies filled the
        // window and the late Identify took a periodic heartbeat's slot.
        let t0 = Instant::now();
        let mut limiter = SendLimiter::new(Duration::from_millis(41_250));
        limiter.owe_identify(true);
        assert!(limiter.try_acquire(t0, Priority::Periodic));
        let replies = (0..200).filter(|_| limiter.try_acquire(t0, Priority::HeartbeatReply)).count();
        assert_eq!(replies, 117);
        limiter.owe_identify(false);
        assert!(limiter.try_acquire(t0, Priority::Control), "the Identify");
        assert!(limiter.try_acquire(t0, Priority::Periodic), "the next periodic beat still fits");
        assert!(!limiter.try_acquire(t0, Priority::Periodic));
    }

    #[test]
    fn window_slides_sixty_seconds() {
        let t0 = Instant::now();
        let mut limiter = SendLimiter::new(Duration::from_millis(41_250));
        for i in 0..117u64 {
            assert!(limiter.try_acquire(t0 + Duration::from_millis(i), Priority::Command));
        }
        let at = t0 + Duration::from_secs(1);
        assert!(!limiter.try_acquire(at, Priority::Command));
        assert_eq!(limiter.next_slot(Priority::Command), Some(t0 + SEND_WINDOW));
        assert!(limiter.try_acquire(t0 + SEND_WINDOW, Priority::Command));
        assert!(!limiter.try_acquire(t0 + SEND_WINDOW, Priority::Command));
    }
}
