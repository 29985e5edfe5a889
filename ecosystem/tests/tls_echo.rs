//! The `tls_echo` example (examples/tls_echo.rs): its server and a futures-rustls client, both
//! on one mini runtime, over loopback. Each test runs under a timeout, so a hang fails it.

#[path = "../examples/tls_echo.rs"]
#[allow(dead_code)] // the example's `main`
mod tls_echo;

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::client::TlsStream;
use futures_rustls::pki_types::{CertificateDer, ServerName};
use futures_rustls::rustls::{self, ClientConfig, RootCertStore};
use futures_rustls::TlsConnector;
use mini::net::{TcpListener, TcpStream};
use mini::time::timeout;

const HANG_GUARD: Duration = Duration::from_secs(10);

/// Runs `test` on a fresh runtime; a hang fails it after `HANG_GUARD`.
fn run(test: impl std::future::Future<Output = io::Result<()>>) {
    mini::block_on(async { timeout(HANG_GUARD, test).await.expect("the test hung") }).unwrap();
}

/// Serves `identity` on a free port, in a task of the current runtime.
async fn start(identity: tls_echo::Identity, handshake_timeout: Duration) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = tls_echo::acceptor(identity).map_err(io::Error::other)?;
    mini::spawn(tls_echo::serve(listener, acceptor, handshake_timeout));
    Ok(addr)
}

/// A client that trusts `root` alone, limited to `versions`.
fn connector(
    root: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn connect(connector: &TlsConnector, addr: SocketAddr) -> io::Result<TlsStream<TcpStream>> {
    let stream = TcpStream::connect(addr).await?;
    connector.connect(ServerName::try_from("localhost").unwrap(), stream).await
}

/// Writes `data` while reading the echo, so that neither side waits on full buffers.
async fn round_trip(tls: &mut TlsStream<TcpStream>, data: &[u8]) -> io::Result<Vec<u8>> {
    let (mut reader, mut writer) = tls.split();
    let write = async {
        writer.write_all(data).await?;
        writer.flush().await
    };
    let mut echo = vec![0; data.len()];
    let (wrote, read) = futures::join!(write, reader.read_exact(&mut echo));
    wrote?;
    read?;
    Ok(echo)
}

#[test]
fn echoes_to_a_client_that_trusts_its_certificate_over_tls_1_3_and_1_2() {
    run(async {
        let (identity, _pem) = tls_echo::self_signed().unwrap();
        let root = identity.0[0].clone();
        let addr = start(identity, tls_echo::HANDSHAKE_TIMEOUT).await?;
        for (versions, expected) in [
            (&[&rustls::version::TLS13][..], rustls::ProtocolVersion::TLSv1_3),
            (&[&rustls::version::TLS12][..], rustls::ProtocolVersion::TLSv1_2),
        ] {
            let mut tls = connect(&connector(&root, versions), addr).await?;
            assert_eq!(tls.get_ref().1.protocol_version(), Some(expected));
            assert_eq!(round_trip(&mut tls, b"hello").await?, b"hello");
            // Many records, more than the socket buffers hold at once.
            let big: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
            assert!(round_trip(&mut tls, &big).await? == big);
            // Our close_notify; the server answers with its own, which reads as a clean end.
            tls.close().await?;
            let mut rest = Vec::new();
            tls.read_to_end(&mut rest).await?;
            assert!(rest.is_empty());
        }
        Ok(())
    });
}

#[test]
fn an_untrusted_certificate_fails_the_handshake_and_the_server_goes_on() {
    run(async {
        let (identity, _pem) = tls_echo::self_signed().unwrap();
        let root = identity.0[0].clone();
        let addr = start(identity, tls_echo::HANDSHAKE_TIMEOUT).await?;

        let (stranger, _pem) = tls_echo::self_signed().unwrap(); // the same names, another key
        let err = connect(&connector(&stranger.0[0], &[&rustls::version::TLS13]), addr).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
        let cause = err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
        assert!(matches!(cause, Some(rustls::Error::InvalidCertificate(_))), "{err}");

        // Not TLS at all: the server answers with an alert or nothing, then closes.
        let mut plain = TcpStream::connect(addr).await?;
        plain.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await?;
        let mut answer = Vec::new();
        futures::io::AsyncReadExt::read_to_end(&mut plain, &mut answer).await?;
        assert!(answer.len() < 64, "{answer:?}");

        let mut tls = connect(&connector(&root, &[&rustls::version::TLS13]), addr).await?;
        assert_eq!(round_trip(&mut tls, b"still serving").await?, b"still serving");
        Ok(())
    });
}

#[test]
fn a_client_silent_past_the_handshake_timeout_is_dropped() {
    run(async {
        let (identity, _pem) = tls_echo::self_signed().unwrap();
        let addr = start(identity, Duration::from_millis(50)).await?;
        let mut silent = TcpStream::connect(addr).await?;
        // Without the timeout this would wait for ever (and the guard would fail the test).
        assert_eq!(silent.read(&mut [0; 16]).await?, 0);
        Ok(())
    });
}

#[test]
fn pem_files_load_and_a_bad_one_is_named() {
    let dir = std::env::temp_dir().join(format!("mini-tls-echo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(["localhost".to_string()]).unwrap();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, signing_key.serialize_pem()).unwrap();

    let loaded = tls_echo::load_pem(&cert_file, &key_file);
    let missing = tls_echo::load_pem(&dir.join("nope.pem"), &key_file).map(|_| ()).unwrap_err();
    let swapped = tls_echo::load_pem(&key_file, &key_file).map(|_| ()).unwrap_err();
    let no_key = tls_echo::load_pem(&cert_file, &cert_file).map(|_| ()).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();

    assert!(missing.starts_with(&format!("{}: ", dir.join("nope.pem").display())), "{missing}");
    assert_eq!(swapped, format!("{}: no certificate in it", key_file.display()));
    assert!(no_key.starts_with(&format!("{}: ", cert_file.display())), "{no_key}");
    let identity = loaded.unwrap();
    assert_eq!(identity.0, [cert.der().clone()]);
    run(async {
        let addr = start(identity, tls_echo::HANDSHAKE_TIMEOUT).await?;
        let mut tls = connect(&connector(cert.der(), &[&rustls::version::TLS13]), addr).await?;
        assert_eq!(round_trip(&mut tls, b"from files").await?, b"from files");
        Ok(())
    });
}
