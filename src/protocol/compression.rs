//! Which transport compression a connection asks for (docs/compression.md).

/// Transport compression (docs/compression.md), chosen at run time.
///
/// The default is zlib-stream when the `zlib` feature is on (it is by
/// default), else none. The crate docs' "Compression" section (and, with the
/// measurements, the repository's `benches/README.md`) compares the three
/// (bytes on the wire, CPU per dispatch, memory per idle shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compression {
    /// `compress=zlib-stream`: one zlib stream per connection (feature `zlib`).
    #[cfg_attr(feature = "zlib", default)]
    ZlibStream,
    /// `compress=zstd-stream`: one zstd frame per connection, one payload
    /// per message (feature `zstd`).
    ZstdStream,
    /// Plain JSON text frames.
    #[cfg_attr(not(feature = "zlib"), default)]
    None,
}

impl Compression {
    /// The gateway URL's `compress` value, `None` for no compression.
    pub fn query_value(self) -> Option<&'static str> {
        match self {
            Compression::ZlibStream => Some("zlib-stream"),
            Compression::ZstdStream => Some("zstd-stream"),
            Compression::None => None,
        }
    }

    /// Whether this build can decode it (its cargo feature is on).
    pub fn is_available(self) -> bool {
        match self {
            Compression::ZlibStream => cfg!(feature = "zlib"),
            Compression::ZstdStream => cfg!(feature = "zstd"),
            Compression::None => true,
        }
    }
}
