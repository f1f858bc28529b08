//! discord-gateway-stream as a bot builds it (see Cargo.toml):
//! `ours-stock client ours-tokio|ours-async-std|ours-typed|ours-strict ...`.

#[path = "../../src/clients.rs"]
mod clients;
#[path = "../../src/compression.rs"]
mod compression;
#[path = "../../src/report.rs"]
mod report;

fn main() {
    let mut args = std::env::args().skip(1);
    assert_eq!(
        args.next().as_deref(),
        Some("client"),
        "usage: ours-stock client ours-tokio|ours-async-std|ours-typed|ours-strict --port P --expect N --compression C"
    );
    let args = report::ClientArgs::parse(args);
    clients::run_kind(&args);
}
