//! twilight-gateway as shipped (see Cargo.toml), with its `zlib` or its
//! `zstd` feature: `twilight-stock client twilight|twilight-equivalent|twilight-typed ...`.

#[path = "../../src/compression.rs"]
mod compression;
#[path = "../../src/report.rs"]
mod report;
#[path = "../../src/twilight_client.rs"]
mod twilight_client;

fn main() {
    let mut args = std::env::args().skip(1);
    assert_eq!(
        args.next().as_deref(),
        Some("client"),
        "usage: twilight-stock client twilight|twilight-equivalent|twilight-typed --port P --expect N"
    );
    let args = report::ClientArgs::parse(args);
    twilight_client::run_kind(&args);
}
