//! Byte streams under the WebSocket: who opens the TCP connection, and TLS.
//!
//! The shard asks a [`Connector`] for a byte stream to `host:port`, layers
//! TLS on it for `wss://` (futures-rustls, webpki roots, ring provider), then
//! runs the WebSocket handshake with async-tungstenite. The default
//! connector uses async-std's TCP; on tokio or smol plug in your own.
//!
//! A connector returns any `futures-io` stream ([`AsyncStream`]); pass it to
//! [`Shard::with_connector`](crate::Shard::with_connector) or
//! [`ShardGroupBuilder::connector`](crate::ShardGroupBuilder::connector).
//! The repository's `examples/tokio.rs` wraps tokio's `TcpStream` with
//! tokio-util's compat layer. The default connector (feature `async-std`)
//! turns on TCP keepalive: the first probe after 60 s idle, then every 10 s,
//! the backstop for a half-open connection; custom connectors should do the
//! same (`examples/tokio.rs` does, through socket2).
//!
//! async-std is discontinued upstream, so nothing depends on it but this
//! optional default connector: the protocol core is runtime-free, the driver
//! uses async-tungstenite over any `futures-io` stream and `async-io` timers
//! (runtime-agnostic: its own reactor thread when no async-io executor runs).
//! Without the `rustls` feature a `wss://` URL is refused up front
//! ([`ShardError::TlsUnavailable`](crate::ShardError::TlsUnavailable)).

use std::future::Future;
use std::io;
use std::pin::Pin;

use futures::io::{AsyncRead, AsyncWrite};

/// A boxed byte stream: what a connector returns.
pub type BoxedStream = Box<dyn AsyncStream>;

/// A future that resolves to a connected byte stream.
pub type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<BoxedStream>> + Send>>;

/// Any `futures-io` byte stream that can be sent between threads.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncStream for T {}

/// Where to connect, parsed from a gateway URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port (default 443 for `wss`, 80 for `ws`).
    pub port: u16,
    /// Whether the URL is `wss://` (the shard adds TLS on top of the stream).
    pub tls: bool,
}

impl Target {
    /// Parses `ws://host[:port]/…` or `wss://host[:port]/…`.
    pub fn from_url(url: &str) -> Option<Target> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("wss://") {
            (true, rest)
        } else {
            (false, url.strip_prefix("ws://")?)
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
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
        if host.is_empty() {
            return None;
        }
        Some(Target { host: host.to_owned(), port, tls })
    }
}

/// Opens byte streams for the shard. Implemented for any
/// `Fn(Target) -> impl Future<Output = io::Result<S>>` closure.
///
/// Tokio, through tokio-util's compat layer, with the TCP settings of the
/// default connector ([`AsyncStdConnector`]: no Nagle delay, keepalive):
///
/// ```ignore
/// use tokio_util::compat::TokioAsyncReadCompatExt;
/// let connector = |target: Target| async move {
///     let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port)).await?;
///     tcp.set_nodelay(true)?;
///     let keepalive = socket2::TcpKeepalive::new()
///         .with_time(Duration::from_secs(60))
///         .with_interval(Duration::from_secs(10));
///     socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive)?;
///     Ok(tcp.compat())
/// };
/// ```
pub trait Connector: Send + Sync + 'static {
    /// Connects to `target` (plain TCP; TLS is added by the shard for `wss`).
    fn connect(&self, target: Target) -> ConnectFuture;
}

impl<F, Fut, S> Connector for F
where
    F: Fn(Target) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<S>> + Send + 'static,
    S: AsyncStream,
{
    fn connect(&self, target: Target) -> ConnectFuture {
        let connecting = self(target);
        Box::pin(async move { Ok(Box::new(connecting.await?) as BoxedStream) })
    }
}

/// The default connector: async-std TCP with `TCP_NODELAY` and TCP
/// keepalive.
///
/// Keepalive probes start after 60 s without traffic (longer than Discord's
/// 41.25 s heartbeat interval, so a healthy connection never sends one) and
/// repeat every 10 s (where the platform lets that be set); the system's
/// probe count decides when the connection is declared dead (9 on Linux:
/// after about 2.5 minutes). They are the backstop for a peer gone without
/// a FIN or RST while nothing else would notice, e.g. before Hello starts
/// the heartbeat.
#[cfg(feature = "async-std")]
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdConnector;

/// Idle time before the first keepalive probe.
#[cfg(feature = "async-std")]
const KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(60);
/// Time between unanswered keepalive probes, where it can be set.
#[cfg(feature = "async-std")]
#[cfg_attr(not(any(target_os = "linux", target_os = "macos", target_os = "windows")), allow(dead_code))]
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(feature = "async-std")]
impl AsyncStdConnector {
    async fn tcp(target: &Target) -> io::Result<async_std::net::TcpStream> {
        let stream = async_std::net::TcpStream::connect((target.host.as_str(), target.port)).await?;
        stream.set_nodelay(true)?;
        set_keepalive(socket2::SockRef::from(&stream));
        Ok(stream)
    }
}

#[cfg(feature = "async-std")]
impl Connector for AsyncStdConnector {
    fn connect(&self, target: Target) -> ConnectFuture {
        Box::pin(async move { Ok(Box::new(AsyncStdConnector::tcp(&target).await?) as BoxedStream) })
    }
}

/// Turns TCP keepalive on. A platform that refuses is logged, not fatal: the
/// gateway heartbeat still finds a dead connection once it runs.
#[cfg(feature = "async-std")]
fn set_keepalive(socket: socket2::SockRef<'_>) {
    let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE);
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
    let keepalive = keepalive.with_interval(KEEPALIVE_INTERVAL);
    if let Err(error) = socket.set_tcp_keepalive(&keepalive) {
        tracing::warn!(%error, "could not turn TCP keepalive on");
    }
}

/// The connector used when none is set: [`AsyncStdConnector`], or none
/// without the `async-std` feature.
pub(crate) fn default_connector() -> Option<std::sync::Arc<dyn Connector>> {
    #[cfg(feature = "async-std")]
    return Some(std::sync::Arc::new(AsyncStdConnector));
    #[cfg(not(feature = "async-std"))]
    return None;
}

/// Wraps `stream` in TLS for `host`.
#[cfg(feature = "rustls")]
pub(crate) async fn tls(host: &str, stream: BoxedStream) -> io::Result<BoxedStream> {
    use std::sync::{Arc, OnceLock};

    use futures_rustls::rustls::{self, pki_types::ServerName};

    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    let config = CONFIG
        .get_or_init(|| {
            // Explicit ring provider: no process-wide default is assumed or installed.
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|builder| Arc::new(builder.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(io::Error::other)?;
    let name = ServerName::try_from(host.to_owned()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let stream = futures_rustls::TlsConnector::from(config).connect(name, stream).await?;
    Ok(Box::new(stream))
}

/// Without the `rustls` feature, `wss://` cannot be used.
#[cfg(not(feature = "rustls"))]
pub(crate) async fn tls(_host: &str, _stream: BoxedStream) -> io::Result<BoxedStream> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "wss:// needs the `rustls` feature"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_from_gateway_urls() {
        let t = |url| Target::from_url(url);
        assert_eq!(
            t("wss://gateway.discord.gg/?v=10&encoding=json"),
            Some(Target { host: "gateway.discord.gg".into(), port: 443, tls: true })
        );
        assert_eq!(t("ws://127.0.0.1:9000/?v=10"), Some(Target { host: "127.0.0.1".into(), port: 9000, tls: false }));
        assert_eq!(t("ws://[::1]:80/"), Some(Target { host: "::1".into(), port: 80, tls: false }));
        for bad in ["http://x", "ws://", "ws://:80", "ws://h:99999", "ws://[::1", "ws://[::1]x"] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[cfg(feature = "async-std")]
    #[test]
    fn the_default_connector_turns_tcp_keepalive_on() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = Target { host: "127.0.0.1".into(), port: listener.local_addr().unwrap().port(), tls: false };
        let stream = async_io::block_on(AsyncStdConnector::tcp(&target)).unwrap();
        let socket = socket2::SockRef::from(&stream);
        assert!(socket.keepalive().unwrap(), "SO_KEEPALIVE");
        assert!(socket.tcp_nodelay().unwrap(), "TCP_NODELAY");
        // Read back through socket2's `all` feature, which only the tests enable.
        #[cfg(target_os = "linux")]
        {
            assert_eq!(socket.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
            assert_eq!(socket.tcp_keepalive_interval().unwrap(), KEEPALIVE_INTERVAL);
        }
    }
}
