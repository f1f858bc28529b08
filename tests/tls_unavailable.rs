//! A `wss://` gateway URL in a build without TLS is refused up front
//! : otherwise every connect would fail and be retried forever.
//! Runs only without the `rustls` feature: `.ci/run` builds it that way
//! (`cargo test --no-default-features --features zlib --test tls_unavailable`).
#![cfg(not(feature = "rustls"))]

use discord_gateway_stream::transport::TlsError;
use discord_gateway_stream::{Config, Intents, Shard, ShardError};

#[test]
fn a_wss_url_without_the_rustls_feature_is_refused() {
    for url in ["wss://gateway.discord.gg", "  WSS://gateway.discord.gg/?v=10"] {
        let result = Shard::new(Config::new("t", Intents::GUILDS).base_url(url));
        assert!(matches!(result, Err(ShardError::Tls(TlsError::Unavailable))), "{url}");
    }
    // The default URL is Discord's, over TLS.
    let result = Shard::new(Config::new("t", Intents::GUILDS));
    assert!(matches!(result, Err(ShardError::Tls(TlsError::Unavailable))));
    // Plain ws:// (a local proxy) is fine.
    assert!(Shard::new(Config::new("t", Intents::GUILDS).base_url("ws://127.0.0.1:1")).is_ok());
}
