//! The token a shard holds from the grant until its Identify's outcome.

use std::fmt;

/// Permission to send one Identify, from [`IdentifyQueue::acquire`](super::IdentifyQueue::acquire).
///
/// The shard keeps it until READY arrives or the attempt fails (op 9, a lost
/// connection, the READY timeout), then drops it; dropping runs the queue's
/// release, so the bucket can be held until READY
/// (`docs/rate-limits.md#holding-the-bucket-until-ready`). A queue may take the
/// bucket back from a permit held too long
/// ([`IdentifyLimits::with_max_hold`](super::IdentifyLimits::with_max_hold)).
#[must_use = "dropping the permit releases the bucket at once"]
pub struct IdentifyPermit {
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl IdentifyPermit {
    /// A permit with nothing to release (the queue spaces Identifies by
    /// time alone).
    pub fn new() -> IdentifyPermit {
        IdentifyPermit { release: None }
    }

    /// A permit that runs `release` when dropped.
    pub fn on_release(release: impl FnOnce() + Send + 'static) -> IdentifyPermit {
        IdentifyPermit { release: Some(Box::new(release)) }
    }
}

impl Default for IdentifyPermit {
    fn default() -> Self {
        IdentifyPermit::new()
    }
}

impl Drop for IdentifyPermit {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

impl fmt::Debug for IdentifyPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentifyPermit").field("holds", &self.release.is_some()).finish()
    }
}
