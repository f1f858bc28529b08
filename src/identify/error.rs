//! Why an identify permit was refused.

use std::time::Duration;

/// Why a shard may not identify. Final for the shard that gets it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentifyError {
    /// The daily session-start budget is at its reserve
    /// (`docs/rate-limits.md#daily-session-start-budget`: running out resets
    /// the bot token); identifies are refused until it resets.
    #[error(
        "daily session start budget exhausted ({remaining} left, {reserve} kept in reserve); it resets in {reset_after:?}"
    )]
    BudgetExhausted {
        /// Session starts left in the window.
        remaining: u32,
        /// Starts the queue keeps unused (see [`IdentifyLimits::reserve`](super::IdentifyLimits::reserve)).
        reserve: u32,
        /// Time until the budget resets.
        reset_after: Duration,
    },
    /// The shared coordinator failed and the queue gave up.
    #[error("identify queue backend failed: {0}")]
    Backend(String),
}
