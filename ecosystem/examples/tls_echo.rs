//! A TLS echo server: futures-rustls over mini's `TcpStream`.
//!
//! ```text
//! cargo run -p mini-ecosystem --example tls_echo -- [ADDR] [--cert CERT.pem --key KEY.pem]
//! openssl s_client -connect 127.0.0.1:8443 -quiet      # type a line, it comes back
//! ```
//!
//! - `ADDR` defaults to 127.0.0.1:8443.
//! - Without `--cert`/`--key` it makes a self-signed certificate for `localhost` and
//!   `127.0.0.1` at startup, and prints it after the first line, `tls_echo listening on ADDR`
//!   (save it to a file to trust it: `openssl s_client -CAfile FILE ...`).
//! - A client that has not finished its handshake within 10 s is dropped; at the end of the
//!   client's stream the server sends its `close_notify` and closes.
//! - If it cannot start, it says why in one line on stderr and exits with status 1 (2 for a
//!   bad option).
//!
//! rustls does the TLS; mini only moves bytes. futures-rustls wraps any type with the
//! `futures-io` traits, so `TlsAcceptor::accept(stream)` takes a mini `TcpStream` as it is.

#![forbid(unsafe_code)]

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::pki_types::pem::PemObject;
use futures_rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use futures_rustls::rustls::{self, ServerConfig};
use futures_rustls::TlsAcceptor;
use mini::net::{TcpListener, TcpStream};
use mini::time::timeout;

/// Where the server listens when no address is given.
pub(crate) const DEFAULT_ADDR: &str = "127.0.0.1:8443";

/// How long a client may take over its handshake: without a limit, a peer that connects and
/// sends nothing would hold its task (and fd) for ever.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate chain and its private key.
pub(crate) type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// A fresh self-signed certificate for `localhost` and `127.0.0.1`, with its key, and the
/// certificate in PEM form (for a client to trust).
pub(crate) fn self_signed() -> Result<(Identity, String), rcgen::Error> {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(["localhost".to_string(), "127.0.0.1".to_string()])?;
    let key = PrivatePkcs8KeyDer::from(signing_key.serialize_der());
    Ok(((vec![cert.der().clone()], key.into()), cert.pem()))
}

/// Reads a certificate chain and a private key from PEM files, saying which file is wrong.
pub(crate) fn load_pem(cert: &Path, key: &Path) -> Result<Identity, String> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    Ok((certs, key))
}

/// A TLS acceptor for `identity`, with rustls' safe defaults (TLS 1.2 and 1.3) on the `ring`
/// provider. Fails if the key does not match the certificate.
pub(crate) fn acceptor((certs, key): Identity) -> Result<TlsAcceptor, rustls::Error> {
    // Naming the provider keeps this working if some other crate in the build enables
    // rustls' default one too (two providers and no choice would make `builder()` panic).
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts clients until the process ends, one task each. A client that has not finished its
/// handshake after `handshake_timeout` is dropped.
pub(crate) async fn serve(listener: TcpListener, acceptor: TlsAcceptor, handshake_timeout: Duration) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                // A failed handshake or a reset is that client's business, not the server's.
                mini::spawn(echo(acceptor.clone(), stream, handshake_timeout));
            }
            // Out of fds, say: pause rather than spin on a listener that stays readable.
            Err(e) => {
                eprintln!("tls_echo: accept failed: {e}");
                mini::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client: the handshake, then each chunk read is written back, until end of stream.
async fn echo(acceptor: TlsAcceptor, stream: TcpStream, handshake_timeout: Duration) -> io::Result<()> {
    let mut tls = timeout(handshake_timeout, acceptor.accept(stream)).await??;
    let mut buf = vec![0; 16 * 1024]; // one TLS record's worth of plaintext
    loop {
        let n = tls.read(&mut buf).await?;
        if n == 0 {
            // The client's close_notify (or a bare end of stream): answer with ours.
            return tls.close().await;
        }
        tls.write_all(&buf[..n]).await?;
        // When the socket is full, rustls keeps what it could not send and still reports it
        // written; `flush` waits until it has gone. Without it the end of an echo could sit
        // in rustls' buffer until the client sends more. (So `mini::io::copy`, which flushes
        // only when its reader ends, does not suit a TLS echo.)
        tls.flush().await?;
    }
}

/// Says why the server cannot start, and exits with status 1.
fn fail(msg: std::fmt::Arguments<'_>) -> ! {
    eprintln!("tls_echo: {msg}");
    std::process::exit(1)
}

/// Reports a bad command line and exits with status 2.
fn usage(msg: &str) -> ! {
    eprintln!("tls_echo: {msg}\nusage: tls_echo [ADDR] [--cert CERT.pem --key KEY.pem]");
    std::process::exit(2)
}

#[mini::main]
async fn main() {
    let (mut addr, mut cert, mut key) = (DEFAULT_ADDR.to_string(), None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cert" => cert = Some(args.next().unwrap_or_else(|| usage("--cert needs a file"))),
            "--key" => key = Some(args.next().unwrap_or_else(|| usage("--key needs a file"))),
            flag if flag.starts_with('-') => usage(&format!("unknown option {flag}")),
            _ => addr = arg,
        }
    }
    let (identity, pem) = match (cert, key) {
        (Some(cert), Some(key)) => match load_pem(Path::new(&cert), Path::new(&key)) {
            Ok(identity) => (identity, None),
            Err(e) => fail(format_args!("cannot load the certificate: {e}")),
        },
        (None, None) => match self_signed() {
            Ok((identity, pem)) => (identity, Some(pem)),
            Err(e) => fail(format_args!("cannot make a certificate: {e}")),
        },
        _ => usage("--cert and --key go together"),
    };
    let acceptor = acceptor(identity).unwrap_or_else(|e| fail(format_args!("bad certificate or key: {e}")));
    let listener = match TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(e) => fail(format_args!("cannot listen on {addr}: {e}")),
    };
    match listener.local_addr() {
        Ok(local) => println!("tls_echo listening on {local}"),
        Err(e) => fail(format_args!("cannot listen on {addr}: {e}")),
    }
    if let Some(pem) = pem {
        print!("self-signed certificate for localhost and 127.0.0.1:\n{pem}");
    }
    serve(listener, acceptor, HANDSHAKE_TIMEOUT).await
}
