//! The raw opcode-0 payload handed to the application.

use std::fmt;
use std::ops::Range;

use crate::shard_id::ShardId;

/// Where the event name lives: inside the frame, or decoded when `t` had escapes.
#[derive(Clone, PartialEq, Eq)]
enum EventName {
    InFrame(Range<usize>),
    Decoded(Box<str>),
}

/// One opcode-0 dispatch exactly as the gateway sent it.
///
/// It owns the payload text and the positions of `t` and `d` inside it;
/// nothing is re-encoded or parsed into a tree. An inflated payload is the
/// buffer it was inflated into (one allocation, no copy); an uncompressed
/// one is copied once out of the WebSocket read buffer into an exact-size
/// allocation of its own. (Keeping the read buffer's own bytes instead was
/// measured slower on `benches/compare`, 0.5-0.7× for every frame and still
/// 0.65× when only frames of 64 KiB or more were kept: every kept frame
/// makes the WebSocket library allocate and zero fresh, page-faulting
/// memory for its next reads, and a small kept frame can pin a large read
/// buffer.)
#[derive(Clone, PartialEq, Eq)]
pub struct Dispatch {
    shard: ShardId,
    seq: u64,
    frame: String,
    event: EventName,
    data: Range<usize>,
}

/// Why [`Dispatch::deserialize`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeserializeError {
    /// serde_json rejected `d` for the requested type.
    #[error("`d` does not deserialize into the requested type: {0}")]
    Json(#[from] serde_json::Error),
    /// simd-json rejected `d` for the requested type.
    #[cfg(feature = "simd-json")]
    #[error("`d` does not deserialize into the requested type: {0}")]
    SimdJson(#[from] simd_json::Error),
}

impl Dispatch {
    /// Builds a dispatch from a scanned payload.
    ///
    /// `event` is the byte range of `t`'s contents (or its decoded text when it
    /// had escapes); `data` the byte range of `d`. Ranges outside `frame` or
    /// not on character boundaries are clamped to an empty `d` / event name.
    pub(crate) fn new(
        shard: ShardId,
        seq: u64,
        frame: String,
        event: Result<Range<usize>, Box<str>>,
        data: Range<usize>,
    ) -> Dispatch {
        let event = match event {
            Ok(range) if frame.get(range.clone()).is_some() => EventName::InFrame(range),
            Ok(_) => EventName::Decoded(Box::from("")),
            Err(decoded) => EventName::Decoded(decoded),
        };
        let data = if frame.get(data.clone()).is_some() { data } else { 0..0 };
        Dispatch { shard, seq, frame, event, data }
    }

    /// Heap bytes this dispatch keeps alive (the driver's buffer limit counts them).
    pub(crate) fn heap_size(&self) -> usize {
        self.frame.capacity()
    }

    /// The shard this dispatch arrived on.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// The sequence number `s`; it only grows within a session
    /// (`docs/connection.md#replay-and-duplicates`).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The event name `t`, e.g. `MESSAGE_CREATE`.
    pub fn event(&self) -> &str {
        match &self.event {
            EventName::InFrame(range) => self.frame.get(range.clone()).unwrap_or_default(),
            EventName::Decoded(name) => name,
        }
    }

    /// The raw JSON text of `d`, byte for byte as received.
    pub fn data(&self) -> &str {
        self.frame.get(self.data.clone()).unwrap_or_default()
    }

    /// The whole payload text (`{"t":…,"s":…,"op":0,"d":…}`) as received.
    pub fn frame(&self) -> &str {
        &self.frame
    }

    /// Deserializes `d` into your own type.
    ///
    /// Uses serde_json, or simd-json with the `simd-json` feature (which parses
    /// a private copy, since simd-json rewrites its input). For zero-copy
    /// borrowing, call `serde_json::from_str(dispatch.data())` yourself.
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, DeserializeError> {
        #[cfg(feature = "simd-json")]
        {
            let mut copy = self.data().as_bytes().to_vec();
            Ok(simd_json::serde::from_slice(&mut copy)?)
        }
        #[cfg(not(feature = "simd-json"))]
        {
            Ok(serde_json::from_str(self.data())?)
        }
    }
}

impl fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatch")
            .field("shard", &self.shard)
            .field("seq", &self.seq)
            .field("event", &self.event())
            .field("data_len", &self.data.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Dispatch {
        let frame = r#"{"t":"MESSAGE_CREATE","s":7,"op":0,"d":{"id":"1","content":"hi"}}"#;
        Dispatch::new(ShardId::ONE, 7, frame.into(), Ok(6..20), 39..frame.len() - 1)
    }

    #[test]
    fn accessors_return_the_untouched_bytes() {
        let d = sample();
        assert_eq!(d.event(), "MESSAGE_CREATE");
        assert_eq!(d.seq(), 7);
        assert_eq!(d.data(), r#"{"id":"1","content":"hi"}"#);
        assert!(d.frame().starts_with(r#"{"t":"MESSAGE_CREATE""#));
        assert_eq!(d.shard(), ShardId::ONE);
    }

    #[test]
    fn deserialize_into_a_user_type() {
        #[derive(serde::Deserialize)]
        struct Msg {
            id: String,
            content: String,
        }
        let msg: Msg = sample().deserialize().expect("valid d");
        assert_eq!((msg.id.as_str(), msg.content.as_str()), ("1", "hi"));
        assert!(sample().deserialize::<u64>().is_err());
    }

    #[test]
    fn out_of_range_spans_never_panic() {
        #[allow(clippy::reversed_empty_ranges)]
        let d = Dispatch::new(ShardId::ONE, 1, "{}".into(), Ok(5..9), 3..1);
        assert_eq!((d.event(), d.data()), ("", ""));
    }
}
