//! Envelope scanner (gateway-protocol §2): finds `op`, `s`, `t` and the exact
//! byte span of `d` in one payload without building a JSON tree.
//!
//! CONTRACT (implemented by the codec work; keep these signatures):
//! - input is `&str` (the caller has already validated UTF-8 once);
//! - the whole text must be exactly one JSON object (surrounding JSON
//!   whitespace allowed) and valid JSON throughout, `d` included, or the scan
//!   returns `Err` - never a panic, never an index out of bounds;
//! - keys may come in any order, with any JSON whitespace, keys and values may
//!   contain escapes (`"o\u0070"` is the key `op`); unknown keys are skipped;
//!   a duplicated `op`, `s`, `t` or `d` is an error (serde_json agrees);
//! - `op` must be an unsigned integer (fits u64), `s` an unsigned integer or
//!   null, `t` a string or null; `d` any value (missing = `None`).

use std::ops::Range;

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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// Placeholder until the scanner lands.
    #[error("invalid JSON at byte {0}")]
    Syntax(usize),
}

impl Envelope {
    /// Scans one payload.
    pub fn scan(_text: &str) -> Result<Envelope, ScanError> {
        Err(ScanError::Syntax(0))
    }
}

impl StrSpan {
    /// The string's decoded contents (escapes resolved) within `text`.
    pub fn decode<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        std::borrow::Cow::Borrowed(text.get(self.range.clone()).unwrap_or_default())
    }
}
