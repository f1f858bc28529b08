//! The replayed traffic: two payload mixes from `fuzz/payloads.rs`, repeated
//! with increasing `s`, turned into ready-to-write WebSocket frames.

use std::time::Instant;

use discord_gateway_stream::fuzzing::Envelope;
use flate2::{Compress, Compression, FlushCompress};
use twilight_model::gateway::payload::incoming::MessageCreate;

use crate::compression::Codec;
use crate::payloads;
use crate::wire::{push_frame, ZstdStream};

/// Which payload mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixKind {
    /// `gateway_mix(1, 8, 2000)`: eight 0.1–1.5 MB GUILD_CREATEs then 2,000
    /// MESSAGE_CREATE / TYPING_START / PRESENCE_UPDATE events (op 11 every 100).
    Realistic,
    /// `gateway_mix(2, 0, 3000)` without any payload over 2 KB.
    Small,
}

impl MixKind {
    pub fn name(self) -> &'static str {
        match self {
            MixKind::Realistic => "realistic",
            MixKind::Small => "small",
        }
    }
}

/// One copy of a mix (no Hello/READY: the server sends its own).
pub struct Mix {
    pub kind: MixKind,
    pub texts: Vec<String>,
    /// Per text: for a MESSAGE_CREATE, the byte length of its `content` as
    /// twilight-model decodes it (what the typed consumers count).
    content_lens: Vec<Option<u64>>,
    pub copies: usize,
}

pub const HELLO: &str = r#"{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250}}"#;
pub const ACK: &str = r#"{"t":null,"s":null,"op":11,"d":null}"#;
/// Heartbeat ACKs precomputed at the end of a compressed stream.
const ACKS: usize = 16;

pub fn ready(port: u16) -> String {
    format!(
        r#"{{"t":"READY","s":1,"op":0,"d":{{"v":10,"session_id":"bench","resume_gateway_url":"ws://127.0.0.1:{port}","user":{{"id":"1","username":"b","discriminator":"0"}},"guilds":[],"application":{{"id":"1","flags":0}}}}}}"#
    )
}

impl Mix {
    /// Generates one copy and picks how many copies make about `target_bytes`.
    pub fn new(kind: MixKind, target_bytes: u64) -> Mix {
        let mut texts = match kind {
            MixKind::Realistic => payloads::gateway_mix(1, 8, 2000),
            MixKind::Small => payloads::gateway_mix(2, 0, 3000),
        };
        texts.drain(..2); // the generator's Hello and READY
        if kind == MixKind::Small {
            texts.retain(|text| text.len() <= 2048);
        }
        let bytes: u64 = texts.iter().map(|t| t.len() as u64).sum();
        let copies = target_bytes.div_ceil(bytes).max(1) as usize;
        let content_lens = texts.iter().map(|text| is_message_create(text).then(|| content_len(text))).collect();
        Mix { kind, texts, content_lens, copies }
    }

    pub fn copy_message_creates(&self) -> u64 {
        self.content_lens.iter().filter(|len| len.is_some()).count() as u64
    }

    pub fn copy_bytes(&self) -> u64 {
        self.texts.iter().map(|t| t.len() as u64).sum()
    }

    pub fn copy_dispatches(&self) -> u64 {
        self.texts.iter().filter(|t| is_dispatch(t)).count() as u64
    }

    /// Every payload after READY, in order, dispatches renumbered from `s` = 2,
    /// each with its MESSAGE_CREATE content length (see `content_lens`).
    fn for_each_payload(&self, mut f: impl FnMut(&str, Option<u64>)) {
        let mut seq = 2u64;
        let mut buf = String::new();
        for _ in 0..self.copies {
            for (text, &content_len) in self.texts.iter().zip(&self.content_lens) {
                if is_dispatch(text) {
                    renumber(text, seq, &mut buf);
                    seq += 1;
                    f(&buf, content_len);
                } else {
                    f(text, content_len);
                }
            }
        }
    }
}

fn is_message_create(text: &str) -> bool {
    text.starts_with(r#"{"t":"MESSAGE_CREATE","#)
}

/// Deserializes a MESSAGE_CREATE's `d` as twilight-model's `MessageCreate`
/// (so every typed consumer can `.expect()` it) and returns its content's length.
fn content_len(text: &str) -> u64 {
    let envelope = Envelope::scan(text).expect("valid payload");
    let d = &text[envelope.data.expect("MESSAGE_CREATE has d")];
    let message: MessageCreate = serde_json::from_str(d)
        .unwrap_or_else(|error| panic!("MESSAGE_CREATE is not a twilight-model MessageCreate: {error}\n{d}"));
    message.content.len() as u64
}

fn is_dispatch(text: &str) -> bool {
    text.as_bytes()[..text.len().min(96)].windows(6).any(|w| w == br#""op":0"#)
}

/// `text` with its `"s":N` replaced by `seq` (into `out`).
fn renumber(text: &str, seq: u64, out: &mut String) {
    let at = text.find(r#""s":"#).expect("dispatch has s") + 4;
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    out.clear();
    out.push_str(&text[..at]);
    out.push_str(&seq.to_string());
    out.push_str(&text[at + digits..]);
}

/// One zlib stream, sync flush per payload (as `payloads::zlib_stream`, streaming).
struct Deflater {
    compress: Compress,
    out: Vec<u8>,
}

impl Deflater {
    fn new() -> Deflater {
        Deflater { compress: Compress::new(Compression::default(), true), out: Vec::new() }
    }

    fn push(&mut self, payload: &[u8]) -> &[u8] {
        let mut input = payload;
        self.out.clear();
        self.out.reserve(input.len() / 2 + 64);
        loop {
            let before = self.compress.total_in();
            self.compress.compress_vec(input, &mut self.out, FlushCompress::Sync).expect("compress");
            input = &input[(self.compress.total_in() - before) as usize..];
            if input.is_empty() && self.out.len() < self.out.capacity() {
                break;
            }
            self.out.reserve(self.out.capacity().max(64));
        }
        &self.out
    }
}

/// The connection's compressor: what the server writes for each payload.
enum Compressor {
    Zlib(Deflater),
    Zstd(ZstdStream),
    None,
}

impl Compressor {
    fn new(codec: Codec) -> Compressor {
        match codec {
            Codec::Zlib => Compressor::Zlib(Deflater::new()),
            Codec::Zstd => Compressor::Zstd(ZstdStream::new()),
            Codec::None => Compressor::None,
        }
    }

    /// Appends `text` as one frame (binary if compressed, else text) to
    /// `out`; returns where its payload starts in `out` and its length.
    fn frame(&mut self, out: &mut Vec<u8>, text: &str) -> (usize, usize) {
        match self {
            Compressor::Zlib(deflater) => push_frame(out, 2, deflater.push(text.as_bytes())),
            Compressor::Zstd(zstd) => push_frame(out, 2, zstd.push(text.as_bytes())),
            Compressor::None => push_frame(out, 1, text.as_bytes()),
        }
    }
}

/// The timed window of a consumer that counts some of the dispatches: from
/// its second counted dispatch (when its clock starts) to its last one.
#[derive(Debug, Default, Clone, Copy)]
pub struct Window {
    /// Dispatches the consumer counts (its `--expect`), READY included if counted.
    pub counted: u64,
    /// Dispatches of the stream after the clock starts, through the last counted one.
    pub dispatches: u64,
    /// Whole payload bytes of those dispatches (what MB/s counts).
    pub bytes: u64,
    /// Running totals since the clock started, up to the latest dispatch.
    open_dispatches: u64,
    open_bytes: u64,
}

impl Window {
    fn dispatch(&mut self, len: u64, counted: bool) {
        if self.counted >= 2 {
            self.open_dispatches += 1;
            self.open_bytes += len;
        }
        if counted {
            self.counted += 1;
            if self.counted > 2 {
                (self.dispatches, self.bytes) = (self.open_dispatches, self.open_bytes);
            }
        }
    }
}

/// Everything the server writes for one run, precomputed.
pub struct Replay {
    pub codec: Codec,
    /// The Hello frame (sent on connect).
    pub hello: Vec<u8>,
    /// READY and every mix payload as consecutive frames (sent after Identify).
    pub bulk: Vec<u8>,
    /// Heartbeat ACK frames, used in order (compressed ones continue the stream).
    pub acks: Vec<Vec<u8>>,
    /// Payload ranges of the bulk's frames (for the in-process decompression timing).
    pub frames: Vec<(usize, usize)>,
    /// The Hello frame's payload.
    pub hello_payload: Vec<u8>,
    /// Dispatches including READY.
    pub dispatches: u64,
    /// Sum over dispatches (READY included) of the whole payload text / of `d`.
    pub full_bytes: u64,
    pub d_bytes: u64,
    /// Sum over MESSAGE_CREATEs of their decoded `content` length.
    pub content_bytes: u64,
    /// Consumers of every dispatch: dispatches 3..=N (after READY and the
    /// first dispatch after it, at which the clock starts).
    pub all: Window,
    /// Typed consumers of MESSAGE_CREATE only: from the second
    /// MESSAGE_CREATE to the last one.
    pub typed: Window,
}

impl Replay {
    pub fn build(mix: &Mix, port: u16, codec: Codec) -> Replay {
        let started = Instant::now();
        let mut compressor = Compressor::new(codec);
        let mut hello = Vec::new();
        let (start, len) = compressor.frame(&mut hello, HELLO);
        let hello_payload = hello[start..start + len].to_vec();

        let raw = mix.copy_bytes() * mix.copies as u64;
        let mut bulk =
            Vec::with_capacity(if codec.compressed() { raw as usize / 3 } else { raw as usize + raw as usize / 50 });
        let mut frames = Vec::new();
        let (mut dispatches, mut full_bytes, mut d_bytes, mut content_bytes, mut inflated_bytes) = (0, 0, 0, 0, 0);
        let (mut all, mut typed) = (Window::default(), Window::default());
        let mut add = |compressor: &mut Compressor, bulk: &mut Vec<u8>, text: &str, content_len: Option<u64>| {
            frames.push(compressor.frame(bulk, text));
            inflated_bytes += text.len() as u64;
            if is_dispatch(text) {
                dispatches += 1;
                full_bytes += text.len() as u64;
                let envelope = Envelope::scan(text).expect("valid payload");
                d_bytes += envelope.data.map_or(0, |d| d.len()) as u64;
                content_bytes += content_len.unwrap_or(0);
                all.dispatch(text.len() as u64, true);
                typed.dispatch(text.len() as u64, content_len.is_some());
            }
        };
        add(&mut compressor, &mut bulk, &ready(port), None);
        mix.for_each_payload(|text, content_len| add(&mut compressor, &mut bulk, text, content_len));
        let mut acks = Vec::new();
        for _ in 0..ACKS {
            let mut ack = Vec::new();
            compressor.frame(&mut ack, ACK);
            acks.push(ack);
        }
        eprintln!(
            "  built {} {}: {} payloads, {} dispatches ({} MESSAGE_CREATE), {:.1} MB of JSON, {:.1} MB on the wire, in {:.1} s",
            mix.kind.name(),
            codec.arg(),
            frames.len(),
            dispatches,
            typed.counted,
            inflated_bytes as f64 / 1e6,
            bulk.len() as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        Replay {
            codec,
            hello,
            bulk,
            acks,
            frames,
            hello_payload,
            dispatches,
            full_bytes,
            d_bytes,
            content_bytes,
            all,
            typed,
        }
    }
}
