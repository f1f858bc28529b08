//! zlib-stream inflater (gateway-protocol §8.1, E17).
//!
//! CONTRACT (implemented by the codec work; keep these signatures):
//! - one instance per shard, [`Inflater::reset`] on every new connection;
//! - [`Inflater::push`] takes one binary WebSocket message; it returns
//!   `Ok(Some(payload))` when the accumulated compressed input ends with
//!   `00 00 ff ff` (the marker may straddle messages), `Ok(None)` otherwise;
//! - the payload slice borrows an internal buffer reused across payloads
//!   (allocation-free in steady state; shrunk back after an unusually big one);
//! - corrupt data, or a payload inflating past `max_message_size`, is an `Err`
//!   and leaves the inflater unusable until `reset`.

/// Why a zlib-stream could not be inflated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InflateError {
    /// Placeholder until the inflater lands.
    #[error("corrupt zlib stream")]
    Corrupt,
}

/// The zlib-stream inflate context of one connection.
#[derive(Debug)]
pub struct Inflater {
    max_message_size: usize,
}

impl Inflater {
    /// A fresh inflater whose payloads may inflate to at most `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        Inflater { max_message_size }
    }

    /// Forgets all stream state: call on every new connection.
    pub fn reset(&mut self) {}

    /// The configured cap on one inflated payload.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Feeds one binary WebSocket message.
    pub fn push(&mut self, _message: &[u8]) -> Result<Option<&[u8]>, InflateError> {
        Err(InflateError::Corrupt)
    }
}
