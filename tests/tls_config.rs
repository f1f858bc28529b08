//! `wss://` through a user-supplied rustls `ClientConfig`: a TLS endpoint on
//! loopback (tokio-rustls, a certificate from a CA made for the test) proxies
//! to the simulator. A configuration trusting that CA carries a session; one
//! trusting another CA, and the default roots, are refused during the
//! handshake, so nothing reaches the simulator.
#![cfg(all(feature = "testing", feature = "rustls"))]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;

use discord_gateway_stream::protocol::{DisconnectReason, Status};
use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::transport::{rustls, TlsError};
use discord_gateway_stream::{CloseMode, Config, Intents, Shard, ShardError, ShardGroup};
use futures::StreamExt;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use support::client::{sim_config, LogCapture};

const WAIT: Duration = Duration::from_secs(10);

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// What the TLS endpoint saw: the ALPN protocol of each accepted handshake,
/// and each refused one's error.
#[derive(Default)]
struct Seen {
    accepted: Vec<Option<Vec<u8>>>,
    refused: Vec<String>,
}

/// A TLS endpoint on 127.0.0.1 with a certificate for that address signed by
/// `issuer`, forwarding each connection to `upstream`; returns its port.
async fn tls_proxy(issuer: &CertifiedIssuer<'static, KeyPair>, upstream: u16, seen: Arc<Mutex<Seen>>) -> u16 {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, issuer).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
        .unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), Arc::clone(&seen));
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(mut tls) => {
                        seen.lock().unwrap().accepted.push(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec));
                        let mut upstream = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                    }
                    Err(error) => seen.lock().unwrap().refused.push(error.to_string()),
                }
            });
        }
    });
    port
}

fn client_config(trusted: &CertifiedIssuer<'static, KeyPair>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(trusted.der().to_vec())).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn config(sim: &Simulator, proxy: u16) -> Config {
    // The simulator's URL with the scheme and port of the TLS endpoint.
    let url = sim.url().replacen("ws://", "wss://", 1).replacen(&format!(":{}", sim.port()), &format!(":{proxy}"), 1);
    sim_config(url, Intents::GUILDS)
}

fn simulator() -> Simulator {
    Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(300))).unwrap()
}

/// Waits (without blocking the runtime) until `done`, or panics.
async fn wait_until(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_client_config_with_the_right_ca_carries_a_session() {
    let (sim, ca) = (simulator(), ca("test CA"));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let proxy = tls_proxy(&ca, sim.port(), Arc::clone(&seen)).await;
    let mut shard = Shard::builder(config(&sim, proxy)).tls_config(client_config(&ca)).build().unwrap();
    tokio::spawn(shard.take_driver().unwrap());
    let ready = tokio::time::timeout(WAIT, shard.next()).await.expect("READY in time").unwrap().unwrap();
    assert_eq!(ready.event(), "READY");
    shard.close(CloseMode::Final).await;
    let seen = seen.lock().unwrap();
    assert!(seen.refused.is_empty(), "{:?}", seen.refused);
    // A given configuration is used as given: this one offers no ALPN, so none was negotiated.
    assert_eq!(seen.accepted, vec![None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_uses_the_given_client_config_and_it_offers_http_1_1() {
    let (sim, ca) = (simulator(), ca("test CA"));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let proxy = tls_proxy(&ca, sim.port(), Arc::clone(&seen)).await;
    let mut tls = client_config(&ca);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut group = ShardGroup::builder(config(&sim, proxy), 1)
        .tls_config(tls)
        .spawn_drivers(|driver| {
            tokio::spawn(driver);
        })
        .build()
        .unwrap();
    let ready = tokio::time::timeout(WAIT, group.next()).await.expect("READY in time").unwrap().unwrap();
    assert_eq!(ready.event(), "READY");
    assert_eq!(seen.lock().unwrap().accepted, vec![Some(b"http/1.1".to_vec())]);
}

/// The certificate is signed by a CA the configuration does not trust: every
/// handshake is refused by the client, the shard reports connect failures
/// and retries, and no WebSocket ever reaches the simulator. The client's
/// side of it is a [`TlsError::InvalidCertificate`] (unknown issuer) in the
/// connect failure the shard logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused() {
    use tracing::instrument::WithSubscriber;

    let (sim, server_ca, other_ca) = (simulator(), ca("server CA"), ca("other CA"));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let proxy = tls_proxy(&server_ca, sim.port(), Arc::clone(&seen)).await;
    let mut shard = Shard::builder(config(&sim, proxy)).tls_config(client_config(&other_ca)).build().unwrap();
    let handle = shard.handle();
    let logs = LogCapture::default();
    tokio::spawn(shard.take_driver().unwrap().with_subscriber(logs.dispatch(tracing::Level::WARN)));
    wait_until(|| seen.lock().unwrap().refused.len() >= 2, "two refused handshakes").await;
    wait_until(
        || matches!(handle.status(), Status::Reconnecting { reason: DisconnectReason::ConnectFailed, .. }),
        "a connect failure",
    )
    .await;
    let seen = seen.lock().unwrap();
    assert!(seen.accepted.is_empty());
    // The client's alert: rustls names it on the server side.
    assert!(seen.refused.iter().all(|e| e.contains("UnknownCA") || e.contains("BadCertificate")), "{:?}", seen.refused);
    assert!(sim.connections().is_empty());
    // The client's side: each failed connect is logged with the TlsError
    // (`TlsError::InvalidCertificate`'s message, rustls's reason).
    let expected = TlsError::InvalidCertificate {
        host: "127.0.0.1".into(),
        reason: "invalid peer certificate: UnknownIssuer".into(),
    };
    let logs = logs.text();
    let failures: Vec<&str> = logs.lines().filter(|line| line.contains("connect failed")).collect();
    assert!(!failures.is_empty(), "no connect failure logged: {logs}");
    assert!(failures.iter().all(|line| line.contains(&expected.to_string())), "{failures:#?}");
}

/// Without a given configuration the default roots apply, and they do not
/// trust the test CA (proof that the given root store is what let the first
/// test through).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_roots_do_not_trust_the_test_ca() {
    let (sim, ca) = (simulator(), ca("test CA"));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let proxy = tls_proxy(&ca, sim.port(), Arc::clone(&seen)).await;
    let mut shard = match Shard::new(config(&sim, proxy)) {
        Ok(shard) => shard,
        // `rustls` alone has no roots: refused before any connection.
        Err(error) => return assert_eq!(error, ShardError::Tls(TlsError::NoRootCertificates)),
    };
    tokio::spawn(shard.take_driver().unwrap());
    wait_until(|| !seen.lock().unwrap().refused.is_empty(), "a refused handshake").await;
    assert!(seen.lock().unwrap().accepted.is_empty());
    assert!(sim.connections().is_empty());
}

#[test]
fn a_config_offering_h2_is_refused_at_build() {
    let mut tls = client_config(&ca("test CA"));
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let error = Shard::builder(Config::new("t", Intents::GUILDS)).tls_config(tls.clone()).build().unwrap_err();
    assert_eq!(error, ShardError::Tls(TlsError::Alpn(vec!["h2".into(), "http/1.1".into()])));
    let error = ShardGroup::builder(Config::new("t", Intents::GUILDS), 1).tls_config(tls).build().unwrap_err();
    assert!(matches!(error, ShardError::Tls(TlsError::Alpn(_))));
}
