//! Byte streams under the WebSocket: who opens the TCP connection, and TLS.
//!
//! The shard asks a [`Connector`] for a byte stream to `host:port`, layers
//! TLS on it for `wss://` (futures-rustls, ring provider; see [TLS](#tls)),
//! then runs the WebSocket handshake, and async-tungstenite carries the
//! frames from there.
//!
//! # WebSocket handshake
//!
//! The upgrade is the crate's own (RFC 6455, section 4.1): an HTTP/1.1
//! `GET` of the URL's path and query with `Host`, `Upgrade: websocket`,
//! `Connection: Upgrade`, `Sec-WebSocket-Version: 13` and a fresh random
//! `Sec-WebSocket-Key`, nothing else (no subprotocol, no extension). The
//! answer must be `101` with `Upgrade: websocket`, `Connection: upgrade`
//! and the matching `Sec-WebSocket-Accept`; its header may be at most
//! 16 KiB (read no further). Bytes the server sent after the header are
//! the WebSocket's first. Any other answer fails that connection attempt
//! with a [`HandshakeError`] inside the `io::Error`: the shard logs it and
//! reconnects with backoff, as for any connect failure.
//!
//! # Runtimes
//!
//! Without a connector set, a shard uses [`DefaultConnector`], which picks
//! one per connection:
//!
//! 1. [`TokioConnector`] (feature `tokio`) when the connection is opened
//!    inside a tokio runtime (the driver is polled by a tokio task or inside
//!    `block_on`). In a runtime built without its I/O driver (no
//!    `enable_io`) that connect fails instead of panicking and the same
//!    connection is made with [`AsyncIoConnector`]; later connections in
//!    that runtime go straight to async-io (logged once, as a warning);
//! 2. otherwise [`AsyncStdConnector`] (feature `async-std`);
//! 3. otherwise [`AsyncIoConnector`], which needs no feature and works under
//!    any executor (async-io runs its own reactor thread when no async-io
//!    executor drives it; tokio, smol and async-std are all fine).
//!
//! The choice is made at connect time, not from the features alone, so a
//! `tokio` feature switched on by another crate in the build never hands a
//! tokio socket to a shard driven outside a tokio runtime.
//!
//! "Inside a tokio runtime" means that one is entered on the thread polling
//! the connect (`tokio::runtime::Handle::try_current` succeeds); tokio
//! offers no way to tell a thread that runs a task or `block_on` from one
//! where a runtime is merely entered (`Runtime::enter`,
//! `Handle::enter`). So with a **current-thread** runtime entered on a
//! thread whose shard is polled by another executor (`futures::executor`,
//! async-io's `block_on`, smol, …), the tokio connector is picked but that
//! runtime's I/O driver only runs inside its own `block_on`: the socket
//! never connects, every attempt runs into the connect timeout and the
//! shard retries forever. In that setup give the shard the runtime-agnostic
//! connector, `Shard::with_connector(config, AsyncIoConnector)` (or
//! [`ShardGroupBuilder::connector`](crate::ShardGroupBuilder::connector)),
//! or poll the shard inside the runtime. A multi-thread runtime is not
//! affected (its worker threads drive its I/O).
//!
//! Every connector sets `TCP_NODELAY` and TCP keepalive (see
//! [`AsyncIoConnector`]). Timers are async-io's whatever the connector.
//!
//! # TLS
//!
//! `wss://` needs the `rustls` feature. The client configuration is, in
//! order of precedence:
//!
//! 1. the one given to [`ShardBuilder::tls_config`](crate::ShardBuilder::tls_config)
//!    or [`ShardGroupBuilder::tls_config`](crate::ShardGroupBuilder::tls_config),
//!    used as given (its roots, verifier, provider and protocol versions);
//! 2. with the `rustls-platform-verifier` feature, the platform's verifier;
//! 3. with `rustls-native-roots`, the operating system's root certificates;
//! 4. with `rustls-webpki-roots` (default), Mozilla's roots compiled in.
//!
//! Roots 2–4 are built once per process with the ring provider, TLS 1.2 and
//! 1.3, and ALPN `http/1.1`. There is no switch that turns verification off:
//! a configuration that accepts any certificate has to be written and passed
//! on purpose. A WebSocket handshake is HTTP/1.1, so a given configuration
//! must offer no ALPN protocol or `http/1.1` alone (else [`TlsError::Alpn`]);
//! it is not changed to add one (without ALPN a server speaks HTTP/1.1).
//!
//! Without the `rustls` feature a `wss://` URL is refused up front
//! ([`TlsError::Unavailable`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::io::{AsyncRead, AsyncWrite};
#[cfg(feature = "tokio")]
use futures_util::FutureExt;

#[cfg(feature = "rustls")]
pub use futures_rustls::rustls;

pub(crate) mod handshake;
mod sha1;

pub(crate) use handshake::client as websocket_handshake;
pub use handshake::HandshakeError;

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
        // The same reading as the resume URL's host check.
        let (tls, host, port) = crate::protocol::endpoint(url)?;
        Some(Target { host: host.to_owned(), port, tls })
    }
}

/// Opens byte streams for the shard. Implemented for any
/// `Fn(Target) -> impl Future<Output = io::Result<S>>` closure.
///
/// The built-in connectors cover tokio, async-std and any other executor
/// (see [the module docs](self#runtimes)); a custom one can, e.g., connect
/// through a proxy. Set `TCP_NODELAY` and keepalive as the built-in ones
/// do ([`AsyncIoConnector`]):
///
/// ```ignore
/// let connector = |target: Target| async move {
///     let tcp = my_runtime::TcpStream::connect((target.host.as_str(), target.port)).await?;
///     tcp.set_nodelay(true)?;
///     let keepalive = socket2::TcpKeepalive::new()
///         .with_time(Duration::from_secs(60))
///         .with_interval(Duration::from_secs(10));
///     socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive)?;
///     Ok(tcp)
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

/// tungstenite's read size, and the capacity its read buffer starts with.
/// Also the smallest buffer it allocates after a frame that a dispatch keeps
/// (see [`handshake::client`]). Smaller reads cost throughput (4 KiB: 0.4×
/// on a large uncompressed replay), larger ones only memory (benches/README.md).
pub(crate) const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Idle time before the first keepalive probe.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// Time between unanswered keepalive probes, where it can be set.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos", target_os = "windows")), allow(dead_code))]
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// What every built-in connector does to a new socket: no Nagle delay (a
/// heartbeat goes out at once), and TCP keepalive on. A platform that refuses
/// keepalive is logged, not fatal: the gateway heartbeat still finds a dead
/// connection once it runs.
///
/// On unix the options are set through rustix (already in the tree under
/// async-io, safe `AsFd` API), elsewhere through socket2.
#[cfg(unix)]
fn tune<S: std::os::fd::AsFd>(socket: &S) -> io::Result<()> {
    rustix::net::sockopt::set_tcp_nodelay(socket, true)?;
    if let Err(error) = keepalive(socket.as_fd()) {
        tracing::warn!(%error, "could not turn TCP keepalive on");
    }
    Ok(())
}

/// `SO_KEEPALIVE`, the idle time before the first probe where the platform
/// has it, and the probe interval on Linux and macOS.
#[cfg(unix)]
fn keepalive(socket: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    use rustix::net::sockopt;
    sockopt::set_socket_keepalive(socket, true)?;
    #[cfg(not(any(target_os = "haiku", target_os = "nto", target_os = "openbsd")))]
    sockopt::set_tcp_keepidle(socket, KEEPALIVE_IDLE)?;
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    sockopt::set_tcp_keepintvl(socket, KEEPALIVE_INTERVAL)?;
    Ok(())
}

/// See the unix version.
#[cfg(not(unix))]
fn tune<'s, S>(socket: &'s S) -> io::Result<()>
where
    socket2::SockRef<'s>: From<&'s S>,
{
    let socket = socket2::SockRef::from(socket);
    socket.set_tcp_nodelay(true)?;
    let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE);
    #[cfg(target_os = "windows")]
    let keepalive = keepalive.with_interval(KEEPALIVE_INTERVAL);
    if let Err(error) = socket.set_tcp_keepalive(&keepalive) {
        tracing::warn!(%error, "could not turn TCP keepalive on");
    }
    Ok(())
}

/// The runtime-agnostic connector: a non-blocking `std` socket on async-io's
/// reactor, with `TCP_NODELAY` and TCP keepalive. Needs no cargo feature.
///
/// Host names are resolved by the system resolver on a short-lived thread
/// (an IP address needs none). Lookups are shared process-wide: at most one
/// thread per host at a time, whose answer every connect to that host made
/// meanwhile waits for, and a successful answer is reused for 30 seconds
/// (a failure is not: the next connect looks up again). So a group of 1,000
/// shards starting, or reconnecting after an outage, resolves the gateway
/// once.
///
/// The addresses are then tried in the resolver's order with IPv6 and IPv4
/// alternating, each failure moving on to the next at once, and an address
/// that has not connected within 250 ms getting the next one tried beside
/// it (a simplified RFC 8305 "happy eyeballs"): an unreachable address (a
/// broken IPv6 route that drops packets) costs 250 ms, not the whole
/// connect timeout. The first connection made is kept, the other attempts
/// are closed. (tokio's and async-std's connectors resolve and try
/// addresses their runtime's way: one after the other.)
///
/// Keepalive probes start after 60 s without traffic (longer than Discord's
/// 41.25 s heartbeat interval, so a healthy connection never sends one) and
/// repeat every 10 s (where the platform lets that be set); the system's
/// probe count decides when the connection is declared dead (9 on Linux:
/// after about 2.5 minutes). They are the backstop for a peer gone without
/// a FIN or RST while nothing else would notice, e.g. before Hello starts
/// the heartbeat. The other built-in connectors set the same.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncIoConnector;

impl AsyncIoConnector {
    async fn tcp(target: &Target) -> io::Result<async_io::Async<std::net::TcpStream>> {
        let addresses = interleave(&resolve(target).await?);
        let stream = connect_any(&addresses, NEXT_ADDRESS_AFTER).await?;
        tune(stream.get_ref())?;
        Ok(stream)
    }
}

/// How long an address has to connect before the next one is tried beside
/// it (RFC 8305's recommended "connection attempt delay").
const NEXT_ADDRESS_AFTER: Duration = Duration::from_millis(250);

/// `addresses` in the resolver's order, address families alternating (RFC
/// 8305, section 4): a family that does not work here costs one attempt
/// delay, not one per address.
fn interleave(addresses: &[std::net::SocketAddr]) -> Vec<std::net::SocketAddr> {
    let Some(first) = addresses.first() else { return Vec::new() };
    let (same, other): (Vec<std::net::SocketAddr>, Vec<_>) =
        addresses.iter().partition(|a| a.is_ipv6() == first.is_ipv6());
    let (mut same, mut other) = (same.into_iter(), other.into_iter());
    let mut interleaved = Vec::with_capacity(addresses.len());
    loop {
        match (same.next(), other.next()) {
            (None, None) => return interleaved,
            (a, b) => interleaved.extend(a.into_iter().chain(b)),
        }
    }
}

/// Connects to the first of `addresses` that answers ("happy eyeballs",
/// RFC 8305, simplified): an attempt that fails starts the next address at
/// once, one with no answer within `stagger` gets the next address started
/// beside it; the first connection made wins and the other attempts are
/// dropped (their sockets closed). All failing, the last failure is the
/// error.
async fn connect_any(
    addresses: &[std::net::SocketAddr],
    stagger: Duration,
) -> io::Result<async_io::Async<std::net::TcpStream>> {
    use futures_util::future::Either;
    use futures_util::stream::{FuturesUnordered, StreamExt};

    let attempt = |address: std::net::SocketAddr| async move {
        (address, async_io::Async::<std::net::TcpStream>::connect(address).await)
    };
    let mut waiting = addresses.iter().copied();
    let mut attempts = FuturesUnordered::new();
    let mut last_error = None;
    loop {
        if attempts.is_empty() {
            match waiting.next() {
                Some(address) => attempts.push(attempt(address)),
                None => {
                    return Err(last_error
                        .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host name has no address")))
                }
            }
        }
        let next_after = if waiting.len() > 0 { async_io::Timer::after(stagger) } else { async_io::Timer::never() };
        let finished = match futures_util::future::select(attempts.next(), next_after).await {
            Either::Left((finished, _)) => finished,
            Either::Right(_) => None,
        };
        match finished {
            Some((_, Ok(stream))) => return Ok(stream),
            Some((address, Err(error))) => {
                tracing::debug!(%address, %error, "connect failed; trying the next address");
                last_error = Some(error);
            }
            None => tracing::debug!(?stagger, "no connection yet; trying the next address too"),
        }
        if let Some(address) = waiting.next() {
            attempts.push(attempt(address));
        }
    }
}

impl Connector for AsyncIoConnector {
    fn connect(&self, target: Target) -> ConnectFuture {
        Box::pin(async move { Ok(Box::new(AsyncIoConnector::tcp(&target).await?) as BoxedStream) })
    }
}

/// The addresses of `target`: an IP address as is, a host name through the
/// system resolver (see [`lookups`]).
async fn resolve(target: &Target) -> io::Result<Arc<[std::net::SocketAddr]>> {
    if let Ok(ip) = target.host.parse::<std::net::IpAddr>() {
        return Ok(Arc::new([std::net::SocketAddr::new(ip, target.port)]));
    }
    lookups::resolve(&target.host, target.port, system_lookup).await
}

/// The system resolver (`getaddrinfo`): blocking.
fn system_lookup(host: &str, port: u16) -> io::Result<Vec<std::net::SocketAddr>> {
    use std::net::ToSocketAddrs;
    (host, port).to_socket_addrs().map(Vec::from_iter)
}

/// Host name lookups shared by every connect in the process. The system
/// resolver blocks, so a lookup runs on its own short-lived thread; there is
/// at most one such thread per `(host, port)` at a time: connects to a host
/// being looked up wait for that answer (a group's shards starting together,
/// or all reconnecting after an outage, resolve the gateway once). A
/// successful answer is reused for `RESOLVED_FOR`; a failure is not kept,
/// the next connect looks up again. The table holds one entry per distinct
/// host (stale ones are dropped on the next lookup), so its size is bounded
/// by the hosts a process connects to.
mod lookups {
    use std::collections::HashMap;
    use std::io;
    use std::net::SocketAddr;
    use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
    use std::time::{Duration, Instant};

    use futures_channel::oneshot;

    /// How long a host's addresses are reused: long enough that a
    /// 1,000-shard start or a reconnect storm resolves once, short enough
    /// to follow DNS changes.
    pub(super) const RESOLVED_FOR: Duration = Duration::from_secs(30);

    /// A blocking resolver (the system's; the tests' own).
    pub(super) type Lookup = fn(&str, u16) -> io::Result<Vec<SocketAddr>>;

    type Key = (String, u16);
    /// An answer as every waiter gets it (`io::Error` is not `Clone`).
    type Answer = Result<Arc<[SocketAddr]>, (io::ErrorKind, String)>;

    enum Entry {
        /// A resolver thread is running; these connects wait for it.
        Resolving(Vec<oneshot::Sender<Answer>>),
        /// Its addresses, resolved at `at`.
        Resolved { addresses: Arc<[SocketAddr]>, at: Instant },
    }

    static TABLE: LazyLock<Mutex<HashMap<Key, Entry>>> = LazyLock::new(Mutex::default);

    /// Resolver threads started, by host (tests count them).
    #[cfg(test)]
    pub(super) static STARTED: Mutex<Vec<Key>> = Mutex::new(Vec::new());

    fn table() -> MutexGuard<'static, HashMap<Key, Entry>> {
        // Nothing panics while holding the lock; a poisoned table is still consistent.
        TABLE.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The addresses of `host:port`: a recent answer, the answer of a
    /// lookup already running, or that of a new one through `lookup`.
    pub(super) async fn resolve(host: &str, port: u16, lookup: Lookup) -> io::Result<Arc<[SocketAddr]>> {
        let key = (host.to_owned(), port);
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut table = table();
            let now = Instant::now();
            table.retain(|_, entry| match entry {
                Entry::Resolved { at, .. } => now.saturating_duration_since(*at) < RESOLVED_FOR,
                Entry::Resolving(_) => true,
            });
            match table.get_mut(&key) {
                Some(Entry::Resolved { addresses, .. }) => return Ok(Arc::clone(addresses)),
                Some(Entry::Resolving(waiting)) => {
                    // Connects that gave up (timed out, dropped) wait no more.
                    waiting.retain(|waiter| !waiter.is_canceled());
                    waiting.push(reply);
                    false
                }
                None => {
                    table.insert(key.clone(), Entry::Resolving(vec![reply]));
                    true
                }
            }
        };
        if start {
            #[cfg(test)]
            STARTED.lock().unwrap_or_else(PoisonError::into_inner).push(key.clone());
            let thread_key = key.clone();
            let spawned = std::thread::Builder::new().name("dgs-resolve".into()).spawn(move || {
                let (host, port) = (thread_key.0.as_str(), thread_key.1);
                let result = std::panic::catch_unwind(|| lookup(host, port))
                    .unwrap_or_else(|_| Err(io::Error::other("the resolver panicked")));
                finish(&thread_key, result);
            });
            if let Err(error) = spawned {
                finish(&key, Err(error));
            }
        }
        match answer.await {
            Ok(Ok(addresses)) => Ok(addresses),
            Ok(Err((kind, message))) => Err(io::Error::new(kind, message)),
            Err(oneshot::Canceled) => Err(io::Error::other("the resolver thread ended without an answer")),
        }
    }

    /// Hands the answer to every connect waiting for it, and keeps it if it
    /// has addresses.
    fn finish(key: &Key, result: io::Result<Vec<SocketAddr>>) {
        let answer: Answer = result.map(Arc::from).map_err(|error| (error.kind(), error.to_string()));
        let mut table = table();
        let waiting = match table.remove(key) {
            Some(Entry::Resolving(waiting)) => waiting,
            Some(resolved) => {
                // Not ours (cannot happen: one lookup per key at a time); keep it.
                table.insert(key.clone(), resolved);
                Vec::new()
            }
            None => Vec::new(),
        };
        if let Ok(addresses) = &answer {
            if !addresses.is_empty() {
                table.insert(key.clone(), Entry::Resolved { addresses: Arc::clone(addresses), at: Instant::now() });
            }
        }
        drop(table);
        for waiter in waiting {
            let _ = waiter.send(answer.clone());
        }
    }
}

/// async-std's TCP, with `TCP_NODELAY` and TCP keepalive as
/// [`AsyncIoConnector`] sets them. The [`DefaultConnector`] uses it outside
/// a tokio runtime when the `async-std` feature is on.
#[cfg(feature = "async-std")]
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdConnector;

#[cfg(feature = "async-std")]
impl AsyncStdConnector {
    async fn tcp(target: &Target) -> io::Result<async_std::net::TcpStream> {
        let stream = async_std::net::TcpStream::connect((target.host.as_str(), target.port)).await?;
        tune(&stream)?;
        Ok(stream)
    }
}

#[cfg(feature = "async-std")]
impl Connector for AsyncStdConnector {
    fn connect(&self, target: Target) -> ConnectFuture {
        Box::pin(async move { Ok(Box::new(AsyncStdConnector::tcp(&target).await?) as BoxedStream) })
    }
}

/// tokio's TCP (and its resolver), with `TCP_NODELAY` and TCP keepalive as
/// [`AsyncIoConnector`] sets them; the socket is adapted to `futures-io`
/// inside, so no compat layer is needed.
///
/// It must connect inside a tokio runtime (a task, or `block_on`): outside
/// one it fails with [`io::ErrorKind::Unsupported`] instead of panicking.
/// The runtime needs its I/O driver (`#[tokio::main]`, `Runtime::new` and
/// `Builder::enable_all` have it): in a runtime built without `enable_io`
/// tokio panics on a socket; the connector catches that panic and fails the
/// connect with [`io::ErrorKind::Unsupported`] (the default panic hook still
/// prints the panic message; with `panic = "abort"` nothing can be caught).
/// The [`DefaultConnector`] picks it there by itself, so `Shard::new` on
/// tokio needs no glue; spawn the driver as a task
/// (`tokio::spawn(shard.take_driver().unwrap())`) or let polling the shard
/// drive it.
#[cfg(feature = "tokio")]
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioConnector;

#[cfg(feature = "tokio")]
impl TokioConnector {
    async fn tcp(target: &Target) -> io::Result<tokio::net::TcpStream> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "TokioConnector connects only inside a tokio runtime",
            ));
        }
        // tokio panics (rather than failing) on a socket in a runtime built
        // without its I/O driver, and has no public way to ask beforehand:
        // the panic is caught here and made an error, so it never escapes
        // the shard's poll.
        let connecting = tokio::net::TcpStream::connect((target.host.as_str(), target.port));
        let stream = match std::panic::AssertUnwindSafe(connecting).catch_unwind().await {
            Ok(connected) => connected?,
            Err(panic) => return Err(tokio_panic(panic)),
        };
        tune(&stream)?;
        Ok(stream)
    }
}

/// The inner error of [`TokioConnector`]'s `io::Error` when the current
/// tokio runtime has no I/O driver (so [`DefaultConnector`] can tell it
/// from a connect failure and fall back).
#[cfg(feature = "tokio")]
#[derive(Debug)]
struct TokioIoDisabled;

#[cfg(feature = "tokio")]
impl std::fmt::Display for TokioIoDisabled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the tokio runtime has no I/O driver: build it with `enable_io` (or `enable_all`) \
             to use TokioConnector",
        )
    }
}

#[cfg(feature = "tokio")]
impl std::error::Error for TokioIoDisabled {}

/// A panic caught from tokio's connect as an error: [`TokioIoDisabled`]
/// (kind `Unsupported`) for the runtime without I/O, else an `Other` error
/// carrying the panic message.
#[cfg(feature = "tokio")]
fn tokio_panic(panic: Box<dyn std::any::Any + Send>) -> io::Error {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    if message.contains("IO is disabled") {
        io::Error::new(io::ErrorKind::Unsupported, TokioIoDisabled)
    } else {
        io::Error::other(format!("tokio panicked while connecting: {message}"))
    }
}

/// Whether `error` is [`TokioConnector`]'s "this runtime has no I/O driver".
#[cfg(feature = "tokio")]
fn is_tokio_io_disabled(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<TokioIoDisabled>())
}

#[cfg(feature = "tokio")]
impl Connector for TokioConnector {
    fn connect(&self, target: Target) -> ConnectFuture {
        Box::pin(async move { Ok(Box::new(TokioIo(TokioConnector::tcp(&target).await?)) as BoxedStream) })
    }
}

/// A tokio byte stream seen through `futures-io`.
#[cfg(feature = "tokio")]
struct TokioIo<T>(T);

#[cfg(feature = "tokio")]
impl<T: tokio::io::AsyncRead + Unpin> AsyncRead for TokioIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<io::Result<usize>> {
        let mut buf = tokio::io::ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, &mut buf) {
            std::task::Poll::Ready(Ok(())) => std::task::Poll::Ready(Ok(buf.filled().len())),
            std::task::Poll::Ready(Err(error)) => std::task::Poll::Ready(Err(error)),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

#[cfg(feature = "tokio")]
impl<T: tokio::io::AsyncWrite + Unpin> AsyncWrite for TokioIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The connector a shard or group uses when none is set: per connection,
/// [`TokioConnector`] inside a tokio runtime (feature `tokio`), else
/// [`AsyncStdConnector`] (feature `async-std`), else [`AsyncIoConnector`].
/// See [the module docs](self#runtimes) for why the choice is made at
/// connect time.
///
/// Inside a **current-thread** tokio runtime that is only entered on the
/// polling thread (`Runtime::enter`) while another executor polls the
/// shard, tokio is picked but its I/O never runs, and connects time out
/// forever: use [`AsyncIoConnector`] through `Shard::with_connector` there
/// (see [the module docs](self#runtimes)).
///
/// A tokio runtime built without `enable_io` cannot carry tokio sockets:
/// there the connection is made with [`AsyncIoConnector`] instead, and the
/// runtime is remembered so that its later connections skip tokio (a
/// warning is logged once per runtime; tokio's panic message, caught, is
/// printed by the panic hook on the first attempt).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultConnector;

impl Connector for DefaultConnector {
    fn connect(&self, target: Target) -> ConnectFuture {
        let choice = DefaultConnector::choose();
        tracing::debug!(connector = ?choice, host = %target.host, port = target.port, "connecting");
        match choice {
            #[cfg(feature = "tokio")]
            Choice::Tokio => {
                let runtime = tokio::runtime::Handle::try_current().ok().map(|handle| handle.id());
                let connecting = TokioConnector.connect(target.clone());
                Box::pin(async move {
                    match connecting.await {
                        Err(error) if is_tokio_io_disabled(&error) => {
                            if let Some(runtime) = runtime {
                                without_io::remember(runtime);
                            }
                            AsyncIoConnector.connect(target).await
                        }
                        connected => connected,
                    }
                })
            }
            #[cfg(feature = "async-std")]
            Choice::AsyncStd => AsyncStdConnector.connect(target),
            Choice::AsyncIo => AsyncIoConnector.connect(target),
        }
    }
}

/// Which connector the [`DefaultConnector`] uses here and now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    #[cfg(feature = "tokio")]
    Tokio,
    #[cfg(feature = "async-std")]
    AsyncStd,
    #[cfg_attr(all(feature = "async-std", not(feature = "tokio")), allow(dead_code))]
    AsyncIo,
}

impl DefaultConnector {
    fn choose() -> Choice {
        #[cfg(feature = "tokio")]
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            return if without_io::known(runtime.id()) { Choice::AsyncIo } else { Choice::Tokio };
        }
        #[cfg(feature = "async-std")]
        return Choice::AsyncStd;
        #[cfg(not(feature = "async-std"))]
        return Choice::AsyncIo;
    }
}

/// The tokio runtimes found without an I/O driver, so that the
/// [`DefaultConnector`] goes straight to async-io in them after the first
/// connect there. Bounded: past [`without_io::LIMIT`] runtimes (a process
/// that keeps building I/O-less runtimes), later ones are not remembered and
/// each of their connects falls back again (correct, only slower).
#[cfg(feature = "tokio")]
mod without_io {
    use std::sync::{Mutex, PoisonError};

    use tokio::runtime::Id;

    pub(super) const LIMIT: usize = 64;

    static RUNTIMES: Mutex<Vec<Id>> = Mutex::new(Vec::new());

    /// Whether connects in `runtime` have found it without I/O.
    pub(super) fn known(runtime: Id) -> bool {
        RUNTIMES.lock().unwrap_or_else(PoisonError::into_inner).contains(&runtime)
    }

    /// Records `runtime` as I/O-less; logs the first time for each runtime.
    pub(super) fn remember(runtime: Id) {
        let mut runtimes = RUNTIMES.lock().unwrap_or_else(PoisonError::into_inner);
        if runtimes.contains(&runtime) || runtimes.len() >= LIMIT {
            return;
        }
        runtimes.push(runtime);
        drop(runtimes);
        tracing::warn!(
            %runtime,
            "this tokio runtime was built without `enable_io`: connecting with async-io's TCP instead \
             (build the runtime with `enable_io` or `enable_all` to use tokio's)"
        );
    }
}

/// Why TLS could not be set up or a TLS connection could not be made.
///
/// Set-up errors (no roots, an unusable configuration) are returned by the
/// shard and group builders as [`ShardError::Tls`](crate::ShardError::Tls).
/// Connection errors (a refused certificate, a failed handshake) make that
/// connection attempt fail: the shard logs it (`tracing`, target
/// `discord_gateway_stream::shard`) and retries with backoff, as for any
/// connect failure; a custom driver finds it as the inner error of the
/// `io::Error` (`error.get_ref()` downcast to `TlsError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A `wss://` gateway URL in a build without the `rustls` feature:
    /// every connect would fail, so the shard is refused up front.
    #[error("a wss:// gateway URL needs the `rustls` feature")]
    Unavailable,
    /// The `rustls` feature is on without a roots feature, and no client
    /// configuration was given.
    #[error(
        "no TLS root certificates: enable `rustls-webpki-roots`, `rustls-native-roots` or \
         `rustls-platform-verifier`, or give the builder a rustls ClientConfig"
    )]
    NoRootCertificates,
    /// The operating system's root certificates could not be loaded, or none
    /// was usable (feature `rustls-native-roots`).
    #[error("could not load the system's root certificates: {0}")]
    NativeRoots(String),
    /// The platform's verifier could not be set up (feature `rustls-platform-verifier`).
    #[error("could not set up the platform certificate verifier: {0}")]
    PlatformVerifier(String),
    /// rustls refused to build the client configuration.
    #[error("could not build the TLS client configuration: {0}")]
    Config(String),
    /// A given client configuration offers ALPN protocols other than
    /// `http/1.1`, which a WebSocket handshake needs.
    #[error(
        "the TLS client configuration offers ALPN {0:?}; a WebSocket handshake needs `http/1.1` alone, or no ALPN"
    )]
    Alpn(Vec<String>),
    /// The gateway host is not a valid TLS server name.
    #[error("`{0}` is not a valid TLS server name")]
    ServerName(String),
    /// The server's certificate was refused (unknown issuer, wrong name,
    /// expired, …).
    #[error("the TLS certificate of {host} was refused: {reason}")]
    InvalidCertificate {
        /// The host connected to.
        host: String,
        /// What rustls reported.
        reason: String,
    },
    /// The TLS handshake failed otherwise (an alert from the server, no
    /// common protocol version, …).
    #[error("the TLS handshake with {host} failed: {reason}")]
    Handshake {
        /// The host connected to.
        host: String,
        /// What rustls reported.
        reason: String,
    },
}

/// How a shard secures `wss://` connections: a given client configuration,
/// or the process-wide default built from the roots features.
#[derive(Clone, Default)]
pub(crate) struct Tls {
    #[cfg(feature = "rustls")]
    given: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        #[cfg(feature = "rustls")]
        let given = self.given.is_some();
        #[cfg(not(feature = "rustls"))]
        let given = false;
        f.debug_struct("Tls").field("given_config", &given).finish()
    }
}

/// Whether `url` is a `wss://` URL (scheme case-insensitive, leading blanks allowed).
pub(crate) fn is_wss(url: &str) -> bool {
    url.trim_start().get(..6).is_some_and(|s| s.eq_ignore_ascii_case("wss://"))
}

impl Tls {
    /// Uses `config` as given for every `wss://` connection.
    #[cfg(feature = "rustls")]
    pub(crate) fn given(config: Arc<rustls::ClientConfig>) -> Tls {
        Tls { given: Some(config) }
    }

    /// Checks, before any connection, that `wss://` to `base_url` can work:
    /// TLS is compiled in, a given configuration's ALPN suits a WebSocket,
    /// and the default configuration can be built (it is then cached).
    pub(crate) fn check(&self, base_url: &str) -> Result<(), TlsError> {
        #[cfg(feature = "rustls")]
        if let Some(config) = &self.given {
            check_alpn(config)?;
        } else if is_wss(base_url) {
            default_config()?;
        }
        #[cfg(not(feature = "rustls"))]
        if is_wss(base_url) {
            // Without TLS every connect would fail and be retried forever.
            return Err(TlsError::Unavailable);
        }
        Ok(())
    }

    /// Wraps `stream` in TLS for `host`.
    #[cfg(feature = "rustls")]
    pub(crate) async fn wrap(&self, host: &str, stream: BoxedStream) -> io::Result<BoxedStream> {
        use rustls::pki_types::ServerName;

        let config = match &self.given {
            Some(config) => Arc::clone(config),
            None => default_config().map_err(io::Error::other)?,
        };
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, TlsError::ServerName(host.to_owned())))?;
        match futures_rustls::TlsConnector::from(config).connect(name, stream).await {
            Ok(stream) => Ok(Box::new(stream)),
            Err(error) => Err(handshake_error(host, error)),
        }
    }

    /// Without the `rustls` feature, `wss://` cannot be used.
    #[cfg(not(feature = "rustls"))]
    pub(crate) async fn wrap(&self, _host: &str, _stream: BoxedStream) -> io::Result<BoxedStream> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "wss:// needs the `rustls` feature"))
    }
}

/// A TLS failure from futures-rustls as an `io::Error` whose inner error is
/// a [`TlsError`]; plain I/O failures (a reset, an early EOF) stay as they are.
#[cfg(feature = "rustls")]
fn handshake_error(host: &str, error: io::Error) -> io::Error {
    let kind = error.kind();
    let Some(tls) = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) else {
        return error;
    };
    let (host, reason) = (host.to_owned(), tls.to_string());
    let tls = match tls {
        rustls::Error::InvalidCertificate(_) => TlsError::InvalidCertificate { host, reason },
        _ => TlsError::Handshake { host, reason },
    };
    io::Error::new(kind, tls)
}

/// A WebSocket handshake is HTTP/1.1: a configuration may offer `http/1.1`
/// or nothing (the server then speaks HTTP/1.1), never `h2` alone or beside it.
#[cfg(feature = "rustls")]
fn check_alpn(config: &rustls::ClientConfig) -> Result<(), TlsError> {
    if config.alpn_protocols.iter().all(|protocol| protocol == HTTP_1_1) {
        return Ok(());
    }
    let offered = config.alpn_protocols.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    Err(TlsError::Alpn(offered))
}

#[cfg(feature = "rustls")]
const HTTP_1_1: &[u8] = b"http/1.1";

/// Where the default configuration's trust comes from.
#[cfg(feature = "rustls")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Roots {
    PlatformVerifier,
    Native,
    Webpki,
    None,
}

/// The roots the enabled features select, by precedence.
#[cfg(feature = "rustls")]
const ROOTS: Roots = if cfg!(feature = "rustls-platform-verifier") {
    Roots::PlatformVerifier
} else if cfg!(feature = "rustls-native-roots") {
    Roots::Native
} else if cfg!(feature = "rustls-webpki-roots") {
    Roots::Webpki
} else {
    Roots::None
};

/// The process-wide default client configuration, built on first use. A
/// failure is not cached: the next shard tries again.
#[cfg(feature = "rustls")]
fn default_config() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(Arc::clone(config));
    }
    let config = Arc::new(build_config(ROOTS)?);
    Ok(Arc::clone(CONFIG.get_or_init(|| config)))
}

/// A client configuration trusting `roots`: ring provider (explicit, no
/// process-wide default is assumed or installed), rustls's safe protocol
/// versions, ALPN `http/1.1`.
#[cfg(feature = "rustls")]
#[cfg_attr(
    not(any(feature = "rustls-platform-verifier", feature = "rustls-native-roots", feature = "rustls-webpki-roots")),
    allow(unreachable_code, unused_variables)
)]
fn build_config(roots: Roots) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Config(error.to_string()))?;
    let builder: rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> = match roots {
        #[cfg(feature = "rustls-platform-verifier")]
        Roots::PlatformVerifier => {
            use rustls_platform_verifier::BuilderVerifierExt;
            tracing::debug!("TLS: the platform verifier");
            builder.with_platform_verifier().map_err(|error| TlsError::PlatformVerifier(error.to_string()))?
        }
        #[cfg(feature = "rustls-native-roots")]
        Roots::Native => builder.with_root_certificates(native_roots()?),
        #[cfg(feature = "rustls-webpki-roots")]
        Roots::Webpki => {
            tracing::debug!("TLS: webpki roots");
            builder.with_root_certificates(rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })
        }
        _ => return Err(TlsError::NoRootCertificates),
    };
    let mut config = builder.with_no_client_auth();
    config.alpn_protocols = vec![HTTP_1_1.to_vec()];
    Ok(config)
}

/// The operating system's root certificates. Certificates that cannot be
/// read are logged and skipped; none at all is an error.
#[cfg(feature = "rustls-native-roots")]
fn native_roots() -> Result<rustls::RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "a system root certificate could not be loaded");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(added, ignored, "TLS: system roots");
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        let detail = if errors.is_empty() { "none found".to_owned() } else { errors.join("; ") };
        return Err(TlsError::NativeRoots(detail));
    }
    Ok(roots)
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

    /// What every built-in connector must have set on its socket.
    fn assert_tuned(socket: socket2::SockRef<'_>) {
        assert!(socket.keepalive().unwrap(), "SO_KEEPALIVE");
        assert!(socket.tcp_nodelay().unwrap(), "TCP_NODELAY");
        // Read back through socket2's `all` feature, which only the tests enable.
        #[cfg(target_os = "linux")]
        {
            assert_eq!(socket.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
            assert_eq!(socket.tcp_keepalive_interval().unwrap(), KEEPALIVE_INTERVAL);
        }
    }

    fn loopback() -> (std::net::TcpListener, Target) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = Target { host: "127.0.0.1".into(), port: listener.local_addr().unwrap().port(), tls: false };
        (listener, target)
    }

    #[test]
    fn the_async_io_connector_sets_nodelay_and_keepalive() {
        let (_listener, target) = loopback();
        let stream = async_io::block_on(AsyncIoConnector::tcp(&target)).unwrap();
        assert_tuned(socket2::SockRef::from(stream.get_ref()));
        // A host name goes through the resolver thread.
        let named = Target { host: "localhost".into(), ..target };
        let stream = async_io::block_on(AsyncIoConnector::tcp(&named));
        // `localhost` may resolve to ::1 first, where nothing listens; the
        // IPv4 address is tried next.
        assert_tuned(socket2::SockRef::from(stream.unwrap().get_ref()));
    }

    #[test]
    fn address_families_alternate() {
        let v4 = |n| std::net::SocketAddr::from(([10, 0, 0, n], 1));
        let v6 = |n| std::net::SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, n as u16], 1));
        assert_eq!(interleave(&[v6(1), v6(2), v6(3), v4(1)]), [v6(1), v4(1), v6(2), v6(3)]);
        assert_eq!(interleave(&[v4(1), v4(2), v6(1), v6(2)]), [v4(1), v6(1), v4(2), v6(2)]);
        assert_eq!(interleave(&[v4(1)]), [v4(1)]);
        assert_eq!(interleave(&[]), []);
    }

    /// A listener whose accept queue is full: the kernel drops further SYNs,
    /// so a connect to it hangs (a black-holed address), or `None` where
    /// that cannot be set up.
    fn black_hole() -> Option<(socket2::Socket, Vec<std::net::TcpStream>)> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
        socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).ok()?;
        socket.listen(0).ok()?;
        let address = socket.local_addr().ok()?.as_socket()?;
        let mut queued = Vec::new();
        for _ in 0..8 {
            match std::net::TcpStream::connect_timeout(&address, Duration::from_millis(300)) {
                Ok(stream) => queued.push(stream),
                Err(error) if error.kind() == io::ErrorKind::TimedOut => return Some((socket, queued)),
                Err(_) => return None,
            }
        }
        None
    }

    #[test]
    fn an_address_that_does_not_answer_gets_the_next_one_tried_beside_it() {
        let Some((hole, _queued)) = black_hole() else {
            eprintln!("skipped: no black-holed listener can be made here");
            return;
        };
        let hole = hole.local_addr().unwrap().as_socket().unwrap();
        let (listener, _) = loopback();
        let good = listener.local_addr().unwrap();
        let started = std::time::Instant::now();
        let stream = async_io::block_on(connect_any(&[hole, good], Duration::from_millis(250))).unwrap();
        let took = started.elapsed();
        assert_eq!(stream.get_ref().peer_addr().unwrap(), good);
        assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(2), "{took:?}");
        // A refused address moves on at once, without the delay.
        let (closed, _) = loopback();
        let refused = closed.local_addr().unwrap();
        drop(closed);
        let started = std::time::Instant::now();
        let stream = async_io::block_on(connect_any(&[refused, good], Duration::from_secs(5))).unwrap();
        assert_eq!(stream.get_ref().peer_addr().unwrap(), good);
        assert!(started.elapsed() < Duration::from_secs(2));
        // All failing: the last failure.
        let error = async_io::block_on(connect_any(&[refused, refused], Duration::from_secs(5))).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
        let none = async_io::block_on(connect_any(&[], Duration::from_secs(5))).unwrap_err();
        assert_eq!(none.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_refused_connection_is_an_error() {
        let (listener, target) = loopback();
        drop(listener);
        let error = async_io::block_on(AsyncIoConnector::tcp(&target)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    }

    /// Resolver threads started for `host:port` so far.
    fn resolver_threads(host: &str, port: u16) -> usize {
        lookups::STARTED.lock().unwrap().iter().filter(|(h, p)| h == host && *p == port).count()
    }

    #[test]
    fn concurrent_lookups_of_a_host_share_one_resolver_thread_and_the_answer_is_kept() {
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        fn slow(_host: &str, port: u16) -> io::Result<Vec<std::net::SocketAddr>> {
            CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            Ok(vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))])
        }
        // `join_all` polls every lookup before the first answer comes.
        let lookups = (0..200).map(|_| lookups::resolve("coalesced.test", 1, slow));
        let answers = async_io::block_on(futures_util::future::join_all(lookups));
        for answer in answers {
            assert_eq!(answer.unwrap()[..], [std::net::SocketAddr::from(([127, 0, 0, 1], 1))]);
        }
        assert_eq!(CALLS.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(resolver_threads("coalesced.test", 1), 1);
        // Kept: a later connect needs no lookup.
        async_io::block_on(lookups::resolve("coalesced.test", 1, slow)).unwrap();
        assert_eq!(CALLS.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn a_failed_lookup_is_shared_but_not_kept() {
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        fn failing(_host: &str, _port: u16) -> io::Result<Vec<std::net::SocketAddr>> {
            CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            Err(io::Error::new(io::ErrorKind::NotFound, "no such host"))
        }
        let lookups = (0..50).map(|_| lookups::resolve("failing.test", 1, failing));
        for answer in async_io::block_on(futures_util::future::join_all(lookups)) {
            let error = answer.unwrap_err();
            assert_eq!((error.kind(), error.to_string().as_str()), (io::ErrorKind::NotFound, "no such host"));
        }
        assert_eq!(CALLS.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Not kept: the next connect looks up again.
        async_io::block_on(lookups::resolve("failing.test", 1, failing)).unwrap_err();
        assert_eq!(CALLS.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    /// What the review measured (one `getaddrinfo` thread per attempt): 200
    /// connects to `localhost` at once, through the system resolver, start a
    /// handful of resolver threads at most, and every one gets an answer.
    #[test]
    fn concurrent_connects_to_a_host_start_a_handful_of_resolver_threads() {
        let (listener, _) = loopback();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let connects =
            (0..200).map(|_| AsyncIoConnector.connect(Target { host: "localhost".into(), port, tls: false }));
        let answers = async_io::block_on(futures_util::future::join_all(connects));
        for answer in answers {
            // Nothing listens: refused (or ::1 unreachable where IPv6 is off).
            assert!(answer.is_err());
        }
        let threads = resolver_threads("localhost", port);
        assert!((1..=3).contains(&threads), "{threads} resolver threads for 200 connects");
    }

    #[cfg(feature = "async-std")]
    #[test]
    fn the_async_std_connector_sets_nodelay_and_keepalive() {
        let (_listener, target) = loopback();
        let stream = async_io::block_on(AsyncStdConnector::tcp(&target)).unwrap();
        assert_tuned(socket2::SockRef::from(&stream));
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn the_tokio_connector_sets_nodelay_and_keepalive_and_needs_a_runtime() {
        let (_listener, target) = loopback();
        let outside = async_io::block_on(TokioConnector::tcp(&target)).unwrap_err();
        assert_eq!(outside.kind(), io::ErrorKind::Unsupported);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
        let stream = runtime.block_on(TokioConnector::tcp(&target)).unwrap();
        assert_tuned(socket2::SockRef::from(&stream));
    }

    #[test]
    fn the_default_connector_chooses_at_connect_time() {
        #[cfg(feature = "async-std")]
        let outside = Choice::AsyncStd;
        #[cfg(not(feature = "async-std"))]
        let outside = Choice::AsyncIo;
        assert_eq!(DefaultConnector::choose(), outside);
        #[cfg(feature = "tokio")]
        {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
            assert_eq!(runtime.block_on(async { DefaultConnector::choose() }), Choice::Tokio);
            // Outside the runtime again: back to the other one.
            assert_eq!(DefaultConnector::choose(), outside);
        }
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn in_a_tokio_runtime_without_io_the_default_connector_falls_back_to_async_io() {
        let (_listener, target) = loopback();
        let without_io = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        // The tokio connector alone: an error, not a panic.
        let error = without_io.block_on(TokioConnector::tcp(&target)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::Unsupported);
        assert!(is_tokio_io_disabled(&error) && error.to_string().contains("enable_io"), "{error}");
        // Chosen first, tokio fails; the connection is made with async-io.
        assert_eq!(without_io.block_on(async { DefaultConnector::choose() }), Choice::Tokio);
        without_io.block_on(async { DefaultConnector.connect(target.clone()).await }).unwrap();
        // Remembered for that runtime only.
        assert_eq!(without_io.block_on(async { DefaultConnector::choose() }), Choice::AsyncIo);
        without_io.block_on(async { DefaultConnector.connect(target).await }).unwrap();
        let with_io = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
        assert_eq!(with_io.block_on(async { DefaultConnector::choose() }), Choice::Tokio);
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn without_roots_there_is_no_default_configuration() {
        assert_eq!(build_config(Roots::None).err(), Some(TlsError::NoRootCertificates));
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn alpn_must_be_http_1_1_or_nothing() {
        let config = |alpn: &[&[u8]]| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            config
        };
        assert_eq!(check_alpn(&config(&[])), Ok(()));
        assert_eq!(check_alpn(&config(&[b"http/1.1"])), Ok(()));
        assert_eq!(
            check_alpn(&config(&[b"h2", b"http/1.1"])),
            Err(TlsError::Alpn(vec!["h2".into(), "http/1.1".into()]))
        );
        let tls = Tls::given(Arc::new(config(&[b"h2"])));
        // Checked even for a ws:// URL: the configuration is wrong either way.
        assert!(matches!(tls.check("ws://127.0.0.1:1"), Err(TlsError::Alpn(_))));
    }

    /// A TLS server on a std thread with a certificate for
    /// 127.0.0.1 from a CA made here; accepts one connection and drives its
    /// handshake until it fails or completes.
    #[cfg(feature = "rustls")]
    fn tls_server() -> (u16, Vec<u8>, std::thread::JoinHandle<Result<(), String>>) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let ca = issuer.der().to_vec();
        let thread = std::thread::spawn(move || {
            let (mut tcp, _) = listener.accept().map_err(|e| e.to_string())?;
            let mut conn = rustls::ServerConnection::new(Arc::new(server)).map_err(|e| e.to_string())?;
            while conn.is_handshaking() {
                conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
            }
            Ok(())
        });
        (port, ca, thread)
    }

    #[cfg(feature = "rustls-webpki-roots")]
    #[test]
    fn a_refused_certificate_is_a_tls_error_inside_the_io_error() {
        let (port, _ca, server) = tls_server();
        let target = Target { host: "127.0.0.1".into(), port, tls: true };
        let error = async_io::block_on(async {
            let stream = AsyncIoConnector.connect(target).await.unwrap();
            Tls::default().wrap("127.0.0.1", stream).await.map(|_| ())
        })
        .unwrap_err();
        let tls = error.get_ref().and_then(|e| e.downcast_ref::<TlsError>()).cloned();
        assert!(
            matches!(&tls, Some(TlsError::InvalidCertificate { host, reason }) if host == "127.0.0.1" && reason.contains("UnknownIssuer")),
            "{error:?}"
        );
        let _ = server.join();
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn a_given_config_trusting_the_ca_connects_to_an_ip_address() {
        let (port, ca, server) = tls_server();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from(ca)).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let target = Target { host: "127.0.0.1".into(), port, tls: true };
        async_io::block_on(async {
            let stream = AsyncIoConnector.connect(target).await.unwrap();
            Tls::given(Arc::new(config)).wrap("127.0.0.1", stream).await.map(|_| ())
        })
        .unwrap();
        server.join().unwrap().unwrap();
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn tokio_io_reads_eof_and_close_shuts_down() {
        use futures_util::{AsyncReadExt, AsyncWriteExt};
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (a, b) = tokio::io::duplex(64);
            let (mut a, mut b) = (TokioIo(a), TokioIo(b));
            a.write_all(b"hello").await.unwrap();
            a.close().await.unwrap();
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"hello");
            // A read into an empty buffer is Ok(0) (not an error).
            assert_eq!(b.read(&mut []).await.unwrap(), 0);
        });
    }

    #[cfg(feature = "rustls-webpki-roots")]
    #[test]
    fn the_default_configuration_offers_http_1_1() {
        let config = default_config().unwrap();
        assert_eq!(config.alpn_protocols, vec![HTTP_1_1.to_vec()]);
        assert!(Arc::ptr_eq(&config, &default_config().unwrap()), "built once");
    }
}
