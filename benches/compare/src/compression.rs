//! The transport compressions the benches replay (shared by `compare`,
//! `heap`, `ours-stock`, `twilight-stock` and `twilight-heap` through `#[path]`).

#![allow(dead_code)] // each binary uses part of it

/// Which `compress=` a connection runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// `compress=zlib-stream`: one zlib stream per connection, a sync flush
    /// (`00 00 ff ff`) per payload.
    Zlib,
    /// `compress=zstd-stream`: one zstd frame per connection (window log
    /// 18, as Discord sends), a `ZSTD_e_flush` per payload.
    Zstd,
    /// Plain JSON text frames.
    None,
}

impl Codec {
    /// Table order: zlib, zstd, none.
    pub const ALL: [Codec; 3] = [Codec::Zlib, Codec::Zstd, Codec::None];

    /// The command-line name (`--compression`, a child's `--compression`).
    pub fn arg(self) -> &'static str {
        match self {
            Codec::Zlib => "zlib",
            Codec::Zstd => "zstd",
            Codec::None => "none",
        }
    }

    /// `zlib-stream`, `zstd-stream` or `none` (the tables' compression column).
    pub fn label(self) -> &'static str {
        match self {
            Codec::Zlib => "zlib-stream",
            Codec::Zstd => "zstd-stream",
            Codec::None => "none",
        }
    }

    /// Parses a single [`Codec::arg`].
    pub fn parse(name: &str) -> Option<Codec> {
        Codec::ALL.into_iter().find(|codec| codec.arg() == name)
    }

    /// A `--compression` value of the parent binaries: one codec, `both`
    /// (zlib and none, as before zstd was added) or `all`.
    pub fn parse_set(name: &str) -> Option<Vec<Codec>> {
        match name {
            "both" => Some(vec![Codec::Zlib, Codec::None]),
            "all" => Some(Codec::ALL.to_vec()),
            one => Codec::parse(one).map(|codec| vec![codec]),
        }
    }

    /// The compression a client's URL query asks for (`None` without a
    /// `compress=` parameter); `Err` with the value if it is another one.
    pub fn asked_in(query: &str) -> Result<Codec, String> {
        let mut asked = Codec::None;
        for value in query.split('&').filter_map(|pair| pair.strip_prefix("compress=")) {
            asked = match value {
                "zlib-stream" => Codec::Zlib,
                "zstd-stream" => Codec::Zstd,
                other => return Err(other.to_owned()),
            };
        }
        Ok(asked)
    }

    /// Compressed (binary frames) rather than text frames.
    pub fn compressed(self) -> bool {
        self != Codec::None
    }
}
