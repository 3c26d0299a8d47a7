//! QUIC endpoints with mutual TLS, where peers are recognised by certificate fingerprint.
//!
//! There is no certificate authority. The server asks every client for a certificate and accepts
//! any well-formed one at the TLS layer, after checking that the client holds its private key
//! (the handshake signature); who may actually do anything is decided afterwards, by fingerprint
//! (see `server`). The client pins the server: it accepts only the certificate whose fingerprint
//! it was told, so a relay address alone is never trusted.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, IdleTimeout, TransportConfig, VarInt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::identity::{shared_crypto_provider, Fingerprint, Identity, TLS_NAME};
use crate::reset_key::ResetKey;

/// The application protocol negotiated by TLS. A peer offering anything else is refused during
/// the handshake, so a future incompatible protocol gets a new ALPN and never misparses frames.
pub const ALPN: &[u8] = b"atelier-sync/1";

/// How long a connection may stay silent before it is considered dead, as the server offers
/// it. QUIC uses the smaller of the two sides' values, so against our own clients the shorter
/// [`SYNC_IDLE_TIMEOUT`] applies; this bound is for any other client.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the server sends a keep-alive on an idle connection. A third of [`IDLE_TIMEOUT`]
/// tolerates two lost keep-alives, and stays under the ~30 s after which many NATs forget a UDP
/// mapping.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Idle timeout an office's connection asks for while it syncs (one-shot or live): a relay
/// killed or cut off mid-sync is noticed within this, rather than the ~41 s measured with the
/// server's bound. A brief drop longer than this ends the connection, and the agent then
/// reconnects; five seconds is many round trips on any office link, and five keep-alives.
pub const SYNC_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often an office's connection sends a keep-alive while it syncs: a fifth of
/// [`SYNC_IDLE_TIMEOUT`], so four keep-alives may be lost before a live link is declared dead.
/// It is also what makes a restarted relay answer with a stateless reset within a second (see
/// [`crate::reset_key`]). Cost: one small packet a second per syncing device; a live session,
/// idle most of the time, uses [`LIVE_KEEP_ALIVE_INTERVAL`].
pub const SYNC_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(1);

/// Idle timeout a live session's connection asks for: the server's own bound. A live device
/// stays connected for hours and mostly waits; it notices a relay killed without a word within
/// this, and a restarted one at its next keep-alive or change, which the restarted relay
/// answers with a stateless reset (see [`crate::reset_key`]). What it writes meanwhile is
/// durable locally and goes out when it reconnects.
pub const LIVE_IDLE_TIMEOUT: Duration = IDLE_TIMEOUT;

/// How often a live session's connection sends a keep-alive when nothing else moves: a third
/// of [`LIVE_IDLE_TIMEOUT`], under the ~30 s after which many NATs forget a UDP mapping. Each
/// keep-alive costs the relay a packet in and an acknowledgement out: at
/// [`SYNC_KEEP_ALIVE_INTERVAL`]'s one a second, 300 idle devices kept 2.5 % of a core busy.
pub const LIVE_KEEP_ALIVE_INTERVAL: Duration = KEEP_ALIVE_INTERVAL;

/// What a client connection is for, which sets how it watches a silent server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// A sync that ends once converged (or an enrolment): it notices a relay gone within
    /// [`SYNC_IDLE_TIMEOUT`].
    Sync,
    /// A live session that stays open while idle: [`LIVE_IDLE_TIMEOUT`] and
    /// [`LIVE_KEEP_ALIVE_INTERVAL`].
    Live,
}

impl LinkKind {
    /// The idle timeout this kind of connection asks for, and its keep-alive interval.
    pub fn timeouts(self) -> (Duration, Duration) {
        match self {
            LinkKind::Sync => (SYNC_IDLE_TIMEOUT, SYNC_KEEP_ALIVE_INTERVAL),
            LinkKind::Live => (LIVE_IDLE_TIMEOUT, LIVE_KEEP_ALIVE_INTERVAL),
        }
    }
}

/// Bidirectional streams a client may have open at once towards a server: the sync stream
/// (handshake, then sync) and the media streams (one per blob in flight, see
/// [`crate::media_sync::MAX_MEDIA_STREAMS`]); a peer gets no more to hold buffers with.
pub const MAX_BIDI_STREAMS_PER_CONNECTION: u32 = 1 + crate::media_sync::MAX_MEDIA_STREAMS as u32;

/// Bytes a peer may have sent on all streams of a connection that the server has not read
/// yet (QUIC's connection flow-control window). quinn's default is unbounded, leaving only the
/// per-stream windows (1.25 MB each, a sync stream and up to
/// [`crate::media_sync::MAX_MEDIA_STREAMS`] media streams); 4 MiB keeps a 100 Mbit/s link with
/// 300 ms of round trip busy and bounds what a connection buffers (see
/// [`crate::sync_conn::MAX_CONNECTION_MEMORY`]).
pub const CONNECTION_RECEIVE_WINDOW: u32 = 4 * 1024 * 1024;

/// Bytes the server may have sent on a connection and not had acknowledged, which quinn keeps
/// for retransmission: the same reasoning as [`CONNECTION_RECEIVE_WINDOW`] (quinn's default is
/// 10 MB).
pub const CONNECTION_SEND_WINDOW: u32 = 4 * 1024 * 1024;

/// Errors while building endpoints or connecting.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The UDP socket could not be bound.
    #[error("cannot bind udp socket on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The identity could not be turned into a TLS configuration.
    #[error("cannot build tls configuration")]
    Tls(#[from] rustls::Error),
    /// The TLS configuration is not usable for QUIC.
    #[error("tls configuration unusable for quic")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// The connection attempt could not start.
    #[error("cannot connect")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed, during or after the handshake.
    #[error("connection failed")]
    Connection(#[from] quinn::ConnectionError),
    /// The server presented another certificate than the pinned one.
    #[error(
        "server certificate fingerprint {found} does not match the pinned fingerprint {expected}"
    )]
    FingerprintMismatch {
        /// The fingerprint the client was told to expect.
        expected: Fingerprint,
        /// The fingerprint of the certificate the server presented.
        found: Fingerprint,
    },
    /// The peer presented no certificate (impossible with the configurations built here).
    #[error("peer presented no certificate")]
    NoPeerCertificate,
}

/// A QUIC endpoint that accepts connections on `addr`, requiring a client certificate and the
/// [`ALPN`].
pub fn server_endpoint(identity: &Identity, addr: SocketAddr) -> Result<Endpoint, TransportError> {
    server_endpoint_with(identity, addr, None)
}

/// [`server_endpoint`] whose stateless resets are signed with `reset_key` (a relay's key kept
/// across restarts) rather than a key drawn for this process.
pub fn server_endpoint_with(
    identity: &Identity,
    addr: SocketAddr,
    reset_key: Option<&ResetKey>,
) -> Result<Endpoint, TransportError> {
    let config = server_config(identity)?;
    let Some(key) = reset_key else {
        return Endpoint::server(config, addr)
            .map_err(|source| TransportError::Bind { addr, source });
    };
    let bind = |source| TransportError::Bind { addr, source };
    let socket = std::net::UdpSocket::bind(addr).map_err(bind)?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| bind(std::io::Error::other("no async runtime for quic")))?;
    Endpoint::new(key.endpoint_config(), Some(config), socket, runtime).map_err(bind)
}

/// A QUIC endpoint for outgoing connections only, bound to `bind` (use port 0). It has no default
/// client configuration on purpose: every connection goes through [`connect`], which pins the
/// server it expects.
pub fn client_endpoint(bind: SocketAddr) -> Result<Endpoint, TransportError> {
    Endpoint::client(bind).map_err(|source| TransportError::Bind { addr: bind, source })
}

/// Connects to `addr` as `identity`, accepting only a server whose certificate has the
/// fingerprint `expected`. Works from a client or a server endpoint (peer-to-peer).
pub async fn connect(
    endpoint: &Endpoint,
    identity: &Identity,
    addr: SocketAddr,
    expected: &Fingerprint,
) -> Result<Connection, TransportError> {
    connect_as(endpoint, identity, addr, expected, LinkKind::Sync).await
}

/// [`connect`] for a connection of `kind`.
pub async fn connect_as(
    endpoint: &Endpoint,
    identity: &Identity,
    addr: SocketAddr,
    expected: &Fingerprint,
    kind: LinkKind,
) -> Result<Connection, TransportError> {
    let (config, seen) = pinned_client_config(identity, expected, ALPN, kind)?;
    match endpoint.connect_with(config, addr, TLS_NAME)?.await {
        Ok(connection) => Ok(connection),
        // The verifier recorded what it refused; report that rather than the TLS alert.
        Err(_) if seen.get().is_some_and(|found| found != expected) => {
            Err(TransportError::FingerprintMismatch {
                expected: *expected,
                found: seen.get().copied().unwrap_or(*expected),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The fingerprint of the certificate the peer presented during the handshake.
pub fn peer_fingerprint(connection: &Connection) -> Result<Fingerprint, TransportError> {
    connection
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .and_then(|chain| chain.first().map(|cert| Fingerprint::of_certificate(cert)))
        .ok_or(TransportError::NoPeerCertificate)
}

/// The quinn server configuration: mutual TLS with [`AnySelfSignedClient`], the [`ALPN`], and
/// the transport limits of this module.
pub fn server_config(identity: &Identity) -> Result<quinn::ServerConfig, TransportError> {
    let provider = shared_crypto_provider();
    let verifier = Arc::new(AnySelfSignedClient {
        algorithms: provider.signature_verification_algorithms,
    });
    let (chain, key) = identity.tls_parts();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    let mut transport = transport_config();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_BIDI_STREAMS_PER_CONNECTION))
        .receive_window(VarInt::from_u32(CONNECTION_RECEIVE_WINDOW))
        .send_window(u64::from(CONNECTION_SEND_WINDOW));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// The quinn client configuration for one connection: our certificate, the [`ALPN`], and a
/// verifier pinned to `expected`.
pub fn client_config(
    identity: &Identity,
    expected: &Fingerprint,
) -> Result<quinn::ClientConfig, TransportError> {
    client_config_with_alpn(identity, expected, ALPN)
}

pub(crate) fn client_config_with_alpn(
    identity: &Identity,
    expected: &Fingerprint,
    alpn: &[u8],
) -> Result<quinn::ClientConfig, TransportError> {
    Ok(pinned_client_config(identity, expected, alpn, LinkKind::Sync)?.0)
}

/// The client configuration, and the cell where its verifier records the fingerprint the
/// server presented.
fn pinned_client_config(
    identity: &Identity,
    expected: &Fingerprint,
    alpn: &[u8],
    kind: LinkKind,
) -> Result<(quinn::ClientConfig, Arc<OnceLock<Fingerprint>>), TransportError> {
    let provider = shared_crypto_provider();
    let seen = Arc::new(OnceLock::new());
    let verifier = Arc::new(PinnedServer {
        expected: *expected,
        seen: seen.clone(),
        algorithms: provider.signature_verification_algorithms,
    });
    let (chain, key) = identity.tls_parts();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    let mut transport = transport_config();
    let (idle, keep_alive) = kind.timeouts();
    let idle_ms = u32::try_from(idle.as_millis()).unwrap_or(u32::MAX);
    transport
        .max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(idle_ms))))
        .keep_alive_interval(Some(keep_alive));
    // Servers never open streams towards clients.
    transport.max_concurrent_bidi_streams(VarInt::from_u32(0));
    config.transport_config(Arc::new(transport));
    Ok((config, seen))
}

/// Settings shared by both sides: timeouts, and no unidirectional streams or datagrams, which
/// the protocol does not use.
fn transport_config() -> TransportConfig {
    let mut transport = TransportConfig::default();
    let idle_ms = u32::try_from(IDLE_TIMEOUT.as_millis()).unwrap_or(u32::MAX);
    transport
        .max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(idle_ms))))
        .keep_alive_interval(Some(KEEP_ALIVE_INTERVAL))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .datagram_receive_buffer_size(None);
    transport
}

/// The handshake-signature methods of both verifiers, written once: whichever side verifies, the
/// peer proves it holds its certificate's key by the same checks against `self.algorithms`.
/// (The two rustls traits declare these methods separately, so a macro is what can share them.)
macro_rules! handshake_signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

/// Server-side verifier: any single, well-formed certificate is accepted, without a CA chain or
/// validity dates (identities are self-signed and long-lived; they are revoked by fingerprint).
/// The handshake signature is verified, which proves the client holds the certificate's key.
#[derive(Debug)]
struct AnySelfSignedClient {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnySelfSignedClient {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        check_single_certificate(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    handshake_signature_checks!();
}

/// Client-side verifier: the server must present exactly the certificate whose fingerprint was
/// pinned, and prove it holds its key.
#[derive(Debug)]
struct PinnedServer {
    expected: Fingerprint,
    /// The fingerprint the server presented, for [`connect`] to report a mismatch by type
    /// (rustls only carries it as a string in the TLS error).
    seen: Arc<OnceLock<Fingerprint>>,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The error handed to rustls when the server's certificate is not the pinned one.
#[derive(Debug, thiserror::Error)]
#[error("server certificate fingerprint {found} does not match the pinned fingerprint {expected}")]
struct Mismatch {
    expected: Fingerprint,
    found: Fingerprint,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        check_single_certificate(end_entity, intermediates)?;
        let found = Fingerprint::of_certificate(end_entity);
        // A configuration serves one connection, so there is one certificate to record.
        let _ = self.seen.set(found);
        if found != self.expected {
            let mismatch = Mismatch {
                expected: self.expected,
                found,
            };
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(mismatch)),
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    handshake_signature_checks!();
}

/// Identities are single self-signed certificates: a chain means something else is talking, and
/// an unparsable certificate could not be verified later anyway.
fn check_single_certificate(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Result<(), rustls::Error> {
    if !intermediates.is_empty() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ));
    }
    ParsedCertificate::try_from(end_entity)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[tokio::test]
    async fn mutual_tls_exposes_both_fingerprints() {
        let server_id = Identity::generate().unwrap();
        let client_id = Identity::generate().unwrap();
        let server = server_endpoint(&server_id, loopback()).unwrap();
        let addr = server.local_addr().unwrap();
        let client = client_endpoint(loopback()).unwrap();
        let server_fp = server_id.fingerprint();
        let (client_conn, server_conn) = tokio::time::timeout(WAIT, async {
            tokio::join!(connect(&client, &client_id, addr, &server_fp), async {
                server.accept().await.unwrap().await
            })
        })
        .await
        .unwrap();
        let client_conn = client_conn.unwrap();
        let server_conn = server_conn.unwrap();
        assert_eq!(
            peer_fingerprint(&server_conn).unwrap(),
            client_id.fingerprint()
        );
        assert_eq!(
            peer_fingerprint(&client_conn).unwrap(),
            server_id.fingerprint()
        );
        assert_eq!(
            client_conn
                .handshake_data()
                .unwrap()
                .downcast::<quinn::crypto::rustls::HandshakeData>()
                .unwrap()
                .protocol
                .as_deref(),
            Some(ALPN)
        );
    }

    #[tokio::test]
    async fn client_pinned_to_another_fingerprint_refuses_the_server() {
        let server_id = Identity::generate().unwrap();
        let client_id = Identity::generate().unwrap();
        let server = server_endpoint(&server_id, loopback()).unwrap();
        let addr = server.local_addr().unwrap();
        let client = client_endpoint(loopback()).unwrap();
        let wrong = Fingerprint::from_bytes([7; 32]);
        let (result, _) = tokio::time::timeout(WAIT, async {
            tokio::join!(connect(&client, &client_id, addr, &wrong), async {
                // The server side of the handshake fails too; only its outcome is awaited.
                if let Some(incoming) = server.accept().await {
                    let _ = incoming.await;
                }
            })
        })
        .await
        .unwrap();
        match result {
            Err(TransportError::FingerprintMismatch { expected, found }) => {
                assert_eq!(expected, wrong);
                assert_eq!(found, server_id.fingerprint());
            }
            other => panic!("expected a fingerprint mismatch, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn wrong_alpn_is_refused_during_the_handshake() {
        let server_id = Identity::generate().unwrap();
        let client_id = Identity::generate().unwrap();
        let server = server_endpoint(&server_id, loopback()).unwrap();
        let addr = server.local_addr().unwrap();
        let client = client_endpoint(loopback()).unwrap();
        let config =
            client_config_with_alpn(&client_id, &server_id.fingerprint(), b"atelier-sync/0")
                .unwrap();
        let (client_result, server_result) = tokio::time::timeout(WAIT, async {
            tokio::join!(
                async { client.connect_with(config, addr, TLS_NAME).unwrap().await },
                async { server.accept().await.unwrap().await }
            )
        })
        .await
        .unwrap();
        // TLS alert 120, no_application_protocol, on both sides.
        let no_alpn = quinn::TransportErrorCode::crypto(120);
        match client_result {
            Err(quinn::ConnectionError::ConnectionClosed(close)) => {
                assert_eq!(close.error_code, no_alpn)
            }
            other => panic!("client should be refused, got {other:?}"),
        }
        match server_result {
            Err(quinn::ConnectionError::TransportError(e)) => assert_eq!(e.code, no_alpn),
            other => panic!("server should refuse, got {other:?}"),
        }
    }
}
