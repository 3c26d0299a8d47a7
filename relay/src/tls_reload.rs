//! `wss://` on the relay's WebSocket listener without a reverse proxy: rustls with a
//! certificate and key read from PEM files (`relay.toml`'s `[tls]`), read again on SIGHUP.
//!
//! [`ReloadableCert`] is the certificate resolver: every new TLS handshake takes the
//! certificate current at that moment, so [`ReloadableCert::reload`] (SIGHUP) changes what new
//! browsers see without touching open WebSockets or the QUIC listener (whose certificate is the
//! relay's pinned identity, never this one). A reload that fails (a half-written renewal, a key
//! that does not match) keeps the previous certificate and says why.
//!
//! [`TlsListener`] accepts TCP connections and runs their handshakes on tasks of their own,
//! each bounded by [`TLS_HANDSHAKE_TIMEOUT`] and at most [`MAX_TLS_HANDSHAKES`] at once, so a
//! client that opens a connection and sends nothing never holds up the others.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Time a client has to finish its TLS handshake: a browser takes milliseconds; anything slower
/// is a stuck or hostile client holding a socket.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in progress at once; further connections wait to be accepted. Twice the
/// WebSocket connection cap would be too many half-open sockets; 256 lets every office's
/// browsers reconnect together after a restart.
pub const MAX_TLS_HANDSHAKES: usize = 256;
/// Handshaken connections waiting for the HTTP server to take them.
const READY_QUEUE: usize = 64;

/// The `[tls]` table of `relay.toml`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM (leaf first), e.g. certbot's `fullchain.pem`.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1), e.g. certbot's `privkey.pem`.
    pub key: PathBuf,
}

/// Errors reading a certificate and key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no PEM block of the right kind.
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// rustls refused the key (unsupported algorithm) or it does not match the certificate.
    #[error("{0}")]
    Key(String),
}

/// The certificate new handshakes present, replaced by [`ReloadableCert::reload`].
#[derive(Debug)]
pub struct ReloadableCert {
    config: TlsConfig,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    /// Reads the certificate and key once; errors here stop the relay from starting.
    pub fn load(config: &TlsConfig) -> Result<Arc<Self>, TlsError> {
        let key = read(config)?;
        Ok(Arc::new(Self {
            config: config.clone(),
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Reads the files again; on error the previous certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = read(&self.config)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }

    /// The leaf certificate now presented (tests compare it).
    pub fn leaf(&self) -> CertificateDer<'static> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .cert
            .first()
            .cloned()
            .unwrap_or_else(|| CertificateDer::from(Vec::new()))
    }

    /// A rustls server configuration presenting this certificate (HTTP/1.1, for WebSocket).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Key(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn read(config: &TlsConfig) -> Result<CertifiedKey, TlsError> {
    let file_err = |path: &Path, message: String| TlsError::File {
        path: path.to_owned(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert)
        .map_err(|e| file_err(&config.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&config.cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_err(&config.cert, "no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key)
        .map_err(|e| file_err(&config.key, e.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| TlsError::Key(format!("{}: {e}", config.key.display())))?;
    Ok(certified)
}

/// A TCP listener whose connections come out TLS-handshaken (for `axum::serve`).
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    _accept: JoinSet<()>,
}

impl TlsListener {
    /// Handshakes every connection `listener` accepts with `config`.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let mut accept = JoinSet::new();
        accept.spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(Self {
            local_addr,
            ready,
            _accept: accept,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let slots = Arc::new(Semaphore::new(MAX_TLS_HANDSHAKES));
    let mut handshakes = JoinSet::new();
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accepting a wss connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = ready.closed() => return,
        };
        while handshakes.try_join_next().is_some() {}
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        handshakes.spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, remote)).await;
                }
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "wss handshake failed"),
                Err(_) => tracing::debug!(%remote, "wss handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop only ends with the listener: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> TlsConfig {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let config = TlsConfig {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&config.cert, cert.cert.pem()).unwrap();
        std::fs::write(&config.key, cert.signing_key.serialize_pem()).unwrap();
        config
    }

    #[test]
    fn reload_swaps_the_certificate_and_a_bad_file_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let config = write_pair(dir.path(), "a");
        let cert = ReloadableCert::load(&config).unwrap();
        let first = cert.leaf();
        // Renewed in place, as certbot does.
        let renewed = write_pair(dir.path(), "b");
        std::fs::rename(&renewed.cert, &config.cert).unwrap();
        std::fs::rename(&renewed.key, &config.key).unwrap();
        cert.reload().unwrap();
        let second = cert.leaf();
        assert_ne!(first, second);
        // A half-written renewal: refused, the second stays.
        std::fs::write(&config.key, b"-----BEGIN PRIVATE KEY-----\ngarbage").unwrap();
        assert!(cert.reload().is_err());
        assert_eq!(cert.leaf(), second);
        // A key that is not the certificate's.
        let other = write_pair(dir.path(), "c");
        std::fs::copy(&other.key, &config.key).unwrap();
        let err = cert.reload().unwrap_err().to_string();
        assert!(!err.is_empty());
        assert_eq!(cert.leaf(), second);
        assert!(cert.server_config().is_ok());
    }
}
