//! Gateway URLs (`docs/connection.md#gateway-url`,
//! `docs/connection.md#resume-url`, `docs/edge-cases.md#resume-url-query`,
//! `docs/edge-cases.md#unusable-resume-url`): the base URL and
//! `resume_gateway_url` both get
//! `v=10&encoding=json[&compress=zlib-stream|zstd-stream]`.

use super::compression::Compression;

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
    if let Some(value) = compression.query_value() {
        out.push_str("&compress=");
        out.push_str(value);
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

/// Which hosts a `resume_gateway_url` from READY may name ([`Config::resume_hosts`](super::Config::resume_hosts)).
///
/// The Resume carries the bot token, so the URL is checked before it is
/// used: it may never use a weaker scheme than the base URL (`ws://` after
/// `wss://`), and by default its host must be Discord's (`discord.gg` and
/// its subdomains) when the base URL is Discord's gateway, or exactly the
/// base URL's host otherwise. A URL that
/// fails either check is dropped and the session resumes through the base
/// URL, as for an unusable one (`docs/edge-cases.md#unusable-resume-url`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ResumeHosts {
    /// Discord's domain for Discord's gateway, else the base host (default).
    #[default]
    SameDomain,
    /// Any host, for gateway proxies that hand out their own resume URLs.
    /// The scheme check still applies.
    Any,
}

/// Why a resume URL is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResumeRefusal {
    /// `ws://` after a `wss://` base URL: the token would travel in clear text.
    #[error("it uses ws:// after a wss:// base URL")]
    WeakerScheme,
    /// A host outside the base URL's domain.
    #[error("its host is outside the base URL's domain (Config::resume_hosts)")]
    ForeignHost,
}

/// Checks a built resume URL against the built base URL.
pub(crate) fn check_resume_url(base: &str, resume: &str, hosts: ResumeHosts) -> Result<(), ResumeRefusal> {
    let (Some((base_tls, base_host)), Some((resume_tls, resume_host))) =
        (scheme_and_host(base), scheme_and_host(resume))
    else {
        return Err(ResumeRefusal::ForeignHost);
    };
    if base_tls && !resume_tls {
        return Err(ResumeRefusal::WeakerScheme);
    }
    if hosts == ResumeHosts::Any {
        return Ok(());
    }
    let domain = domain_of(&base_host);
    let inside = resume_host == domain
        || resume_host.strip_suffix(domain).is_some_and(|sub| sub.ends_with('.') && sub.len() > 1);
    if inside {
        Ok(())
    } else {
        Err(ResumeRefusal::ForeignHost)
    }
}

/// `(is wss, lowercase host without port or user info)` of a built URL,
/// read by [`endpoint`], the parser the connection itself uses, so the host
/// checked is the host connected to.
fn scheme_and_host(url: &str) -> Option<(bool, String)> {
    let (tls, host, _) = endpoint(url)?;
    // `discord.gg.` is `discord.gg`; an empty label is no host at all.
    let host = host.strip_suffix('.').unwrap_or(host);
    (!host.is_empty() && !host.split('.').any(str::is_empty)).then(|| (tls, host.to_ascii_lowercase()))
}

/// Where a built `ws://host[:port]/…` or `wss://host[:port]/…` URL
/// connects: `(is wss, host, port)`, the host without user info or the
/// brackets of an IPv6 literal, the port the scheme's default (80, 443)
/// when none is given. `None` for another scheme, an empty host, or a port
/// that is not a number up to 65535.
pub(crate) fn endpoint(url: &str) -> Option<(bool, &str, u16)> {
    let (tls, authority, _) = split(url)?;
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().ok()?),
            None => (authority, default_port),
        }
    };
    (!host.is_empty()).then_some((tls, host, port))
}

/// What follows the authority of a `ws://` or `wss://` URL, without its
/// fragment: its path and query (`/gateway?v=10`, `?v=10`, or empty), as
/// the WebSocket handshake's request line sends them; the authority ends
/// where [`endpoint`] ends it.
pub(crate) fn path_and_query(url: &str) -> Option<&str> {
    split(url).map(|(_, _, rest)| rest)
}

/// A `ws://` or `wss://` URL as `(is wss, authority, path and query)`, the
/// fragment dropped: the authority runs to the first `/` or `?`.
fn split(url: &str) -> Option<(bool, &str, &str)> {
    let (tls, rest) =
        if let Some(rest) = url.strip_prefix("wss://") { (true, rest) } else { (false, url.strip_prefix("ws://")?) };
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority, after) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    Some((tls, authority, after))
}

/// The hosts a resume URL may name under [`ResumeHosts::SameDomain`]:
/// Discord's gateway domain for its own gateway, else exactly the base
/// host (without a public-suffix list, "the domain" of an arbitrary host
/// cannot be told safely: `mybot.fly.dev` and `attacker.fly.dev` share one).
fn domain_of(host: &str) -> &str {
    if host == "gateway.discord.gg" || host.ends_with(".discord.gg") {
        "discord.gg"
    } else {
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host check reads a URL exactly as the connection does: a URL it
    /// lets through connects to a host inside Discord's domain, whatever
    /// the URL's shape (user info, extra colons, brackets, fragments).
    #[test]
    fn the_checked_host_is_the_host_connected_to() {
        let base = "wss://gateway.discord.gg/?v=10";
        let urls = [
            "wss://gateway-us-east1-c.discord.gg/",
            "wss://gateway.discord.gg:1:443/",
            "wss://evil.com:443@gateway.discord.gg/",
            "wss://gateway.discord.gg@evil.com/",
            "wss://gateway.discord.gg#@evil.com/",
            "wss://gateway.discord.gg?@evil.com/",
            "wss://[gateway.discord.gg]evil.com/",
            "wss://[evil.com]/",
            "wss://evil.com/.discord.gg",
            "wss://evil.com:443/gateway.discord.gg",
            "wss://gateway.discord.gg.:8443/",
            "wss://GATEWAY.Discord.GG/",
        ];
        let mut passed = 0;
        for url in urls {
            if check_resume_url(base, url, ResumeHosts::SameDomain).is_ok() {
                passed += 1;
                let (_, host, _) = endpoint(url).unwrap();
                let host = host.trim_end_matches('.').to_ascii_lowercase();
                assert!(host == "discord.gg" || host.ends_with(".discord.gg"), "{url} connects to {host}");
            }
        }
        assert_eq!(passed, 6, "the URLs that connect to a Discord host pass");
        // Read by the first colon, this one used to pass the check while
        // the connection went to the host `gateway.discord.gg:1`.
        assert_eq!(
            check_resume_url(base, "wss://gateway.discord.gg:1:443/", ResumeHosts::SameDomain),
            Err(ResumeRefusal::ForeignHost)
        );
    }

    #[test]
    fn resume_urls_are_checked_against_the_base_url() {
        let base = "wss://gateway.discord.gg/?v=10&encoding=json";
        let check = |resume: &str| check_resume_url(base, resume, ResumeHosts::SameDomain);
        assert_eq!(check("wss://gateway-us-east1-c.discord.gg/?v=10&encoding=json"), Ok(()));
        assert_eq!(check("wss://discord.gg/"), Ok(()));
        assert_eq!(check("ws://gateway-us-east1-c.discord.gg/"), Err(ResumeRefusal::WeakerScheme));
        assert_eq!(check("wss://evil.example.com/"), Err(ResumeRefusal::ForeignHost));
        assert_eq!(check("wss://notdiscord.gg/"), Err(ResumeRefusal::ForeignHost));
        assert_eq!(check("wss://discord.gg.evil.com/"), Err(ResumeRefusal::ForeignHost));
        assert_eq!(check("wss://user@evil.com:443/"), Err(ResumeRefusal::ForeignHost));
        assert_eq!(check("wss://GATEWAY.Discord.GG:443/"), Ok(()));
        let any = |resume: &str| check_resume_url(base, resume, ResumeHosts::Any);
        assert_eq!(any("wss://proxy.example.com/"), Ok(()));
        assert_eq!(any("ws://proxy.example.com/"), Err(ResumeRefusal::WeakerScheme), "the scheme check stays");
        // A plain-text base (a local proxy, the simulator) allows either scheme on its own host.
        let local = "ws://127.0.0.1:8765/?v=10";
        assert_eq!(check_resume_url(local, "ws://127.0.0.1:9000/", ResumeHosts::SameDomain), Ok(()));
        assert_eq!(check_resume_url(local, "wss://127.0.0.1/", ResumeHosts::SameDomain), Ok(()));
        assert_eq!(
            check_resume_url(local, "ws://127.0.0.2/", ResumeHosts::SameDomain),
            Err(ResumeRefusal::ForeignHost)
        );
        assert_eq!(check_resume_url("ws://[::1]:1/", "ws://[::1]:2/", ResumeHosts::SameDomain), Ok(()));
        // Trailing dots are the same host; empty labels are no host.
        assert_eq!(check("wss://gateway-us-east1-c.discord.gg./"), Ok(()));
        assert_eq!(
            check_resume_url("wss://discord.gg./", "wss://evil.gg./", ResumeHosts::SameDomain),
            Err(ResumeRefusal::ForeignHost)
        );
        assert_eq!(check("wss://evil..discord.gg/"), Err(ResumeRefusal::ForeignHost));
        // Another base URL (a proxy, a custom gateway): its own host only,
        // since a shared suffix (`fly.dev`, `co.uk`) says nothing.
        let custom = "wss://mybot.fly.dev/?v=10";
        assert_eq!(check_resume_url(custom, "wss://mybot.fly.dev:8443/", ResumeHosts::SameDomain), Ok(()));
        assert_eq!(
            check_resume_url(custom, "wss://attacker.fly.dev/", ResumeHosts::SameDomain),
            Err(ResumeRefusal::ForeignHost)
        );
        assert_eq!(
            check_resume_url("wss://example.co.uk/", "wss://evil.co.uk/", ResumeHosts::SameDomain),
            Err(ResumeRefusal::ForeignHost)
        );
    }

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
        // docs/edge-cases.md#resume-url-query: resume_gateway_url arrives with
        // no query; resuming needs the same v/encoding/compress.
        let url = gateway_url("wss://gateway-us-east1-c.discord.gg", Compression::ZlibStream).unwrap();
        assert_eq!(url, "wss://gateway-us-east1-c.discord.gg/?v=10&encoding=json&compress=zlib-stream");
        let url = gateway_url("wss://gateway-us-east1-c.discord.gg?compress=zlib-stream", Compression::ZstdStream);
        assert_eq!(url.unwrap(), "wss://gateway-us-east1-c.discord.gg/?v=10&encoding=json&compress=zstd-stream");
    }

    #[test]
    fn callers_query_is_merged_and_ours_wins() {
        let url = gateway_url("ws://127.0.0.1:9000/gw?v=6&token_hint=x&encoding=etf#frag", Compression::None).unwrap();
        assert_eq!(url, "ws://127.0.0.1:9000/gw?v=10&encoding=json&token_hint=x");
    }

    #[test]
    fn unusable_urls_are_errors_not_panics() {
        // docs/edge-cases.md#unusable-resume-url: treat resume_gateway_url as untrusted input.
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
