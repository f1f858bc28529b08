//! What a client child process measures and prints (shared with `ours-stock`
//! and `twilight-stock`).

#![allow(dead_code)] // `ours-stock` and `twilight-stock` use only part of it

use std::time::Instant;

use crate::compression::Codec;

/// Counts dispatches as a consumer receives them and times the window from
/// the first dispatch after READY to the last one.
pub struct Meter {
    /// Dispatches to receive in total, READY included.
    expect: u64,
    count: u64,
    bytes: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Meter {
    pub fn new(expect: u64) -> Meter {
        Meter { expect, count: 0, bytes: 0, first: None, last: None }
    }

    /// Records one dispatch of `len` bytes; true once all expected arrived.
    #[inline]
    pub fn dispatch(&mut self, len: usize) -> bool {
        self.count += 1;
        self.bytes += len as u64;
        // Dispatch 1 is READY; the clock starts at dispatch 2.
        if self.count == 2 {
            self.first = Some(Instant::now());
        }
        if self.count >= self.expect {
            self.last = Some(Instant::now());
            return true;
        }
        false
    }

    /// Prints the result line the parent parses, then exits without closing
    /// the connection gracefully (the server just sees EOF).
    pub fn finish(&self, how: &str) -> ! {
        let elapsed = match (self.first, self.last) {
            (Some(first), Some(last)) => last.duration_since(first).as_nanos(),
            _ => 0,
        };
        println!(
            "RESULT count={} bytes={} window_ns={} vmhwm_kb={} consumed_via={}",
            self.count,
            self.bytes,
            elapsed,
            vm_hwm_kb(),
            how
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(0)
    }
}

/// Peak resident set size of this process (VmHWM), in KiB.
pub fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:").and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// Parsed arguments of `client <kind> --port P --expect N --compression zlib|zstd|none`.
pub struct ClientArgs {
    pub kind: String,
    pub port: u16,
    pub expect: u64,
    /// Compression the parent asked for (twilight decides at compile time).
    pub codec: Codec,
}

impl ClientArgs {
    /// Parses `args` after the `client` word.
    pub fn parse(mut args: impl Iterator<Item = String>) -> ClientArgs {
        let kind = args.next().expect("client kind");
        let mut parsed = ClientArgs { kind, port: 0, expect: 0, codec: Codec::None };
        while let Some(flag) = args.next() {
            let value = args.next().unwrap_or_else(|| panic!("{flag} needs a value"));
            match flag.as_str() {
                "--port" => parsed.port = value.parse().expect("port"),
                "--expect" => parsed.expect = value.parse().expect("expect"),
                "--compression" => {
                    parsed.codec = Codec::parse(&value).unwrap_or_else(|| panic!("unknown compression {value}"))
                }
                other => panic!("unknown client flag {other}"),
            }
        }
        parsed
    }
}
