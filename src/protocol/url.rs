//! Gateway URLs (gateway-protocol §1.1, §1.3, E12, E24): the base URL and
//! `resume_gateway_url` both get `v=10&encoding=json[&compress=zlib-stream]`.

use super::config::Compression;

/// Why a gateway URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The URL does not start with `ws://` or `wss://`.
    #[error("gateway URL must start with ws:// or wss://")]
    Scheme,
    /// No host after the scheme.
    #[error("gateway URL has no host")]
    MissingHost,
    /// Whitespace or control characters inside the URL.
    #[error("gateway URL contains whitespace or control characters")]
    InvalidCharacter,
}

/// Builds the URL to open: `url` with its path (default `/`), any query
/// parameters of the caller's own, and the protocol parameters this crate
/// requires (replacing any `v`, `encoding` or `compress` already there).
pub fn gateway_url(url: &str, compression: Compression) -> Result<String, UrlError> {
    let url = url.trim();
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError::InvalidCharacter);
    }
    let scheme_len = ["ws://", "wss://"]
        .iter()
        .find(|scheme| url.get(..scheme.len()).is_some_and(|head| head.eq_ignore_ascii_case(scheme)))
        .map(|scheme| scheme.len())
        .ok_or(UrlError::Scheme)?;
    let (scheme, rest) = url.split_at(scheme_len);
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority_and_path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = match authority_and_path.find('/') {
        Some(slash) => authority_and_path.split_at(slash),
        None => (authority_and_path, "/"),
    };
    if authority.is_empty() || authority.starts_with(':') || authority.ends_with('@') {
        return Err(UrlError::MissingHost);
    }
    let mut out = String::with_capacity(url.len() + 48);
    out.push_str(&scheme.to_ascii_lowercase());
    out.push_str(authority);
    out.push_str(path);
    out.push_str("?v=10&encoding=json");
    if compression == Compression::ZlibStream {
        out.push_str("&compress=zlib-stream");
    }
    let ours = |pair: &str| {
        let key = pair.split('=').next().unwrap_or_default();
        matches!(key, "v" | "encoding" | "compress")
    };
    for pair in query.split('&').filter(|pair| !pair.is_empty() && !ours(pair)) {
        out.push('&');
        out.push_str(pair);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_gets_path_and_query() {
        assert_eq!(
            gateway_url("wss://gateway.discord.gg", Compression::ZlibStream).unwrap(),
            "wss://gateway.discord.gg/?v=10&encoding=json&compress=zlib-stream"
        );
        assert_eq!(
            gateway_url("wss://gateway.discord.gg/", Compression::None).unwrap(),
            "wss://gateway.discord.gg/?v=10&encoding=json"
        );
    }

    #[test]
    fn resume_url_without_query_gets_the_same_query() {
        // E12: resume_gateway_url arrives with no query; resuming needs the same v/encoding/compress.
        let url = gateway_url("wss://gateway-us-east1-c.discord.gg", Compression::ZlibStream).unwrap();
        assert_eq!(url, "wss://gateway-us-east1-c.discord.gg/?v=10&encoding=json&compress=zlib-stream");
    }

    #[test]
    fn callers_query_is_merged_and_ours_wins() {
        let url = gateway_url("ws://127.0.0.1:9000/gw?v=6&token_hint=x&encoding=etf#frag", Compression::None).unwrap();
        assert_eq!(url, "ws://127.0.0.1:9000/gw?v=10&encoding=json&token_hint=x");
    }

    #[test]
    fn unusable_urls_are_errors_not_panics() {
        // E24: treat resume_gateway_url as untrusted input.
        for bad in [
            "",
            "https://gateway.discord.gg",
            "wss://",
            "wss:///path",
            "gateway.discord.gg",
            "wss://a b",
            "wss://o\nk",
            "ws",
            "wss://:443",
        ] {
            assert!(gateway_url(bad, Compression::None).is_err(), "{bad:?}");
        }
        assert_eq!(gateway_url("WSS://Host", Compression::None).unwrap(), "wss://Host/?v=10&encoding=json");
    }
}
