//! The client side of the connection handshake: enrol with a token, or open a sync session.
//!
//! Used by the office CLI towards the relay, and by one office replica towards another. Every
//! connection pins the server's fingerprint (see `transport`).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use quinn::{Connection, ConnectionError, Endpoint};

use crate::framing::{FrameError, FramedStream};
use crate::handshake::{
    ClientHandshake, CloseCode, HandshakeError, ServerHandshake, MAX_HANDSHAKE_FRAME_SIZE,
};
use crate::identity::{Fingerprint, Identity};
use crate::server::HANDSHAKE_TIMEOUT;
use crate::transport::{self, LinkKind, TransportError};

/// The answer to a successful enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    /// The office the device now belongs to.
    pub office: String,
    /// Whether the device may only read.
    pub read_only: bool,
    /// The relay's fingerprint, to pin from now on (the one the client already pinned).
    pub relay_fingerprint: Fingerprint,
}

/// A sync session the server accepted.
#[derive(Debug)]
pub struct Opened {
    pub connection: Connection,
    /// Carries sync frames from here on.
    pub stream: FramedStream,
    /// The office the server knows this device as.
    pub office: String,
    /// Whether the server ignores this device's changes: its session should only pull.
    pub read_only: bool,
}

/// Errors of the client handshake.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection could not be established (unreachable, wrong fingerprint, wrong ALPN…).
    #[error("cannot connect")]
    Transport(#[from] TransportError),
    /// The connection was lost during the handshake.
    #[error("connection lost during the handshake")]
    Connection(#[from] ConnectionError),
    /// A frame could not be sent or received.
    #[error("handshake frame error")]
    Frame(#[from] FrameError),
    /// The server's answer could not be decoded.
    #[error("invalid answer from the server")]
    Handshake(#[from] HandshakeError),
    /// The server refused, and said why.
    #[error("refused by the server: {reason}")]
    Refused {
        /// The server's reason.
        reason: String,
    },
    /// The server closed the connection without an answer.
    #[error("server closed the connection ({code:?}): {reason}")]
    Closed {
        /// The close code, if it is one of ours.
        code: Option<CloseCode>,
        /// The server's reason.
        reason: String,
    },
    /// The server answered with a frame that makes no sense here.
    #[error("unexpected answer from the server: {0:?}")]
    Unexpected(ServerHandshake),
    /// The server presented another fingerprint in its answer than the one pinned.
    #[error("the server announced fingerprint {announced}, not the pinned {pinned}")]
    FingerprintMismatch {
        /// The fingerprint the client pinned (and TLS verified).
        pinned: Fingerprint,
        /// The fingerprint in the `Enrolled` frame.
        announced: Fingerprint,
    },
    /// The handshake took longer than [`HANDSHAKE_TIMEOUT`].
    #[error("handshake timed out")]
    Timeout,
}

/// Enrols `identity` with the server at `addr` (pinned to `server_fp`) using a one-time token,
/// from a fresh client endpoint.
pub async fn enrol(
    identity: &Identity,
    addr: SocketAddr,
    server_fp: &Fingerprint,
    token: &str,
) -> Result<Enrolled, ClientError> {
    let endpoint = transport::client_endpoint(unspecified_for(addr))?;
    let enrolled = enrol_on(&endpoint, identity, addr, server_fp, token).await;
    endpoint.wait_idle().await;
    enrolled
}

/// Opens a sync session as `identity` with the server at `addr` (pinned to `server_fp`) from a
/// fresh client endpoint: sends `Hello`, waits for `Welcome`.
pub async fn open(
    identity: &Identity,
    addr: SocketAddr,
    server_fp: &Fingerprint,
) -> Result<Opened, ClientError> {
    open_as(identity, addr, server_fp, LinkKind::Sync).await
}

/// [`open`] for a session that stays live while idle (see [`LinkKind::Live`]).
pub async fn open_live(
    identity: &Identity,
    addr: SocketAddr,
    server_fp: &Fingerprint,
) -> Result<Opened, ClientError> {
    open_as(identity, addr, server_fp, LinkKind::Live).await
}

async fn open_as(
    identity: &Identity,
    addr: SocketAddr,
    server_fp: &Fingerprint,
    kind: LinkKind,
) -> Result<Opened, ClientError> {
    let endpoint = transport::client_endpoint(unspecified_for(addr))?;
    // The connection keeps the endpoint's driver running after this handle is dropped.
    open_on_as(&endpoint, identity, addr, server_fp, kind).await
}

/// [`enrol`] from an existing endpoint (a peer's server endpoint, for instance).
pub async fn enrol_on(
    endpoint: &Endpoint,
    identity: &Identity,
    addr: SocketAddr,
    server_fp: &Fingerprint,
    token: &str,
) -> Result<Enrolled, ClientError> {
    let request = ClientHandshake::Join {
        token: token.to_owned(),
    };
    let (connection, _stream, reply) = with_timeout(exchange(
        endpoint,
        identity,
        addr,
        server_fp,
        &request,
        LinkKind::Sync,
    ))
    .await?;
    match reply {
        ServerHandshake::Enrolled {
            office,
            read_only,
            relay_fingerprint,
        } => {
            connection.close(CloseCode::Done.code(), b"enrolled");
            if relay_fingerprint != *server_fp {
                return Err(ClientError::FingerprintMismatch {
                    pinned: *server_fp,
                    announced: relay_fingerprint,
                });
            }
            Ok(Enrolled {
                office,
                read_only,
                relay_fingerprint,
            })
        }
        other => Err(unexpected(&connection, other)),
    }
}

/// [`open`] from an existing endpoint.
pub async fn open_on(
    endpoint: &Endpoint,
    identity: &Identity,
    addr: SocketAddr,
    server_fp: &Fingerprint,
) -> Result<Opened, ClientError> {
    open_on_as(endpoint, identity, addr, server_fp, LinkKind::Sync).await
}

async fn open_on_as(
    endpoint: &Endpoint,
    identity: &Identity,
    addr: SocketAddr,
    server_fp: &Fingerprint,
    kind: LinkKind,
) -> Result<Opened, ClientError> {
    let (connection, stream, reply) = with_timeout(exchange(
        endpoint,
        identity,
        addr,
        server_fp,
        &ClientHandshake::Hello,
        kind,
    ))
    .await?;
    match reply {
        ServerHandshake::Welcome { office, read_only } => Ok(Opened {
            connection,
            stream,
            office,
            read_only,
        }),
        other => Err(unexpected(&connection, other)),
    }
}

async fn with_timeout<T>(
    future: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, future)
        .await
        .unwrap_or(Err(ClientError::Timeout))
}

/// Connects, sends `request` on a new stream and reads the server's answer. A refusal becomes
/// [`ClientError::Refused`].
async fn exchange(
    endpoint: &Endpoint,
    identity: &Identity,
    addr: SocketAddr,
    server_fp: &Fingerprint,
    request: &ClientHandshake,
    kind: LinkKind,
) -> Result<(Connection, FramedStream, ServerHandshake), ClientError> {
    let connection = transport::connect_as(endpoint, identity, addr, server_fp, kind).await?;
    let (send, recv) = connection.open_bi().await?;
    let mut stream = FramedStream::new(send, recv);
    stream.send(&request.encode()?).await?;
    let frame = match stream.recv_limited(MAX_HANDSHAKE_FRAME_SIZE).await {
        Ok(Some(frame)) => frame,
        Ok(None) | Err(FrameError::Read(quinn::ReadError::ConnectionLost(_))) => {
            return Err(closed(&connection).await)
        }
        Err(e) => return Err(e.into()),
    };
    match ServerHandshake::decode(&frame)? {
        ServerHandshake::Refused { reason } => Err(ClientError::Refused { reason }),
        reply => Ok((connection, stream, reply)),
    }
}

/// Why the server closed the connection, once it has.
async fn closed(connection: &Connection) -> ClientError {
    match connection.closed().await {
        ConnectionError::ApplicationClosed(close) => ClientError::Closed {
            code: CloseCode::from_code(close.error_code),
            reason: String::from_utf8_lossy(&close.reason).into_owned(),
        },
        other => ClientError::Connection(other),
    }
}

fn unexpected(connection: &Connection, reply: ServerHandshake) -> ClientError {
    connection.close(CloseCode::Protocol.code(), b"unexpected handshake answer");
    ClientError::Unexpected(reply)
}

/// The wildcard address of the same family as `addr`, port 0, to bind a client endpoint.
fn unspecified_for(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}
