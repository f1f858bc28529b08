//! Envelope reader (`docs/connection.md#payload-envelope`): finds `op`, `s`, `t` and the exact
//! byte span of `d` in one payload without building a JSON tree.
//!
//! Two ways to read a payload, both on `&str` (UTF-8 was checked once by the
//! caller), both without allocation, recursion or panics:
//!
//! - [`Envelope::read`], the default: Discord serializes every payload as
//!   `{"t":…,"s":…,"op":…,"d":…}`, in that order, without whitespace. For
//!   text of that *canonical* form the reader checks the prefix (`t` a string
//!   without escapes or `null`, `s` an unsigned integer or `null`, `op` an
//!   unsigned integer) and takes `d` as the rest of the object, so it costs
//!   tens of nanoseconds whatever the size of `d`. `d` itself is not
//!   validated: the application's deserializer does that anyway. The fast
//!   path assumes `d` is the last key, as Discord writes it: keys after an
//!   object or array `d` are taken as part of it. Anything else (another
//!   key order, whitespace, escapes in `t`, keys before `d`, a `d` whose
//!   last byte cannot close the value its first byte opens, a scalar `d`
//!   with anything after it) goes to the full scanner.
//! - [`Envelope::scan`], the strict reader (`Config::validate_payloads`): the
//!   whole text must be exactly one valid JSON object (RFC 8259), `d`
//!   included; keys in any order, with any whitespace and escapes (`"o\u0070"`
//!   is the key `op`); unknown keys are skipped; a duplicated `op`, `s`, `t`
//!   or `d` is an error (serde_json agrees).
//!
//! The contract between them: for every valid JSON payload in canonical form,
//! `read` and `scan` give the same envelope, which is exactly what
//! serde_json reads (`d` byte for byte). They differ only where `read`
//! took the fast path and the text is not canonical JSON: invalid JSON
//! (which `read` may accept and `scan` rejects), keys after `d`, a
//! duplicated key after `d`, or a `d` nested deeper than `scan`'s 1024
//! levels. Even then every span `read` returns lies inside the text on
//! character boundaries, and nothing panics. Both are checked against
//! serde_json by `tests/codec_differential.rs` and the `envelope` fuzz target
//! (`fuzz/checks.rs`, `check_read`).
//!
//! The protocol core uses `read` only for dispatches: its own payloads
//! (op ≠ 0) and READY always go through `scan`.
//!
//! In both, `op` must be an unsigned integer (fits u64), `s` an unsigned
//! integer or null, `t` a string or null; `d` any value (missing = `None`).
//!
//! How the full scan works: one pass; containers nest on a fixed-size bit
//! stack (1 = object, 0 = array) limited to 1024 levels; string contents are
//! skipped eight bytes at a time with word-at-a-time bit tricks, looking only
//! for `"`, `\` and control characters. Non-ASCII bytes need no check: the
//! input is a `&str`, so it is valid UTF-8 already.
//!
//! Speed (`cargo bench --bench codec`): the full scan runs at about
//! 1.7 GiB/s on GUILD_CREATE-heavy traffic, 1.35-1.4 times serde_json reading
//! the same envelope with `&RawValue`; it is bound by the chain from one
//! token's end to the next token's start and by branch mispredictions. A
//! simdjson-style bitmap pass needs SIMD movemask instructions, which
//! `#![forbid(unsafe_code)]` rules out; the canonical reader avoids the cost
//! instead.

use std::borrow::Cow;
use std::ops::Range;

/// Deepest nesting accepted, counting the envelope object itself as level 1.
const MAX_DEPTH: usize = 1024;

/// Where a JSON string's contents sit inside the scanned text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrSpan {
    /// Byte range of the string's contents, quotes excluded, escapes as written.
    pub range: Range<usize>,
    /// Whether the contents contain a backslash escape (then decode before use).
    pub escaped: bool,
}

/// The envelope fields of one gateway payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The opcode (`op`).
    pub op: u64,
    /// The sequence number (`s`); `None` when null or absent.
    pub seq: Option<u64>,
    /// The event name (`t`); `None` when null or absent.
    pub event: Option<StrSpan>,
    /// Byte range of the raw `d` value (a `null` literal included); `None` when absent.
    pub data: Option<Range<usize>>,
}

/// Why a payload is not a usable gateway envelope.
///
/// Positions (`at`) are byte offsets into the scanned text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The text does not start with `{` (after whitespace).
    #[error("the payload is not a JSON object")]
    NotAnObject,
    /// The text ends inside a JSON value.
    #[error("the payload ends in the middle of a JSON value")]
    Truncated,
    /// A byte that JSON does not allow at this place.
    #[error("unexpected byte at {at}")]
    UnexpectedByte {
        /// Where the byte is.
        at: usize,
    },
    /// A backslash escape other than `\" \\ \/ \b \f \n \r \t \uXXXX`.
    #[error("invalid string escape at {at}")]
    InvalidEscape {
        /// Where the backslash is.
        at: usize,
    },
    /// A raw control character (below U+0020) inside a string.
    #[error("unescaped control character in a string at {at}")]
    ControlCharacter {
        /// Where the character is.
        at: usize,
    },
    /// A number that breaks JSON's grammar (`01`, `1.`, `-`, `.5`, `1e`).
    #[error("invalid number at {at}")]
    InvalidNumber {
        /// Where the offending byte is.
        at: usize,
    },
    /// Arrays and objects nested more than 1024 levels deep.
    #[error("JSON nested more than 1024 levels deep")]
    TooDeep,
    /// Something other than whitespace follows the envelope object.
    #[error("unexpected text after the payload object at {at}")]
    TrailingCharacters {
        /// Where the extra text starts.
        at: usize,
    },
    /// `op`, `s`, `t` or `d` appears twice.
    #[error("duplicate key `{key}` at {at}")]
    DuplicateKey {
        /// The duplicated key.
        key: &'static str,
        /// Where the second occurrence's key starts.
        at: usize,
    },
    /// The object has no `op` key.
    #[error("the payload has no `op`")]
    MissingOp,
    /// `op` is not an integer in `0..=u64::MAX`.
    #[error("`op` is not an unsigned integer")]
    OpNotUnsigned,
    /// `s` is neither null nor an integer in `0..=u64::MAX`.
    #[error("`s` is neither null nor an unsigned integer")]
    SeqNotUnsigned,
    /// `t` is neither null nor a string.
    #[error("`t` is neither null nor a string")]
    EventNotString,
    /// `t` contains a `\uXXXX` escape of an unpaired UTF-16 surrogate, so it is not Unicode text.
    #[error("`t` has an unpaired surrogate escape at {at}")]
    LoneSurrogate {
        /// Where the escape's backslash is.
        at: usize,
    },
}

/// The envelope keys the scanner looks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Op,
    Seq,
    Event,
    Data,
    Other,
}

impl Envelope {
    #[cfg(any(test, feature = "fuzzing"))]
    /// Reads one payload: the canonical fast path, or [`Envelope::scan`] for
    /// anything not in Discord's canonical form (see the module docs for the
    /// contract). `d` is not validated on the fast path.
    pub fn read(text: &str) -> Result<Envelope, ScanError> {
        match Envelope::read_canonical(text) {
            Some(envelope) => Ok(envelope),
            None => Envelope::scan(text),
        }
    }

    /// The fast path of [`read`](Self::read) alone: `None` when `text` is
    /// not in canonical form.
    pub(crate) fn read_canonical(text: &str) -> Option<Envelope> {
        read_canonical(text.as_bytes())
    }

    /// Scans one payload.
    ///
    /// Validates the whole text as exactly one JSON object (RFC 8259) and
    /// reads `op`, `s`, `t` and the span of `d` from it; see [`ScanError`].
    pub fn scan(text: &str) -> Result<Envelope, ScanError> {
        let bytes = text.as_bytes();
        let mut i = skip_ws(bytes, 0);
        match bytes.get(i) {
            Some(b'{') => i += 1,
            Some(_) => return Err(ScanError::NotAnObject),
            None => return Err(ScanError::Truncated),
        }
        let mut op = None;
        let mut seq = None;
        let mut event = None;
        let mut data = None;
        let mut seen = [false; 4];
        i = skip_ws(bytes, i);
        if bytes.get(i) == Some(&b'}') {
            i += 1;
        } else {
            loop {
                match bytes.get(i) {
                    Some(b'"') => {}
                    Some(_) => return Err(ScanError::UnexpectedByte { at: i }),
                    None => return Err(ScanError::Truncated),
                }
                let key_at = i;
                let (key_end, key_escaped) = string_end(bytes, i + 1)?;
                let key = identify_key(bytes.get(i + 1..key_end).unwrap_or_default(), key_escaped);
                i = expect_colon(bytes, key_end + 1)?;
                i = skip_ws(bytes, i);
                if let Some((slot, name)) = match key {
                    Key::Op => Some((0, "op")),
                    Key::Seq => Some((1, "s")),
                    Key::Event => Some((2, "t")),
                    Key::Data => Some((3, "d")),
                    Key::Other => None,
                } {
                    if let Some(seen) = seen.get_mut(slot) {
                        if *seen {
                            return Err(ScanError::DuplicateKey { key: name, at: key_at });
                        }
                        *seen = true;
                    }
                }
                let start = i;
                if key == Key::Event && bytes.get(i) == Some(&b'"') {
                    let (end, escaped) = string_end(bytes, i + 1)?;
                    if escaped {
                        check_surrogates(bytes, i + 1, end)?;
                    }
                    event = Some(StrSpan { range: i + 1..end, escaped });
                    i = end + 1;
                } else {
                    i = skip_value(bytes, i)?;
                    let value = bytes.get(start..i).unwrap_or_default();
                    match key {
                        Key::Op => op = Some(parse_unsigned(value).ok_or(ScanError::OpNotUnsigned)?),
                        Key::Seq if value == b"null" => {}
                        Key::Seq => seq = Some(parse_unsigned(value).ok_or(ScanError::SeqNotUnsigned)?),
                        Key::Event if value == b"null" => {}
                        Key::Event => return Err(ScanError::EventNotString),
                        Key::Data => data = Some(start..i),
                        Key::Other => {}
                    }
                }
                i = skip_ws(bytes, i);
                match bytes.get(i) {
                    Some(b',') => i = skip_ws(bytes, i + 1),
                    Some(b'}') => {
                        i += 1;
                        break;
                    }
                    Some(_) => return Err(ScanError::UnexpectedByte { at: i }),
                    None => return Err(ScanError::Truncated),
                }
            }
        }
        i = skip_ws(bytes, i);
        if i < bytes.len() {
            return Err(ScanError::TrailingCharacters { at: i });
        }
        Ok(Envelope { op: op.ok_or(ScanError::MissingOp)?, seq, event, data })
    }
}

impl StrSpan {
    /// The string's decoded contents (escapes resolved) within `text`.
    ///
    /// Borrows when the string has no escapes. An escaped UTF-16 surrogate
    /// without its partner becomes U+FFFD (a span from [`Envelope::scan`]
    /// never has one: the scan rejects such a `t`, as serde_json does), and
    /// a malformed escape is kept as written. A range outside `text` gives "".
    pub fn decode<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let raw = text.get(self.range.clone()).unwrap_or_default();
        if !self.escaped {
            return Cow::Borrowed(raw);
        }
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(backslash) = rest.find('\\') {
            let (plain, escape) = rest.split_at(backslash);
            out.push_str(plain);
            let bytes = escape.as_bytes();
            let (decoded, used) = match bytes.get(1) {
                Some(b'"') => (Some('"'), 2),
                Some(b'\\') => (Some('\\'), 2),
                Some(b'/') => (Some('/'), 2),
                Some(b'b') => (Some('\u{8}'), 2),
                Some(b'f') => (Some('\u{c}'), 2),
                Some(b'n') => (Some('\n'), 2),
                Some(b'r') => (Some('\r'), 2),
                Some(b't') => (Some('\t'), 2),
                Some(b'u') => match hex4(bytes.get(2..6)) {
                    Some(high @ 0xD800..=0xDBFF) => match (bytes.get(6..8), hex4(bytes.get(8..12))) {
                        (Some(b"\\u"), Some(low @ 0xDC00..=0xDFFF)) => {
                            let code = 0x1_0000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                            (char::from_u32(code), 12)
                        }
                        _ => (Some(char::REPLACEMENT_CHARACTER), 6),
                    },
                    Some(unit) => (Some(char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER)), 6),
                    None => (None, 1),
                },
                _ => (None, 1),
            };
            match decoded {
                Some(c) => out.push(c),
                None => out.push('\\'),
            }
            rest = escape.get(used..).unwrap_or_default();
        }
        out.push_str(rest);
        Cow::Owned(out)
    }
}

/// The canonical form `{"t":…,"s":…,"op":…,"d":…}` (no whitespace, `t`
/// without escapes); `None` sends the payload to the full scan.
fn read_canonical(bytes: &[u8]) -> Option<Envelope> {
    let mut i = b"{\"t\":".len();
    if bytes.get(..i)? != b"{\"t\":" {
        return None;
    }
    let event = match bytes.get(i)? {
        b'n' => {
            i = expect_literal(bytes, i, b"null").ok()?;
            None
        }
        b'"' => {
            let start = i + 1;
            let len = bytes.get(start..)?.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
            let end = start + len;
            if bytes.get(end) != Some(&b'"') {
                return None;
            }
            i = end + 1;
            Some(StrSpan { range: start..end, escaped: false })
        }
        _ => return None,
    };
    i = expect_literal(bytes, i, b",\"s\":").ok()?;
    let (seq, after_seq) = canonical_unsigned(bytes, i)?;
    i = expect_literal(bytes, after_seq, b",\"op\":").ok()?;
    let (op, after_op) = canonical_unsigned(bytes, i)?;
    let start = expect_literal(bytes, after_op, b",\"d\":").ok()?;
    // `d` runs to the object's closing brace, the last byte of the text.
    let end = bytes.len().checked_sub(1)?;
    if bytes.get(end) != Some(&b'}') || start >= end {
        return None;
    }
    // An object or array `d` is taken as it is, after a cheap guard against
    // keys after it (its last byte must close what its first byte opens);
    // anything else is short (`null`, `true`, a number) and is checked whole.
    let plausible = match (bytes.get(start)?, bytes.get(end - 1)?) {
        (b'{', b'}') | (b'[', b']') => true,
        (b'{' | b'[', _) => false,
        // Canonical text has no whitespace around `d` (`skip_value` would skip it).
        (&first, _) if is_ws(first) => false,
        _ => skip_value(bytes, start).ok() == Some(end),
    };
    if !plausible {
        return None;
    }
    Some(Envelope { op: op?, seq, event, data: Some(start..end) })
}

/// `null` or an unsigned integer in JSON's spelling (no leading zero) at
/// `i`: the value and the index after it.
#[inline(always)]
fn canonical_unsigned(bytes: &[u8], i: usize) -> Option<(Option<u64>, usize)> {
    if let Ok(end) = expect_literal(bytes, i, b"null") {
        return Some((None, end));
    }
    let digits = bytes.get(i..)?.iter().take_while(|c| c.is_ascii_digit()).count();
    let value = bytes.get(i..i + digits)?;
    if value.len() > 1 && value.first() == Some(&b'0') {
        return None;
    }
    Some((Some(parse_unsigned(value)?), i + digits))
}

/// Is `c` JSON whitespace?
#[inline(always)]
fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t')
}

/// The index of the first non-whitespace byte at or after `i`.
#[inline(always)]
fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while let Some(&c) = bytes.get(i) {
        if !is_ws(c) {
            break;
        }
        i += 1;
    }
    i
}

/// After a key's closing quote at `i - 1`: skips whitespace and the `:`;
/// returns the index after the colon.
#[inline(always)]
fn expect_colon(bytes: &[u8], i: usize) -> Result<usize, ScanError> {
    match bytes.get(i) {
        Some(b':') => Ok(i + 1),
        Some(&c) if is_ws(c) => {
            let i = skip_ws(bytes, i);
            match bytes.get(i) {
                Some(b':') => Ok(i + 1),
                Some(_) => Err(ScanError::UnexpectedByte { at: i }),
                None => Err(ScanError::Truncated),
            }
        }
        Some(_) => Err(ScanError::UnexpectedByte { at: i }),
        None => Err(ScanError::Truncated),
    }
}

/// Which envelope key the raw (quoted contents) key text names.
fn identify_key(raw: &[u8], escaped: bool) -> Key {
    let matches = |name: &[u8]| {
        if escaped {
            unescaped_eq(raw, name)
        } else {
            raw == name
        }
    };
    if matches(b"op") {
        Key::Op
    } else if matches(b"s") {
        Key::Seq
    } else if matches(b"t") {
        Key::Event
    } else if matches(b"d") {
        Key::Data
    } else {
        Key::Other
    }
}

/// Whether the escaped string contents `raw` decode to the ASCII text `name`.
fn unescaped_eq(raw: &[u8], name: &[u8]) -> bool {
    let mut rest = raw;
    let mut want = name.iter();
    while let Some((&c, tail)) = rest.split_first() {
        let (decoded, tail) = if c == b'\\' {
            match tail.split_first() {
                Some((b'u', hex)) => match hex4(hex.get(..4)) {
                    Some(unit) => (u8::try_from(unit).unwrap_or(0xff), hex.get(4..).unwrap_or_default()),
                    None => return false,
                },
                Some((&e, tail)) => (unescape_simple(e), tail),
                None => return false,
            }
        } else {
            (c, tail)
        };
        // Non-ASCII never equals an ASCII key; 0xff stands for "no match".
        if want.next() != Some(&decoded) || decoded >= 0x80 {
            return false;
        }
        rest = tail;
    }
    want.next().is_none()
}

/// The byte a one-letter escape stands for (0xff when it is not one).
fn unescape_simple(e: u8) -> u8 {
    match e {
        b'"' | b'\\' | b'/' => e,
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        _ => 0xff,
    }
}

/// The value of four hex digits.
fn hex4(digits: Option<&[u8]>) -> Option<u16> {
    let digits = digits?;
    if digits.len() != 4 {
        return None;
    }
    digits.iter().try_fold(0u16, |n, &d| Some(n << 4 | u16::from(hex_value(d)?)))
}

/// The value of one hex digit.
#[inline(always)]
fn hex_value(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

/// Rejects `\uXXXX` escapes of unpaired surrogates in `bytes[start..end]`
/// (already validated string contents), as serde_json does for a `str`.
fn check_surrogates(bytes: &[u8], start: usize, end: usize) -> Result<(), ScanError> {
    let mut i = start;
    while i < end {
        if bytes.get(i) != Some(&b'\\') {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) != Some(&b'u') {
            i += 2;
            continue;
        }
        match hex4(bytes.get(i + 2..i + 6)) {
            Some(0xD800..=0xDBFF) => {
                let paired = bytes.get(i + 6..i + 8) == Some(b"\\u")
                    && matches!(hex4(bytes.get(i + 8..i + 12)), Some(0xDC00..=0xDFFF));
                if !paired {
                    return Err(ScanError::LoneSurrogate { at: i });
                }
                i += 12;
            }
            Some(0xDC00..=0xDFFF) => return Err(ScanError::LoneSurrogate { at: i }),
            _ => i += 6,
        }
    }
    Ok(())
}

/// `value` (a valid JSON value) as a u64, when it is an integer that fits.
fn parse_unsigned(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

/// Validates a string whose contents start at `i` (after the opening quote).
///
/// Returns the index of the closing quote and whether an escape was seen.
/// The fast path reads eight bytes per step and ends at the first special
/// byte when it is the closing quote; anything else goes to [`string_end_slow`].
#[inline(always)]
fn string_end(bytes: &[u8], mut i: usize) -> Result<(usize, bool), ScanError> {
    while let Some(chunk) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let (quotes, hits) = special_bytes(u64::from_le_bytes(*chunk));
        if hits != 0 {
            let at = i + (hits.trailing_zeros() / 8) as usize;
            // The lowest hit of each kind is exact, so this is a quote iff it is the first hit.
            if hits & hits.wrapping_neg() & quotes != 0 {
                return Ok((at, false));
            }
            return string_end_slow(bytes, at);
        }
        i += 8;
    }
    string_end_slow(bytes, i)
}

/// [`string_end`] from a position that may hold an escape or a control
/// character, or near the end of the text.
#[inline(never)]
fn string_end_slow(bytes: &[u8], mut i: usize) -> Result<(usize, bool), ScanError> {
    let mut escaped = false;
    loop {
        i = find_special(bytes, i);
        match bytes.get(i) {
            Some(b'"') => return Ok((i, escaped)),
            Some(b'\\') => {
                escaped = true;
                i = skip_escape(bytes, i)?;
            }
            Some(_) => return Err(ScanError::ControlCharacter { at: i }),
            None => return Err(ScanError::Truncated),
        }
    }
}

/// `0x01` in every byte of a word.
const ONES: u64 = 0x0101_0101_0101_0101;
/// `0x80` in every byte of a word.
const HIGH: u64 = 0x8080_8080_8080_8080;

/// For eight string bytes (little-endian): the high bit of each `"` byte,
/// and of each `"`, `\\` or control byte.
///
/// A flag can be false only above a true one (a borrow carries from a
/// flagged byte), so the lowest flag of each mask is exact.
#[inline(always)]
fn special_bytes(word: u64) -> (u64, u64) {
    let zero_bytes = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    let quotes = zero_bytes(word ^ (ONES * u64::from(b'"')));
    let backslashes = zero_bytes(word ^ (ONES * u64::from(b'\\')));
    let controls = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    (quotes, quotes | backslashes | controls)
}

/// Validates the escape whose backslash is at `i`; returns the index after it.
#[cold]
fn skip_escape(bytes: &[u8], i: usize) -> Result<usize, ScanError> {
    match bytes.get(i + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 2),
        Some(b'u') => {
            for at in i + 2..i + 6 {
                match bytes.get(at) {
                    Some(&d) if hex_value(d).is_some() => {}
                    Some(_) => return Err(ScanError::InvalidEscape { at: i }),
                    None => return Err(ScanError::Truncated),
                }
            }
            Ok(i + 6)
        }
        Some(_) => Err(ScanError::InvalidEscape { at: i }),
        None => Err(ScanError::Truncated),
    }
}

/// Is `c` one of the bytes that end a run of plain string contents?
#[inline(always)]
fn is_string_special(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20
}

/// The index of the first `"`, `\` or control byte at or after `i` (`bytes.len()` if none).
#[inline(always)]
fn find_special(bytes: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let (_, hits) = special_bytes(u64::from_le_bytes(*chunk));
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    find_special_bytewise(bytes, i)
}

/// [`find_special`] one byte at a time, for the last few bytes.
#[inline(always)]
fn find_special_bytewise(bytes: &[u8], mut i: usize) -> usize {
    while let Some(&c) = bytes.get(i) {
        if is_string_special(c) {
            return i;
        }
        i += 1;
    }
    i
}

/// Validates a number starting at `i` (`-` or a digit); returns the index after it.
#[inline(always)]
fn skip_number(bytes: &[u8], mut i: usize) -> Result<usize, ScanError> {
    if bytes.get(i) == Some(&b'-') {
        i += 1;
    }
    match bytes.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = skip_digits(bytes, i + 1),
        Some(_) => return Err(ScanError::InvalidNumber { at: i }),
        None => return Err(ScanError::Truncated),
    }
    if bytes.get(i) == Some(&b'.') {
        i = skip_some_digits(bytes, i + 1)?;
    }
    if let Some(b'e' | b'E') = bytes.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = bytes.get(i) {
            i += 1;
        }
        i = skip_some_digits(bytes, i)?;
    }
    Ok(i)
}

/// Skips digits from `i`; returns the index of the first non-digit.
#[inline(always)]
fn skip_digits(bytes: &[u8], mut i: usize) -> usize {
    while let Some(c) = bytes.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        i += 1;
    }
    i
}

/// Skips one or more digits from `i`.
#[inline(always)]
fn skip_some_digits(bytes: &[u8], i: usize) -> Result<usize, ScanError> {
    match bytes.get(i) {
        Some(c) if c.is_ascii_digit() => Ok(skip_digits(bytes, i + 1)),
        Some(_) => Err(ScanError::InvalidNumber { at: i }),
        None => Err(ScanError::Truncated),
    }
}

/// Checks for the literal `word` at `i`; returns the index after it.
#[inline(always)]
fn expect_literal<const N: usize>(bytes: &[u8], i: usize, word: &[u8; N]) -> Result<usize, ScanError> {
    match bytes.get(i..).and_then(<[u8]>::first_chunk::<N>) {
        Some(found) if found == word => Ok(i + N),
        Some(_) => Err(ScanError::UnexpectedByte { at: i }),
        None => Err(ScanError::Truncated),
    }
}

/// Which containers enclose the current position: one bit per level,
/// 1 = object, 0 = array. Fixed size: no allocation, bounded depth.
struct Nesting {
    bits: [u64; MAX_DEPTH / 64],
    depth: usize,
}

impl Nesting {
    /// Pushes a container; errors past `limit` levels.
    #[inline(always)]
    fn push(&mut self, object: bool, limit: usize) -> Result<(), ScanError> {
        if self.depth >= limit {
            return Err(ScanError::TooDeep);
        }
        if let Some(word) = self.bits.get_mut(self.depth / 64) {
            let bit = 1u64 << (self.depth % 64);
            if object {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
        self.depth += 1;
        Ok(())
    }

    /// Pops a container; returns whether the new innermost one is an object.
    #[inline(always)]
    fn pop(&mut self) -> bool {
        self.depth = self.depth.saturating_sub(1);
        self.innermost_is_object()
    }

    /// Whether the innermost open container is an object (false when none is open).
    #[inline(always)]
    fn innermost_is_object(&self) -> bool {
        let Some(top) = self.depth.checked_sub(1) else {
            return false;
        };
        self.bits.get(top / 64).is_some_and(|word| word >> (top % 64) & 1 == 1)
    }
}

/// After an object's `{` or `,` (whitespace skipped), at the key's opening
/// quote `i`: validates the key and the colon; returns the index after `:`.
#[inline(always)]
fn skip_key(bytes: &[u8], i: usize) -> Result<usize, ScanError> {
    match bytes.get(i) {
        Some(b'"') => {}
        Some(_) => return Err(ScanError::UnexpectedByte { at: i }),
        None => return Err(ScanError::Truncated),
    }
    let (end, _) = string_end(bytes, i + 1)?;
    expect_colon(bytes, end + 1)
}

/// Validates one JSON value starting at `i` (leading whitespace allowed);
/// returns the index just after it.
///
/// The value may nest `MAX_DEPTH - 1` levels: the envelope is the first.
#[inline(never)]
fn skip_value(bytes: &[u8], mut i: usize) -> Result<usize, ScanError> {
    const LIMIT: usize = MAX_DEPTH - 1;
    let mut nesting = Nesting { bits: [0; MAX_DEPTH / 64], depth: 0 };
    let mut in_object = false;
    'value: loop {
        // At a value.
        let Some(&c) = bytes.get(i) else {
            return Err(ScanError::Truncated);
        };
        match c {
            b'"' => i = string_end(bytes, i + 1)?.0 + 1,
            b'{' => {
                nesting.push(true, LIMIT)?;
                in_object = true;
                i = skip_ws(bytes, i + 1);
                if bytes.get(i) == Some(&b'}') {
                    in_object = nesting.pop();
                    i += 1;
                } else {
                    i = skip_key(bytes, i)?;
                    continue 'value;
                }
            }
            b'[' => {
                nesting.push(false, LIMIT)?;
                in_object = false;
                i = skip_ws(bytes, i + 1);
                if bytes.get(i) == Some(&b']') {
                    in_object = nesting.pop();
                    i += 1;
                } else {
                    continue 'value;
                }
            }
            b'-' | b'0'..=b'9' => i = skip_number(bytes, i)?,
            b't' => i = expect_literal(bytes, i, b"true")?,
            b'f' => i = expect_literal(bytes, i, b"false")?,
            b'n' => i = expect_literal(bytes, i, b"null")?,
            b' ' | b'\n' | b'\r' | b'\t' => {
                i = skip_ws(bytes, i);
                continue 'value;
            }
            _ => return Err(ScanError::UnexpectedByte { at: i }),
        }
        // After a complete value: close containers until one continues with `,`.
        loop {
            if nesting.depth == 0 {
                return Ok(i);
            }
            match bytes.get(i) {
                Some(b',') => {
                    i += 1;
                    if in_object {
                        i = skip_key(bytes, skip_ws(bytes, i))?;
                    }
                    continue 'value;
                }
                Some(b'}') if in_object => {
                    in_object = nesting.pop();
                    i += 1;
                }
                Some(b']') if !in_object => {
                    in_object = nesting.pop();
                    i += 1;
                }
                Some(&c) if is_ws(c) => i = skip_ws(bytes, i),
                Some(_) => return Err(ScanError::UnexpectedByte { at: i }),
                None => return Err(ScanError::Truncated),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str) -> Result<Envelope, ScanError> {
        Envelope::scan(text)
    }

    fn data<'a>(text: &'a str, envelope: &Envelope) -> Option<&'a str> {
        envelope.data.clone().map(|range| &text[range])
    }

    // docs/connection.md#payload-envelope: real payloads are ordered t, s, op, d.
    #[test]
    fn dispatch_in_discord_key_order() {
        let text = r#"{"t":"MESSAGE_CREATE","s":42,"op":0,"d":{"content":"hi","id":"1"}}"#;
        let envelope = scan(text).unwrap();
        assert_eq!(envelope.op, 0);
        assert_eq!(envelope.seq, Some(42));
        assert_eq!(envelope.event.as_ref().unwrap().decode(text), "MESSAGE_CREATE");
        assert_eq!(data(text, &envelope), Some(r#"{"content":"hi","id":"1"}"#));
    }

    // docs/connection.md#payload-envelope: op 11 has no `d` at all; s and t are null.
    #[test]
    fn heartbeat_ack_without_d() {
        let envelope = scan(r#"{"op": 11}"#).unwrap();
        assert_eq!(envelope, Envelope { op: 11, seq: None, event: None, data: None });
        let text = r#" { "t" : null , "s" : null , "op" : 11 , "d" : null } "#;
        let envelope = scan(text).unwrap();
        assert_eq!((envelope.op, envelope.seq, envelope.event.clone()), (11, None, None));
        assert_eq!(data(text, &envelope), Some("null"));
    }

    #[test]
    fn escaped_keys_are_decoded_before_comparison() {
        let text = r#"{"o\u0070":0,"\u0073":1,"\u0074":"A\u0042","\u0064":[1]}"#;
        let envelope = scan(text).unwrap();
        assert_eq!((envelope.op, envelope.seq), (0, Some(1)));
        let event = envelope.event.clone().unwrap();
        assert!(event.escaped);
        assert_eq!(event.decode(text), "AB");
        assert_eq!(data(text, &envelope), Some("[1]"));
    }

    #[test]
    fn duplicate_envelope_keys_are_errors() {
        assert_eq!(scan(r#"{"op":1,"op":2}"#), Err(ScanError::DuplicateKey { key: "op", at: 8 }));
        assert!(matches!(scan(r#"{"op":1,"d":1,"\u0064":2}"#), Err(ScanError::DuplicateKey { key: "d", .. })));
        assert!(matches!(scan(r#"{"op":1,"t":null,"t":null}"#), Err(ScanError::DuplicateKey { key: "t", .. })));
        assert!(matches!(scan(r#"{"op":1,"s":null,"s":1}"#), Err(ScanError::DuplicateKey { key: "s", .. })));
        // Unknown keys may repeat.
        assert!(scan(r#"{"op":1,"x":1,"x":2}"#).is_ok());
    }

    #[test]
    fn envelope_field_types_are_checked() {
        assert_eq!(scan(r#"{"d":1}"#), Err(ScanError::MissingOp));
        assert_eq!(scan(r#"{}"#), Err(ScanError::MissingOp));
        for op in ["-1", "1.5", "1e2", "18446744073709551616", "\"1\"", "null", "-0"] {
            assert_eq!(scan(&format!(r#"{{"op":{op}}}"#)), Err(ScanError::OpNotUnsigned), "{op}");
        }
        assert_eq!(scan(r#"{"op":18446744073709551615}"#).unwrap().op, u64::MAX);
        assert_eq!(scan(r#"{"op":0,"s":"1"}"#), Err(ScanError::SeqNotUnsigned));
        assert_eq!(scan(r#"{"op":0,"t":1}"#), Err(ScanError::EventNotString));
        assert_eq!(scan(r#"{"op":0,"t":"\ud800"}"#), Err(ScanError::LoneSurrogate { at: 13 }));
        assert_eq!(scan(r#"{"op":0,"t":"\udc00"}"#), Err(ScanError::LoneSurrogate { at: 13 }));
        assert!(scan(r#"{"op":0,"t":"\ud83d\ude00"}"#).is_ok());
        // Lone surrogates are valid JSON elsewhere.
        assert!(scan(r#"{"op":0,"d":"\ud800","\udc00":1}"#).is_ok());
    }

    #[test]
    fn malformed_json_is_rejected() {
        let cases = [
            "",
            " ",
            "[]",
            "1",
            "\"op\"",
            "{",
            "{\"op\":1",
            "{\"op\":1,}",
            "{\"op\" 1}",
            "{\"op\":1}}",
            "{\"op\":1} x",
            "{\"op\":1,\"d\":\"abc}",
            "{\"op\":1,\"d\":\"\\x\"}",
            "{\"op\":1,\"d\":\"\\u12\"}",
            "{\"op\":1,\"d\":\"\\u12g4\"}",
            "{\"op\":1,\"d\":01}",
            "{\"op\":1,\"d\":-}",
            "{\"op\":1,\"d\":1.}",
            "{\"op\":1,\"d\":.5}",
            "{\"op\":1,\"d\":1e}",
            "{\"op\":1,\"d\":1e+}",
            "{\"op\":1,\"d\":[1,]}",
            "{\"op\":1,\"d\":{\"a\":1,}}",
            "{\"op\":1,\"d\":{\"a\"}}",
            "{\"op\":1,\"d\":{1:1}}",
            "{\"op\":1,\"d\":\"a\u{1}b\"}",
            "{\"op\":1,\"d\":\"tab\there\"}",
            "{\"op\":1,\"d\":tru}",
            "{\"op\":1,\"d\":nul}",
            "{\"op\":1,\"d\":True}",
            "{\"op\":1,\"d\":[}",
            "{\"op\":1,\"d\":[1}",
            "{\"op\":1,\"d\":{]}",
            "{\"op\":1,\"d\":[1 2]}",
            "{\"op\":1 \"d\":1}",
            "{\"op\":1,,\"d\":1}",
            "{\"op\":1,\"d\":+1}",
            "{\"op\":1,\"d\":0x1}",
            "{\"op\":1,\"d\":NaN}",
            "{\"op\":1,\"d\":'a'}",
            "{\"op\":1,\"d\":\u{a0}1}",
            "{\"op\":1,\"d\":1}\u{0}",
            "{\"op\":1,\"d\":[\"\\\"]}",
        ];
        for case in cases {
            assert!(scan(case).is_err(), "{case:?} must be rejected");
        }
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let ok = format!(r#"{{"op":0,"d":{}{}}}"#, "[".repeat(1023), "]".repeat(1023));
        assert!(scan(&ok).is_ok());
        let deep = format!(r#"{{"op":0,"d":{}{}}}"#, "[".repeat(1024), "]".repeat(1024));
        assert_eq!(scan(&deep), Err(ScanError::TooDeep));
        let unclosed = format!(r#"{{"op":0,"d":{}"#, "[".repeat(100_000));
        assert_eq!(scan(&unclosed), Err(ScanError::TooDeep));
        let objects = format!(r#"{{"op":0,"d":{}1{}}}"#, r#"{"a":"#.repeat(1000), "}".repeat(1000));
        assert!(scan(&objects).is_ok());
    }

    #[test]
    fn whitespace_everywhere_is_accepted() {
        let text = " \n{ \"op\" :\t1 ,\r\n \"d\" : [ 1 , { \"a\" : [ ] , \"b\" : { } } , \"x\" ] , \"s\" : 5 } \n";
        let envelope = scan(text).unwrap();
        assert_eq!((envelope.op, envelope.seq), (1, Some(5)));
        assert_eq!(data(text, &envelope), Some(r#"[ 1 , { "a" : [ ] , "b" : { } } , "x" ]"#));
    }

    #[test]
    fn string_scanning_finds_specials_at_every_offset() {
        for len in 0..40 {
            for special in ["\"", "\\n", "\u{1f}"] {
                let text = format!("{{\"op\":1,\"d\":\"{}{}\"}}", "é".repeat(len / 2) + &"a".repeat(len % 2), special);
                let result = scan(&text);
                if special == "\u{1f}" {
                    assert!(matches!(result, Err(ScanError::ControlCharacter { .. })), "{text:?}");
                } else if special == "\"" {
                    assert!(result.is_err(), "{text:?}");
                } else {
                    assert!(result.is_ok(), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn word_and_bytewise_string_search_agree() {
        let mut text = Vec::new();
        for n in 0..300u32 {
            text.push(match n % 37 {
                0 => b'"',
                5 => b'\\',
                11 => 0x1f,
                13 => 0x7f,
                17 => 0x20,
                19 => 0xc3,
                _ => b'a' + (n % 26) as u8,
            });
        }
        for start in 0..text.len() {
            let expected = find_special_bytewise(&text, start);
            assert_eq!(find_special(&text, start), expected);
        }
    }

    #[test]
    fn decode_resolves_every_escape() {
        let text = r#"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00x\ud800\u0041\udc00\q"#;
        let span = StrSpan { range: 0..text.len(), escaped: true };
        assert_eq!(span.decode(text), "\"\\/\u{8}\u{c}\n\r\té😀x\u{fffd}A\u{fffd}\\q");
        let plain = StrSpan { range: 0..3, escaped: false };
        assert!(matches!(plain.decode("abcd"), Cow::Borrowed("abc")));
        let outside = StrSpan { range: 2..10, escaped: true };
        assert_eq!(outside.decode("abc"), "");
        let truncated = StrSpan { range: 0..4, escaped: true };
        assert_eq!(truncated.decode(r"a\u1"), r"a\u1");
    }
}
