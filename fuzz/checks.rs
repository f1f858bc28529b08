//! The codec's differential checks, in one place for the fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and for `tests/fuzz_corpus.rs` /
//! `tests/codec_differential.rs`, which pull this file in with `#[path]`.
//!
//! Each check panics when the codec disagrees with its oracle; it depends
//! only on the crate's public API, serde, serde_json and flate2.

#![allow(dead_code)]

#[path = "payloads.rs"]
mod payloads;

use discord_gateway_stream::fuzzing::{Envelope, InflateError, Inflater, ScanError};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::OnceLock;

/// serde_json's reading of an envelope (`docs/connection.md#payload-envelope`): the oracle for
/// [`Envelope::scan`].
///
/// `d` goes through [`present`] so that `"d":null` gives `Some("null")` as
/// the scanner does (a plain `Option<&RawValue>` turns JSON null into `None`).
#[derive(Deserialize)]
pub struct Probe<'a> {
    /// The opcode.
    pub op: u64,
    /// The sequence number.
    #[serde(default)]
    pub s: Option<u64>,
    /// The event name.
    #[serde(default, borrow)]
    pub t: Option<Cow<'a, str>>,
    /// The raw `d`, `None` only when the key is absent.
    #[serde(default, borrow, deserialize_with = "present")]
    pub d: Option<&'a RawValue>,
}

/// Deserializes a present `d`, `null` included, as `Some`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// How deeply `text` nests arrays and objects (outside strings).
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for byte in text.bytes() {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// [`Envelope::scan`] against serde_json, for any bytes.
///
/// - the scan never panics (the fuzzer notices);
/// - text that is not valid JSON (serde_json cannot even skip it as
///   `IgnoredAny`) is an error;
/// - a JSON object that serde reads into [`Probe`] gives the same `op`, `s`,
///   decoded `t` and the exact byte range of `d` (unless it nests deeper
///   than the scanner's 1024 levels: then `TooDeep`);
/// - a scan that succeeds on text serde rejects is only allowed where serde
///   is stricter than JSON: a key with an unpaired surrogate escape, or a
///   non-object (serde reads a struct from an array too).
///
/// Returns the scan result for callers that want to look further.
pub fn check_envelope(data: &[u8]) -> Option<Result<Envelope, ScanError>> {
    let text = std::str::from_utf8(data).ok()?;
    let scanned = Envelope::scan(text);
    check_read(text, &scanned);
    let valid_json = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
    if !valid_json {
        assert!(scanned.is_err(), "scanner accepted invalid JSON {text:?}: {scanned:?}");
        return Some(scanned);
    }
    let is_object = text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{');
    match serde_json::from_str::<Probe<'_>>(text) {
        Ok(probe) if is_object => match &scanned {
            Ok(envelope) => {
                assert_eq!(envelope.op, probe.op, "op of {text:?}");
                assert_eq!(envelope.seq, probe.s, "s of {text:?}");
                assert_eq!(envelope.event.as_ref().map(|span| span.decode(text)), probe.t, "t of {text:?}");
                let serde_span = probe.d.map(|raw| {
                    let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
                    start..start + raw.get().len()
                });
                assert_eq!(envelope.data, serde_span, "d span of {text:?}");
            }
            Err(ScanError::TooDeep) => {
                assert!(nesting_depth(text) > 1024, "TooDeep for shallow {text:?}")
            }
            Err(error) => panic!("scanner rejected {text:?} ({error}) which serde reads"),
        },
        Ok(_) => assert_eq!(scanned, Err(ScanError::NotAnObject), "non-object {text:?}"),
        Err(serde_error) => {
            if let Ok(envelope) = &scanned {
                let message = serde_error.to_string();
                assert!(
                    message.contains("surrogate") || message.contains("end of hex escape"),
                    "scanner accepted {text:?} as {envelope:?}, serde says: {message}"
                );
            }
        }
    }
    Some(scanned)
}

/// The text of `envelope` written in Discord's canonical form
/// `{"t":…,"s":…,"op":…,"d":…}`, from the pieces of `text` it names; `None`
/// when `t` has escapes or `d` is absent (the fast path never takes those).
pub fn canonical_form(text: &str, envelope: &Envelope) -> Option<String> {
    let t = match &envelope.event {
        Some(span) if span.escaped => return None,
        Some(span) => format!("\"{}\"", text.get(span.range.clone())?),
        None => "null".to_owned(),
    };
    let s = envelope.seq.map_or("null".to_owned(), |s| s.to_string());
    let d = text.get(envelope.data.clone()?)?;
    Some(format!(r#"{{"t":{t},"s":{s},"op":{},"d":{d}}}"#, envelope.op))
}

/// [`Envelope::read`] (the canonical fast path) against the full scan:
///
/// - it never panics, and every span it returns lies inside the text on
///   character boundaries, whatever the input;
/// - on valid JSON in canonical form (the scan accepts it, and the text is
///   exactly [`canonical_form`] of what the scan read) it gives exactly the
///   scan's envelope, which the caller checks against serde_json;
/// - where it differs from the scan at all, it took the fast path: the text
///   starts with the canonical `{"t":`; and if the text is valid JSON, it
///   is one of the documented cases: keys after `d` (which the fast path
///   takes as part of `d`), a duplicate key, or `d` nested deeper than the
///   scan's 1024 levels.
pub fn check_read(text: &str, scanned: &Result<Envelope, ScanError>) {
    let read = Envelope::read(text);
    if let Ok(envelope) = &read {
        if let Some(span) = &envelope.event {
            assert!(text.get(span.range.clone()).is_some(), "t span outside {text:?}: {envelope:?}");
        }
        if let Some(range) = &envelope.data {
            assert!(text.get(range.clone()).is_some(), "d span outside {text:?}: {envelope:?}");
        }
    }
    let canonical = match scanned {
        Ok(envelope) => canonical_form(text, envelope).is_some_and(|form| form == text),
        Err(_) => false,
    };
    if canonical {
        assert_eq!(&read, scanned, "fast path differs from the scan on canonical {text:?}");
    } else if &read != scanned {
        assert!(text.starts_with(r#"{"t":"#), "fallback differs from the scan on {text:?}: {read:?}");
        let Ok(fast) = &read else { panic!("the fast path failed instead of falling back on {text:?}") };
        // Whatever the fast path returns, it is the text read as canonical:
        // every field and the start of `d` exactly where the text has them.
        assert_eq!(canonical_form(text, fast).as_deref(), Some(text), "the fast path misread {text:?}: {fast:?}");
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
            let documented = match scanned {
                Ok(envelope) => envelope.data.as_ref().is_some_and(|d| d.end + 1 < text.len()),
                Err(ScanError::DuplicateKey { .. } | ScanError::TooDeep) => true,
                Err(_) => false,
            };
            assert!(documented, "the fast path read valid JSON {text:?} as {read:?}, the scan as {scanned:?}");
        }
    }
}

/// The fixed traffic [`check_inflate`] replays: payloads and their
/// compressed frames (one zlib stream, a sync flush per payload).
pub struct InflateCase {
    /// The inflated payloads, in stream order.
    pub payloads: Vec<Vec<u8>>,
    /// One compressed frame per payload.
    pub frames: Vec<Vec<u8>>,
}

/// Built once: Hello, READY, a 30 KB GUILD_CREATE, message traffic, ACKs.
pub fn inflate_case() -> &'static InflateCase {
    static CASE: OnceLock<InflateCase> = OnceLock::new();
    CASE.get_or_init(|| {
        let mut rng = payloads::Rng::new(7);
        let mut texts = payloads::gateway_mix(7, 0, 0);
        texts.push(payloads::guild_create(&mut rng, 2, 30_000));
        for seq in 3..9 {
            texts.push(payloads::message_create(&mut rng, seq));
            texts.push(r#"{"t":null,"s":null,"op":11,"d":null}"#.to_owned());
        }
        texts.push("{}".to_owned());
        let frames = payloads::zlib_stream(&texts);
        for frame in &frames {
            let first_marker = frame.windows(4).position(|window| window == [0, 0, 0xff, 0xff]);
            assert_eq!(first_marker, frame.len().checked_sub(4), "a frame holds a marker before its end");
        }
        InflateCase { payloads: texts.into_iter().map(String::into_bytes).collect(), frames }
    })
}

/// [`Inflater`] against the known traffic of [`inflate_case`], with split
/// points, one corruption and the size cap chosen by `data`.
///
/// - nothing panics; a payload never exceeds the cap;
/// - with no corruption, every payload comes out exactly, on the message
///   that carries its last byte, and not earlier; a payload over the cap
///   is `MessageTooLarge`;
/// - after any error, `push` is `Poisoned` until `reset`;
/// - after `reset`, the clean stream inflates exactly again
///   (`docs/edge-cases.md#zlib-stream-framing-and-state`).
pub fn check_inflate(data: &[u8]) {
    let case = inflate_case();
    let mut plan = payloads::Plan::new(data, 97);
    let control = plan.next();
    let corrupt = control & 1 == 1;
    let cap = if control & 2 == 2 { usize::from(plan.next()) * 256 } else { 1 << 20 };
    let stream_len: usize = case.frames.iter().map(Vec::len).sum();
    let corrupt_at = usize::from(u16::from_le_bytes([plan.next(), plan.next()])) * 7 % stream_len;
    let corrupt_with = plan.next() | 1;
    // The core takes each payload's buffer (`push_owned`); tests and
    // benches borrow it (`push`). Both must inflate the same.
    let owned = control & 4 == 4;
    let push = |inflater: &mut Inflater, piece: &[u8]| -> Result<Option<Vec<u8>>, InflateError> {
        if owned {
            inflater.push_owned(piece)
        } else {
            inflater.push(piece).map(|out| out.map(<[u8]>::to_vec))
        }
    };

    let mut inflater = Inflater::new(cap);
    let mut offset = 0;
    let mut failed = false;
    'frames: for (frame, payload) in case.frames.iter().zip(&case.payloads) {
        let mut rest: &[u8] = frame;
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(plan.piece_len().min(rest.len()));
            rest = tail;
            let mut piece = piece.to_vec();
            if corrupt && (offset..offset + piece.len()).contains(&corrupt_at) {
                piece[corrupt_at - offset] ^= corrupt_with;
            }
            offset += piece.len();
            // Until the corrupted byte is fed, the stream is as clean as an
            // uncorrupted one, and so must be every payload out of it.
            let pristine = !corrupt || offset <= corrupt_at;
            match push(&mut inflater, &piece) {
                Ok(Some(out)) => {
                    assert!(out.len() <= cap, "payload of {} bytes over the {cap}-byte cap", out.len());
                    if pristine {
                        assert!(rest.is_empty(), "payload completed before its last message");
                        assert_eq!(out, payload.as_slice(), "inflated payload differs");
                    }
                }
                Ok(None) => {
                    if pristine {
                        assert!(!rest.is_empty(), "the last message of a payload completed nothing");
                    }
                }
                Err(error) => {
                    if pristine {
                        assert_eq!(error, InflateError::MessageTooLarge { limit: cap });
                        assert!(payload.len() > cap, "a {}-byte payload is not over {cap}", payload.len());
                    }
                    failed = true;
                    break 'frames;
                }
            }
        }
    }
    if failed {
        assert_eq!(push(&mut inflater, &case.frames[0]), Err(InflateError::Poisoned));
    }

    inflater.reset();
    for (frame, payload) in case.frames.iter().zip(&case.payloads) {
        if payload.len() > cap {
            assert_eq!(push(&mut inflater, frame), Err(InflateError::MessageTooLarge { limit: cap }));
            break;
        }
        assert_eq!(push(&mut inflater, frame), Ok(Some(payload.clone())), "clean stream after reset");
    }
}
