//! The numbers an identify queue enforces (`docs/rate-limits.md#identify-concurrency`).

use std::time::Duration;

/// Discord's window for one Identify per concurrency bucket
/// (`docs/rate-limits.md#identify-concurrency`).
pub const IDENTIFY_WINDOW: Duration = Duration::from_secs(5);

/// The most concurrency buckets a queue keeps.
const MAX_BUCKETS: u32 = 1 << 16;

/// How long a fresh session-start budget lasts once the old one resets.
pub(crate) const BUDGET_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest window, margin or `reset_after` a queue takes (longer ones
/// are taken as this): Discord's longest period, one day, and far enough
/// from `Instant`'s limits that no sum of them can overflow. The same
/// bound as the configuration's durations (`ConfigError::DurationTooLong`).
pub(crate) const MAX_DURATION: Duration = BUDGET_PERIOD;

/// [`Config::ready_timeout`](crate::Config::ready_timeout)'s default: the
/// longest a shard waits for READY, the base of the default hold cap.
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// `session_start_limit` from `GET /gateway/bot`, as your REST client returned
/// it (`docs/rate-limits.md#daily-session-start-budget`). Deserializes from
/// that JSON object directly.
///
/// ```
/// use discord_gateway_stream::identify::SessionStartLimit;
/// let limit: SessionStartLimit = serde_json::from_str(
///     r#"{"total":1000,"remaining":998,"reset_after":14400000,"max_concurrency":16}"#,
/// ).unwrap();
/// assert_eq!(limit.max_concurrency, 16);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionStartLimit {
    /// Session starts allowed per window (typically 1000).
    pub total: u32,
    /// Session starts left in the current window.
    pub remaining: u32,
    /// Milliseconds until the window resets.
    pub reset_after: u64,
    /// Identifies allowed per 5 s, one per `shard_id % max_concurrency` bucket.
    pub max_concurrency: u32,
}

/// What a queue does when the daily budget is down to its reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnBudgetExhausted {
    /// Refuse with [`IdentifyError::BudgetExhausted`](super::IdentifyError::BudgetExhausted):
    /// the shard stops and reports it (default).
    #[default]
    Fail,
    /// Hold the identify until the budget resets (the shard waits in
    /// `AwaitingIdentifyPermit`, possibly for hours).
    WaitForReset,
}

/// The rules an identify queue enforces: buckets, window and daily budget.
///
/// ```
/// use std::time::Duration;
/// use discord_gateway_stream::identify::{IdentifyLimits, OnBudgetExhausted, SessionStartLimit};
/// let from_rest = SessionStartLimit { total: 1000, remaining: 990, reset_after: 3_600_000, max_concurrency: 16 };
/// let limits = IdentifyLimits::from_session_start_limit(from_rest)
///     .reserve(10)
///     .on_exhausted(OnBudgetExhausted::WaitForReset);
/// assert_eq!(limits.max_concurrency(), 16);
/// assert_eq!(limits.window(), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentifyLimits {
    pub(crate) max_concurrency: u32,
    pub(crate) window: Duration,
    pub(crate) margin: Option<Duration>,
    pub(crate) max_hold: Option<Duration>,
    pub(crate) budget: Option<SessionStartLimit>,
    pub(crate) reserve: u32,
    pub(crate) on_exhausted: OnBudgetExhausted,
}

impl IdentifyLimits {
    /// `max_concurrency` buckets (0 is taken as 1; above 65,536, a value no
    /// bot has, is taken as 65,536 so a malformed REST answer cannot make
    /// the queues allocate billions of buckets), a 5 s window and no daily
    /// budget tracking.
    pub fn new(max_concurrency: u32) -> IdentifyLimits {
        IdentifyLimits {
            max_concurrency: max_concurrency.clamp(1, MAX_BUCKETS),
            window: IDENTIFY_WINDOW,
            margin: None,
            max_hold: None,
            budget: None,
            reserve: 0,
            on_exhausted: OnBudgetExhausted::default(),
        }
    }

    /// Buckets and daily budget from `GET /gateway/bot`.
    pub fn from_session_start_limit(limit: SessionStartLimit) -> IdentifyLimits {
        IdentifyLimits { budget: Some(limit), ..IdentifyLimits::new(limit.max_concurrency) }
    }

    /// The per-bucket window. Discord's is 5 s; shorten it only against a
    /// simulator.
    pub fn window(self) -> Duration {
        self.window
    }

    /// Sets the per-bucket window (tests and benchmarks against the
    /// simulator). Above one day it is taken as one day: nothing of
    /// Discord's is longer, and every `Instant` the queues compute from it
    /// stays far from overflow.
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window.min(MAX_DURATION);
        self
    }

    /// Extra time added to each window so that two Identifies of a bucket
    /// never *arrive* closer than the window: a permit's grant and the
    /// frame's arrival at the gateway are separated by scheduling and network
    /// jitter (default: 2% of the window, 100 ms of Discord's 5 s). Above
    /// one day it is taken as one day, as the window is.
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = Some(margin.min(MAX_DURATION));
        self
    }

    /// The time between two Identifies of one bucket: window plus margin
    /// (two days at most).
    pub fn spacing(self) -> Duration {
        self.window.saturating_add(self.margin.unwrap_or(self.window / 50))
    }

    /// How long a granted permit may hold its bucket waiting for READY
    /// (`docs/rate-limits.md#holding-the-bucket-until-ready`) before the queue
    /// takes the bucket back, counted from the grant. A shard drops its permit
    /// at READY or when the attempt fails, at the latest at its READY timeout;
    /// one whose driver is no longer polled never does, and would block every
    /// later Identify of its bucket without this cap. Past it, the next
    /// Identify of the bucket may go (a warning is logged); the late release of
    /// the old permit is ignored.
    ///
    /// Default: 60 s (the default [`Config::ready_timeout`](crate::Config::ready_timeout))
    /// plus the [`spacing`](Self::spacing), the slack between the grant and
    /// the Identify's send. If your shards wait longer for READY, raise it
    /// to their `ready_timeout` plus the spacing. Above one day it is taken
    /// as one day. [`RedisIdentifyQueue`](super::RedisIdentifyQueue) never
    /// holds a bucket past its lease (one spacing), so it ignores this.
    pub fn with_max_hold(mut self, hold: Duration) -> Self {
        self.max_hold = Some(hold.min(MAX_DURATION));
        self
    }

    /// How long a permit may hold its bucket (see [`with_max_hold`](Self::with_max_hold)).
    pub fn max_hold(self) -> Duration {
        self.max_hold.unwrap_or_else(|| DEFAULT_READY_TIMEOUT.saturating_add(self.spacing()))
    }

    /// The number of concurrency buckets.
    pub fn max_concurrency(self) -> u32 {
        self.max_concurrency
    }

    /// Session starts to keep unused: the queue treats the budget as
    /// exhausted when `remaining <= reserve` (default 0).
    pub fn reserve(mut self, starts: u32) -> Self {
        self.reserve = starts;
        self
    }

    /// What to do when the budget is exhausted (default: fail).
    pub fn on_exhausted(mut self, policy: OnBudgetExhausted) -> Self {
        self.on_exhausted = policy;
        self
    }

    /// The reserve in force: never the whole budget (`total - 1` at most),
    /// since a reserve of all of it would refuse, or wait, forever.
    pub(crate) fn effective_reserve(self) -> u32 {
        match self.budget {
            Some(limit) => self.reserve.min(limit.total.saturating_sub(1)),
            None => self.reserve,
        }
    }

    /// The daily budget this queue tracks, if any.
    pub fn session_start_limit(self) -> Option<SessionStartLimit> {
        self.budget
    }

    /// The budget's `reset_after` as a duration; a malformed one above a
    /// day (Discord's window) is taken as a day.
    pub(crate) fn budget_reset_after(self) -> Option<Duration> {
        self.budget.map(|limit| Duration::from_millis(limit.reset_after).min(MAX_DURATION))
    }

    /// The bucket of `shard_id`: `shard_id % max_concurrency`
    /// (`docs/rate-limits.md#identify-concurrency`).
    pub fn bucket(self, shard_id: u32) -> u32 {
        shard_id % self.max_concurrency
    }
}
