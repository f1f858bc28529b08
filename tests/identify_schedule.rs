//! The identify schedule's rules, with a fake clock (`docs/rate-limits.md#identify-concurrency`),
//! and one real-time check of `LocalIdentifyQueue`.

use std::time::{Duration, Instant};

use discord_gateway_stream::fuzzing::{IdentifySchedule, Reservation, Turn};
use discord_gateway_stream::identify::{
    IdentifyError, IdentifyLimits, IdentifyQueue, LocalIdentifyQueue, OnBudgetExhausted, SessionStartLimit,
};
use discord_gateway_stream::ShardId;

/// Discord's 5 s window plus the default 2% margin against arrival jitter.
const WINDOW: Duration = Duration::from_millis(5100);

fn shard(id: u32) -> ShardId {
    ShardId::new(id, 64).expect("valid shard")
}

/// Runs punctual waiters on a fake clock: each request joins at its time
/// and asks again exactly when told, and its READY comes at once (the
/// permit is released on grant). Returns each request's grant instant.
fn grants(schedule: &mut IdentifySchedule, requests: &[(ShardId, Instant)]) -> Vec<Instant> {
    let mut now = requests.iter().map(|(_, at)| *at).min().expect("requests");
    let mut joined: Vec<Option<Reservation>> = vec![None; requests.len()];
    let mut granted: Vec<Option<Instant>> = vec![None; requests.len()];
    let mut asks: Vec<Instant> = requests.iter().map(|(_, at)| *at).collect();
    while granted.iter().any(Option::is_none) {
        for i in 0..requests.len() {
            if granted[i].is_some() || asks[i] > now {
                continue;
            }
            let reservation = *joined[i].get_or_insert_with(|| schedule.reserve(requests[i].0, now).expect("budget"));
            match schedule.poll_grant(&reservation, now) {
                Turn::Granted => {
                    granted[i] = Some(now);
                    schedule.release(&reservation);
                }
                Turn::Wait(retry) => asks[i] = retry,
                Turn::Refused(error) => panic!("refused: {error}"),
            }
        }
        let next = (0..requests.len()).filter(|i| granted[*i].is_none()).map(|i| asks[i]).min();
        if let Some(next) = next {
            now = now.max(next);
        }
    }
    granted.into_iter().map(|g| g.expect("granted")).collect()
}

fn at_once(ids: std::ops::Range<u32>, t0: Instant) -> Vec<(ShardId, Instant)> {
    ids.map(|id| (shard(id), t0)).collect()
}

fn budget(total: u32, remaining: u32, reset_after: Duration) -> IdentifyLimits {
    IdentifyLimits::from_session_start_limit(SessionStartLimit {
        total,
        remaining,
        reset_after: u64::try_from(reset_after.as_millis()).unwrap(),
        max_concurrency: 1,
    })
}

/// `docs/rate-limits.md#identify-concurrency`: the bucket is
/// `shard_id % max_concurrency`; every bucket may identify at once, and the
/// next round starts one window later.
#[test]
fn buckets_run_in_parallel_and_each_waits_one_window() {
    let t0 = Instant::now();
    let mut schedule = IdentifySchedule::new(IdentifyLimits::new(16), t0);
    let slots: Vec<Duration> = grants(&mut schedule, &at_once(0..48, t0)).iter().map(|at| *at - t0).collect();
    for (id, slot) in slots.iter().enumerate() {
        let round = u32::try_from(id / 16).unwrap();
        assert_eq!(*slot, WINDOW * round, "shard {id}");
    }
}

/// One Identify per bucket per 5 s (`docs/rate-limits.md#identify-concurrency`,
/// `docs/edge-cases.md#identify-collisions`): a late request after an idle
/// bucket goes at once; one inside the window waits for the window's end.
#[test]
fn a_bucket_spaces_identifies_by_the_window_from_the_last_one() {
    let t0 = Instant::now();
    let mut schedule = IdentifySchedule::new(IdentifyLimits::new(2), t0);
    let later = t0 + Duration::from_secs(2);
    let idle = t0 + Duration::from_secs(60);
    let requests = [(shard(0), t0), (shard(2), later), (shard(4), idle), (shard(1), later)];
    // Bucket 1 was never used: shard 1 goes when it asks.
    assert_eq!(grants(&mut schedule, &requests), vec![t0, t0 + WINDOW, idle, later]);
}

/// A custom window (simulator tests and the 1,000-shard benchmark).
#[test]
fn the_window_is_configurable() {
    let t0 = Instant::now();
    let window = Duration::from_millis(50);
    let limits = IdentifyLimits::new(1).with_window(window).with_margin(Duration::ZERO);
    assert_eq!(IdentifyLimits::new(1).with_window(window).spacing(), Duration::from_millis(51));
    let mut schedule = IdentifySchedule::new(limits, t0);
    assert_eq!(grants(&mut schedule, &at_once(0..3, t0)), vec![t0, t0 + window, t0 + window * 2]);
}

/// `docs/rate-limits.md#daily-session-start-budget`: the crate refuses to
/// identify when the budget is gone, instead of spending it (which resets the token).
#[test]
fn an_exhausted_budget_fails_with_the_time_to_reset() {
    let t0 = Instant::now();
    let mut schedule = IdentifySchedule::new(budget(1000, 2, Duration::from_secs(3600)), t0);
    grants(&mut schedule, &at_once(0..2, t0));
    assert_eq!(schedule.remaining(t0), Some(0));
    let at = t0 + Duration::from_secs(600);
    assert_eq!(
        schedule.reserve(shard(2), at),
        Err(IdentifyError::BudgetExhausted { remaining: 0, reserve: 0, reset_after: Duration::from_secs(3000) })
    );
}

/// A start is counted when granted, not when queued: a line longer than
/// the budget is refused at the head, once the budget is spent.
#[test]
fn the_budget_is_spent_at_grant_and_the_head_is_refused_when_it_runs_out() {
    let t0 = Instant::now();
    let mut schedule = IdentifySchedule::new(budget(1000, 1, Duration::from_secs(3600)), t0);
    let first = schedule.reserve(shard(0), t0).unwrap();
    let second = schedule.reserve(shard(1), t0).unwrap();
    assert_eq!(schedule.remaining(t0), Some(1), "queued starts are not counted");
    assert_eq!(schedule.poll_grant(&first, t0), Turn::Granted);
    schedule.release(&first);
    assert!(
        matches!(schedule.poll_grant(&second, t0 + WINDOW), Turn::Refused(IdentifyError::BudgetExhausted { .. })),
        "refused at its turn"
    );
    // It left the line: a later request is not stuck behind it.
    let later = t0 + Duration::from_secs(3601);
    assert_eq!(grants(&mut schedule, &[(shard(2), later)]), vec![later]);
}

/// Regression: starts granted after a reset count in the new window,
/// never more than `total` in any window (over the cap resets the token).
#[test]
fn no_window_grants_more_than_total_starts() {
    let t0 = Instant::now();
    let limits = IdentifyLimits::from_session_start_limit(SessionStartLimit {
        total: 3,
        remaining: 3,
        reset_after: 12_000,
        max_concurrency: 1,
    })
    .on_exhausted(OnBudgetExhausted::WaitForReset);
    let mut schedule = IdentifySchedule::new(limits, t0);
    let granted = grants(&mut schedule, &at_once(0..8, t0));
    let reset = t0 + Duration::from_secs(12);
    let day = Duration::from_secs(24 * 60 * 60);
    let in_window = |from: Instant, to: Instant| granted.iter().filter(|at| **at >= from && **at < to).count();
    assert_eq!(in_window(t0, reset), 3);
    assert_eq!(in_window(reset, reset + day), 3);
    assert_eq!(in_window(reset + day, reset + day * 2), 2);
}

/// A reserve keeps starts back for emergencies: "low" counts as exhausted.
#[test]
fn the_reserve_is_never_spent() {
    let t0 = Instant::now();
    let mut schedule = IdentifySchedule::new(budget(1000, 5, Duration::from_secs(60)).reserve(3), t0);
    grants(&mut schedule, &at_once(0..2, t0));
    let refused = schedule.reserve(shard(2), t0);
    assert!(matches!(refused, Err(IdentifyError::BudgetExhausted { remaining: 3, reserve: 3, .. })), "{refused:?}");
}

/// With `WaitForReset`, an identify past the budget is scheduled at the
/// reset, and so is every later one, even in another bucket.
#[test]
fn waiting_for_the_reset_schedules_after_it() {
    let t0 = Instant::now();
    let reset = Duration::from_secs(3600);
    let limits = IdentifyLimits::from_session_start_limit(SessionStartLimit {
        total: 1000,
        remaining: 1,
        reset_after: 3_600_000,
        max_concurrency: 4,
    })
    .on_exhausted(OnBudgetExhausted::WaitForReset);
    let mut schedule = IdentifySchedule::new(limits, t0);
    let requests = [(shard(0), t0), (shard(1), t0), (shard(2), t0), (shard(5), t0)];
    assert_eq!(grants(&mut schedule, &requests), vec![t0, t0 + reset, t0 + reset, t0 + reset + WINDOW]);
}

/// After `reset_after`, the budget is `total` again.
#[test]
fn the_budget_refills_after_reset_after() {
    let t0 = Instant::now();
    let mut schedule = IdentifySchedule::new(budget(10, 0, Duration::from_secs(30)), t0);
    assert!(schedule.reserve(shard(0), t0).is_err());
    let after = t0 + Duration::from_secs(31);
    assert_eq!(schedule.remaining(after), Some(10));
    assert_eq!(grants(&mut schedule, &[(shard(0), after)]), vec![after]);
    assert_eq!(schedule.remaining(after), Some(9));
}

/// A withdrawn request (the connection dropped while it waited) leaves the
/// line, so the one behind it moves up, and spends no session start.
#[test]
fn a_cancelled_reservation_gives_back_its_place_and_spends_nothing() {
    let t0 = Instant::now();
    let mut schedule = IdentifySchedule::new(budget(100, 100, Duration::from_secs(60)), t0);
    let first = schedule.reserve(shard(0), t0).unwrap();
    let second = schedule.reserve(shard(1), t0).unwrap();
    let third = schedule.reserve(shard(2), t0).unwrap();
    assert_eq!(schedule.remaining(t0), Some(100), "counted at grant");
    assert_eq!(schedule.poll_grant(&first, t0), Turn::Granted);
    schedule.release(&first);
    // One is ahead, but a waiter re-asks within one spacing, so it moves up
    // without delay if the one ahead withdraws.
    assert_eq!(schedule.poll_grant(&third, t0), Turn::Wait(t0 + WINDOW));
    schedule.cancel(&second);
    assert_eq!(schedule.remaining(t0), Some(99), "only the grant counted");
    assert_eq!(schedule.poll_grant(&third, t0 + WINDOW), Turn::Granted, "moved up to the next turn");
}

/// The spacing counts from the grant, not the plan: a shard late to take
/// its turn (a busy executor) pushes the next one back, so Identifies never
/// arrive closer than the window (`docs/edge-cases.md#identify-collisions`).
#[test]
fn a_late_grant_pushes_the_next_turn_back() {
    let t0 = Instant::now();
    let mut schedule = IdentifySchedule::new(IdentifyLimits::new(1), t0);
    let first = schedule.reserve(shard(0), t0).unwrap();
    let second = schedule.reserve(shard(1), t0).unwrap();
    let late = t0 + Duration::from_millis(700);
    assert_eq!(schedule.poll_grant(&second, t0), Turn::Wait(t0 + WINDOW), "not its turn yet");
    assert_eq!(schedule.poll_grant(&first, late), Turn::Granted);
    schedule.release(&first);
    assert_eq!(schedule.poll_grant(&second, t0 + WINDOW), Turn::Wait(late + WINDOW));
    assert_eq!(schedule.poll_grant(&second, late + WINDOW), Turn::Granted);
}

/// `max_concurrency` 0 (a bad REST answer) is one bucket, never a panic.
#[test]
fn zero_max_concurrency_is_one_bucket() {
    let t0 = Instant::now();
    let mut schedule = IdentifySchedule::new(IdentifyLimits::new(0), t0);
    assert_eq!(grants(&mut schedule, &at_once(7..9, t0)), vec![t0, t0 + WINDOW]);
}

/// `docs/rate-limits.md#holding-the-bucket-until-ready`: the bucket is held until the
/// previous Identify's READY (or failure), even past the window; the next one
/// then goes at once.
#[test]
fn a_bucket_waits_for_the_previous_ready_even_past_the_window() {
    let t0 = Instant::now();
    let mut schedule = IdentifySchedule::new(IdentifyLimits::new(1), t0);
    let first = schedule.reserve(shard(0), t0).unwrap();
    let second = schedule.reserve(shard(1), t0).unwrap();
    assert_eq!(schedule.poll_grant(&first, t0), Turn::Granted);
    // The window has passed, READY has not come: ask again a little later.
    assert_eq!(schedule.poll_grant(&second, t0 + WINDOW), Turn::Wait(t0 + WINDOW + WINDOW / 20));
    let ready = t0 + Duration::from_secs(7);
    schedule.release(&first);
    assert_eq!(schedule.poll_grant(&second, ready), Turn::Granted);
}

/// A READY that comes within the window changes nothing: the window
/// still spaces the next Identify.
#[test]
fn an_early_ready_does_not_shorten_the_window() {
    let t0 = Instant::now();
    let mut schedule = IdentifySchedule::new(IdentifyLimits::new(1), t0);
    let first = schedule.reserve(shard(0), t0).unwrap();
    let second = schedule.reserve(shard(1), t0).unwrap();
    assert_eq!(schedule.poll_grant(&first, t0), Turn::Granted);
    schedule.release(&first);
    let soon = t0 + Duration::from_secs(1);
    assert_eq!(schedule.poll_grant(&second, soon), Turn::Wait(t0 + WINDOW));
    assert_eq!(schedule.poll_grant(&second, t0 + WINDOW), Turn::Granted);
}

/// Regression: a reserve of the whole budget (or a budget of 0) never
/// underflows and never pushes each shard a day further than the last.
#[test]
fn a_reserve_of_the_whole_budget_keeps_one_start_per_window() {
    let t0 = Instant::now();
    let limits = IdentifyLimits::from_session_start_limit(SessionStartLimit {
        total: 2,
        remaining: 2,
        reset_after: 1_000,
        max_concurrency: 4,
    })
    .reserve(5)
    .on_exhausted(OnBudgetExhausted::WaitForReset);
    let mut schedule = IdentifySchedule::new(limits, t0);
    let granted = grants(&mut schedule, &at_once(0..3, t0));
    let day = Duration::from_secs(24 * 60 * 60);
    let reset = t0 + Duration::from_secs(1);
    assert_eq!(granted, vec![t0, reset, reset + day]);

    let zero = IdentifyLimits::from_session_start_limit(SessionStartLimit {
        total: 0,
        remaining: 0,
        reset_after: 1_000,
        max_concurrency: 1,
    });
    let mut schedule = IdentifySchedule::new(zero, t0);
    assert!(matches!(schedule.reserve(shard(0), t0), Err(IdentifyError::BudgetExhausted { .. })));
}

/// A malformed `max_concurrency` (u32::MAX) is capped, never an attempt to
/// allocate billions of buckets.
#[test]
fn an_absurd_max_concurrency_is_capped() {
    let limits = IdentifyLimits::new(u32::MAX);
    assert_eq!(limits.max_concurrency(), 65_536);
    let t0 = Instant::now();
    let mut schedule = IdentifySchedule::new(limits, t0);
    assert_eq!(grants(&mut schedule, &at_once(0..2, t0)), vec![t0, t0]);
}

/// Issue 12.11: windows, margins and a `reset_after` too long for `Instant`
/// arithmetic are taken as one day each (Discord's longest period), never
/// a panic, and the schedule keeps working with them.
#[test]
fn huge_durations_are_capped_at_a_day_never_an_overflow() {
    let day = Duration::from_secs(24 * 60 * 60);
    let huge = IdentifyLimits::new(1).with_window(Duration::MAX);
    assert_eq!(huge.window(), day);
    assert_eq!(huge.spacing(), day + day / 50, "the default margin, 2% of the capped window");
    let huge = huge.with_margin(Duration::MAX);
    assert_eq!(huge.spacing(), day * 2);

    let t0 = Instant::now();
    let mut schedule = IdentifySchedule::new(huge, t0);
    // A long line: each estimate adds one spacing per waiter ahead.
    let line: Vec<Reservation> = (0..64).map(|id| schedule.reserve(shard(id), t0).expect("no budget")).collect();
    assert_eq!(schedule.poll_grant(&line[63], t0), Turn::Wait(t0 + day * 2), "one spacing away at most");
    assert_eq!(schedule.poll_grant(&line[0], t0), Turn::Granted);
    schedule.release(&line[0]);
    assert_eq!(schedule.poll_grant(&line[1], t0 + day), Turn::Wait(t0 + day * 2));
    assert_eq!(schedule.poll_grant(&line[1], t0 + day * 2), Turn::Granted);

    // A malformed `reset_after` (u64::MAX ms): the budget refills after a day.
    let limits = IdentifyLimits::from_session_start_limit(SessionStartLimit {
        total: 10,
        remaining: 0,
        reset_after: u64::MAX,
        max_concurrency: 1,
    })
    .with_window(Duration::MAX)
    .with_margin(Duration::MAX)
    .on_exhausted(OnBudgetExhausted::WaitForReset);
    let mut schedule = IdentifySchedule::new(limits, t0);
    let waiting = schedule.reserve(shard(0), t0).expect("waits for the reset");
    assert_eq!(schedule.poll_grant(&waiting, t0), Turn::Wait(t0 + day));
    assert_eq!(schedule.remaining(t0 + day), Some(10));
    assert_eq!(schedule.poll_grant(&waiting, t0 + day), Turn::Granted);
}

/// Issue 12.6: a permit never released (its shard's driver is no longer
/// polled) holds its bucket for `max_hold` at most, by default the default
/// READY timeout (60 s) plus the spacing; then the next Identify goes, and
/// the old permit's late release does not free the new holder's bucket.
#[test]
fn a_permit_never_released_holds_its_bucket_for_max_hold_at_most() {
    let t0 = Instant::now();
    let limits = IdentifyLimits::new(1);
    let hold = Duration::from_secs(60) + WINDOW;
    assert_eq!(limits.max_hold(), hold);
    let mut schedule = IdentifySchedule::new(limits, t0);
    let stuck = schedule.reserve(shard(0), t0).unwrap();
    let next = schedule.reserve(shard(1), t0).unwrap();
    let last = schedule.reserve(shard(2), t0).unwrap();
    assert_eq!(schedule.poll_grant(&stuck, t0), Turn::Granted);
    // Never released. Past the window the bucket is still held...
    assert_eq!(schedule.poll_grant(&next, t0 + WINDOW), Turn::Wait(t0 + WINDOW + WINDOW / 20));
    // ...and the head is told to ask again exactly when the hold ends.
    let almost = t0 + hold - Duration::from_millis(10);
    assert_eq!(schedule.poll_grant(&next, almost), Turn::Wait(t0 + hold));
    assert_eq!(schedule.poll_grant(&next, t0 + hold), Turn::Granted);
    // The stuck shard's permit is dropped at last: the new holder keeps the bucket.
    schedule.release(&stuck);
    let after = t0 + hold + WINDOW;
    assert_eq!(schedule.poll_grant(&last, after), Turn::Wait(after + WINDOW / 20));
    schedule.release(&next);
    assert_eq!(schedule.poll_grant(&last, after), Turn::Granted);
}

/// Issue 12.6: the hold cap is configurable; a shorter one than the
/// window changes nothing (the window still spaces Identifies).
#[test]
fn the_hold_cap_is_configurable() {
    let t0 = Instant::now();
    let hold = Duration::from_secs(12);
    let limits = IdentifyLimits::new(1).with_max_hold(hold);
    assert_eq!(limits.max_hold(), hold);
    assert_eq!(IdentifyLimits::new(1).with_max_hold(Duration::MAX).max_hold(), Duration::from_secs(86_400));
    let mut schedule = IdentifySchedule::new(limits, t0);
    let stuck = schedule.reserve(shard(0), t0).unwrap();
    let next = schedule.reserve(shard(1), t0).unwrap();
    assert_eq!(schedule.poll_grant(&stuck, t0), Turn::Granted);
    assert!(matches!(schedule.poll_grant(&next, t0 + hold - Duration::from_millis(1)), Turn::Wait(_)));
    assert_eq!(schedule.poll_grant(&next, t0 + hold), Turn::Granted);

    let mut schedule = IdentifySchedule::new(IdentifyLimits::new(1).with_max_hold(Duration::ZERO), t0);
    let first = schedule.reserve(shard(0), t0).unwrap();
    let second = schedule.reserve(shard(1), t0).unwrap();
    assert_eq!(schedule.poll_grant(&first, t0), Turn::Granted);
    assert_eq!(schedule.poll_grant(&second, t0 + Duration::from_secs(1)), Turn::Wait(t0 + WINDOW));
    assert_eq!(schedule.poll_grant(&second, t0 + WINDOW), Turn::Granted);
}

/// Issue 12.6, in real time: `LocalIdentifyQueue` grants the next Identify
/// of a bucket whose permit is still alive (never dropped) once the hold
/// cap has passed.
#[tokio::test]
async fn the_local_queue_moves_on_from_a_permit_held_past_the_cap() {
    let window = Duration::from_millis(50);
    let hold = Duration::from_millis(300);
    let queue = LocalIdentifyQueue::new(IdentifyLimits::new(1).with_window(window).with_max_hold(hold));
    let start = Instant::now();
    let held = queue.acquire(shard(0)).await.expect("first permit");
    let next = tokio::time::timeout(Duration::from_secs(10), queue.acquire(shard(1))).await;
    let waited = start.elapsed();
    assert!(next.is_ok_and(|permit| permit.is_ok()), "granted while the first permit is alive");
    assert!(waited >= hold && waited < hold + Duration::from_millis(700), "granted when the hold ended: {waited:?}");
    drop(held);
}
