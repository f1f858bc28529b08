//! The raw opcode-0 payload handed to the application.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_tungstenite::tungstenite::Utf8Bytes;
use futures_util::task::AtomicWaker;

use crate::shard_id::ShardId;

/// About how much of tungstenite's read buffer a kept frame pins beyond its
/// own bytes: the part of the allocation before it (already read) and the
/// tail after it (still being read into). Both come from the buffer's size
/// before the frame: 16 KiB after a kept frame, more after copied frames
/// of up to 64 KiB grew it, so this is an estimate for the byte bound of
/// `Config::max_buffered`, not a limit (a grown buffer can leave more).
const KEPT_FRAME_SLACK: usize = 128 * 1024;

/// The payload text a dispatch owns; equal when the text is, however held.
#[derive(Clone)]
pub(crate) enum FrameText {
    /// Its own exact-size allocation: an inflated payload, or a small
    /// uncompressed one copied out of the WebSocket read buffer.
    Owned(String),
    /// The WebSocket frame's own bytes (a large uncompressed payload): no
    /// copy; the read buffer starts a new allocation for what follows.
    Frame(KeptFrame),
}

/// A WebSocket frame's bytes that a dispatch keeps, and the driver to wake
/// when a copy of it is dropped: the driver holds the frame too (see
/// `Driver::held_frame`) and lets go once nothing else refers to its
/// allocation, which only a wake lets it see.
#[derive(Clone)]
pub(crate) struct KeptFrame {
    text: Utf8Bytes,
    dropped: Arc<AtomicWaker>,
}

impl KeptFrame {
    pub(crate) fn new(text: Utf8Bytes, dropped: Arc<AtomicWaker>) -> KeptFrame {
        KeptFrame { text, dropped }
    }
}

impl Drop for KeptFrame {
    fn drop(&mut self) {
        // The bytes go first: a driver woken while this copy still counted
        // would find its hold shared, and wait for a wake that never comes.
        drop(std::mem::take(&mut self.text));
        self.dropped.wake();
    }
}

impl FrameText {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            FrameText::Owned(text) => text,
            FrameText::Frame(frame) => frame.text.as_str(),
        }
    }

    /// Heap bytes it keeps alive, at most: a kept frame also pins the part
    /// of tungstenite's read buffer around it ([`KEPT_FRAME_SLACK`]).
    fn heap_size(&self) -> usize {
        match self {
            FrameText::Owned(text) => text.capacity(),
            FrameText::Frame(frame) => frame.text.len().saturating_add(KEPT_FRAME_SLACK),
        }
    }
}

impl PartialEq for FrameText {
    fn eq(&self, other: &FrameText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for FrameText {}

impl From<String> for FrameText {
    fn from(text: String) -> FrameText {
        FrameText::Owned(text)
    }
}

/// Where the event name lives: inside the frame, or decoded when `t` had escapes.
#[derive(Clone, PartialEq, Eq)]
enum EventName {
    InFrame(Range<usize>),
    Decoded(Box<str>),
}

/// One opcode-0 dispatch exactly as the gateway sent it.
///
/// It owns the payload text and the positions of `t` and `d` inside it;
/// nothing is re-encoded or parsed into a tree. A compressed payload is
/// copied once, exact-size, out of the decompressor's working buffer. An
/// uncompressed payload of 64 KiB or more is the WebSocket frame's own
/// bytes (no copy: the read buffer starts a new allocation once it has read
/// past the frame's); a smaller one is copied once into an exact-size allocation,
/// because keeping a small frame would pin the whole read buffer it shares
/// with its neighbours, and keeping every frame was measured slower
/// (benches/README.md, *Keeping tungstenite's frame bytes*).
#[derive(Clone, PartialEq, Eq)]
pub struct Dispatch {
    shard: ShardId,
    seq: u64,
    frame: FrameText,
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
        frame: FrameText,
        event: Result<Range<usize>, Box<str>>,
        data: Range<usize>,
    ) -> Dispatch {
        let text = frame.as_str();
        let event = match event {
            Ok(range) if text.get(range.clone()).is_some() => EventName::InFrame(range),
            Ok(_) => EventName::Decoded(Box::from("")),
            Err(decoded) => EventName::Decoded(decoded),
        };
        let data = if text.get(data.clone()).is_some() { data } else { 0..0 };
        Dispatch { shard, seq, frame, event, data }
    }

    /// Heap bytes this dispatch keeps alive (the driver's buffer limit counts them).
    pub(crate) fn heap_size(&self) -> usize {
        self.frame.heap_size()
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
            EventName::InFrame(range) => self.frame.as_str().get(range.clone()).unwrap_or_default(),
            EventName::Decoded(name) => name,
        }
    }

    /// The raw JSON text of `d`, byte for byte as received.
    pub fn data(&self) -> &str {
        self.frame.as_str().get(self.data.clone()).unwrap_or_default()
    }

    /// The whole payload text (`{"t":…,"s":…,"op":0,"d":…}`) as received.
    pub fn frame(&self) -> &str {
        self.frame.as_str()
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
        Dispatch::new(ShardId::ONE, 7, String::from(frame).into(), Ok(6..20), 39..frame.len() - 1)
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

    /// A dispatch that keeps the WebSocket frame's bytes reads exactly as
    /// one that owns a copy, and compares equal to it.
    #[test]
    fn a_kept_frame_reads_as_an_owned_copy() {
        let frame = r#"{"t":"GUILD_CREATE","s":9,"op":0,"d":{"id":"1","name":"g"}}"#;
        let dropped = Arc::new(AtomicWaker::new());
        let kept_frame = KeptFrame::new(frame.into(), Arc::clone(&dropped));
        let kept = Dispatch::new(ShardId::ONE, 9, FrameText::Frame(kept_frame), Ok(6..18), 37..frame.len() - 1);
        let owned = Dispatch::new(ShardId::ONE, 9, String::from(frame).into(), Ok(6..18), 37..frame.len() - 1);
        assert_eq!((kept.event(), kept.data(), kept.frame()), ("GUILD_CREATE", r#"{"id":"1","name":"g"}"#, frame));
        assert_eq!(kept.heap_size(), frame.len() + KEPT_FRAME_SLACK);
        assert_eq!(kept, owned, "equal whether the text is kept or copied");
        let value: serde_json::Value = kept.deserialize().expect("valid d");
        assert_eq!(value["name"], "g");
        #[allow(clippy::reversed_empty_ranges)]
        let clamped =
            Dispatch::new(ShardId::ONE, 1, FrameText::Frame(KeptFrame::new("{}".into(), dropped)), Ok(5..9), 3..1);
        assert_eq!((clamped.event(), clamped.data()), ("", ""));
    }

    /// Dropping a copy of a kept frame wakes the driver that holds it too,
    /// and by then the copy no longer counts: the driver's hold is unique
    /// when it looks.
    #[test]
    fn dropping_a_kept_frame_wakes_the_driver_once_its_bytes_are_gone() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Mutex;
        type Bytes = async_tungstenite::tungstenite::Bytes;
        struct Driver {
            hold: Mutex<Option<Bytes>>,
            unique_when_woken: AtomicUsize,
        }
        impl futures_util::task::ArcWake for Driver {
            fn wake_by_ref(this: &Arc<Self>) {
                let hold = this.hold.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if hold.as_ref().is_some_and(Bytes::is_unique) {
                    this.unique_when_woken.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        let frame: Utf8Bytes = r#"{"t":"X","s":1,"op":0,"d":{}}"#.to_owned().into();
        let driver =
            Arc::new(Driver { hold: Mutex::new(Some(Bytes::from(frame.clone()))), unique_when_woken: 0.into() });
        let dropped = Arc::new(AtomicWaker::new());
        dropped.register(&futures_util::task::waker(Arc::clone(&driver)));
        let kept = Dispatch::new(
            ShardId::ONE,
            1,
            FrameText::Frame(KeptFrame::new(frame, Arc::clone(&dropped))),
            Ok(6..7),
            27..29,
        );
        assert_eq!(driver.unique_when_woken.load(Ordering::SeqCst), 0);
        drop(kept);
        assert_eq!(driver.unique_when_woken.load(Ordering::SeqCst), 1, "woken, and the hold was the last reference");
    }

    #[test]
    fn out_of_range_spans_never_panic() {
        #[allow(clippy::reversed_empty_ranges)]
        let d = Dispatch::new(ShardId::ONE, 1, String::from("{}").into(), Ok(5..9), 3..1);
        assert_eq!((d.event(), d.data()), ("", ""));
    }
}
