//! The connection handshake: the first frames on a connection's stream, before any sync frame.
//!
//! The client speaks first, with [`ClientHandshake::Join`] (enrol this certificate with a
//! one-time token) or [`ClientHandshake::Hello`] (I am enrolled, let me sync). The server
//! answers with one [`ServerHandshake`]. Frames are JSON: they are a few hundred bytes once per
//! connection, and readable in a packet capture or a log when enrolment goes wrong. Connections
//! that end abnormally are closed with a [`CloseCode`] and a reason string.

use quinn::VarInt;
use serde::{Deserialize, Serialize};

use crate::identity::Fingerprint;

/// Largest handshake frame accepted, in bytes. The longest legitimate one is a `Join` with a
/// 64-character token (under 100 bytes); 4 KiB leaves room for future fields while keeping
/// what an unauthenticated peer can make the server buffer negligible.
pub const MAX_HANDSHAKE_FRAME_SIZE: usize = 4 * 1024;

/// Frames the client sends to open a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientHandshake {
    /// Enrol the certificate of this connection with a one-time enrolment token.
    Join {
        /// The token printed by `atelier-relay invite`.
        token: String,
    },
    /// Start a session as an already enrolled device.
    Hello,
}

/// Frames the server answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerHandshake {
    /// The certificate is now enrolled; the server then closes the connection, and the device
    /// reconnects with `Hello`.
    Enrolled {
        /// The office the device now belongs to.
        office: String,
        /// Whether the device may only read.
        read_only: bool,
        /// The relay's own fingerprint, for the device to pin from now on.
        relay_fingerprint: Fingerprint,
    },
    /// The request is refused; the connection is closed.
    Refused {
        /// Why, in words meant for the person running the client.
        reason: String,
    },
    /// The session is open; every following frame on the stream belongs to the sync protocol.
    Welcome {
        /// The office the device belongs to.
        office: String,
        /// Whether the device may only read.
        read_only: bool,
    },
}

/// Errors decoding or encoding handshake frames.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The bytes are not a handshake frame of the expected kind.
    #[error("malformed handshake frame: {0}")]
    Malformed(#[source] serde_json::Error),
    /// A frame could not be encoded (never expected for these types).
    #[error("cannot encode handshake frame")]
    Encode(#[source] serde_json::Error),
}

impl ClientHandshake {
    /// Encodes the frame body.
    pub fn encode(&self) -> Result<Vec<u8>, HandshakeError> {
        serde_json::to_vec(self).map_err(HandshakeError::Encode)
    }

    /// Decodes a frame body received from a client.
    pub fn decode(bytes: &[u8]) -> Result<Self, HandshakeError> {
        serde_json::from_slice(bytes).map_err(HandshakeError::Malformed)
    }
}

impl ServerHandshake {
    /// Encodes the frame body.
    pub fn encode(&self) -> Result<Vec<u8>, HandshakeError> {
        serde_json::to_vec(self).map_err(HandshakeError::Encode)
    }

    /// Decodes a frame body received from a server.
    pub fn decode(bytes: &[u8]) -> Result<Self, HandshakeError> {
        serde_json::from_slice(bytes).map_err(HandshakeError::Malformed)
    }
}

/// Application close codes, sent with a reason string when a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum CloseCode {
    /// The exchange is over and nothing went wrong.
    Done = 0,
    /// Enrolment or authorization was refused.
    Refused = 1,
    /// The peer broke the protocol: malformed, unexpected or oversize frame.
    Protocol = 2,
    /// The peer took too long to complete the handshake.
    Timeout = 3,
    /// The connection handler failed; the reason says why.
    HandlerFailed = 4,
    /// The connection handler panicked; the details are in the server's log only.
    HandlerPanicked = 5,
    /// The server is shutting down.
    ShuttingDown = 6,
}

impl CloseCode {
    /// The code as sent on the wire.
    pub fn code(self) -> VarInt {
        VarInt::from_u32(self as u32)
    }

    /// The close code matching a wire value, if it is one of ours.
    pub fn from_code(code: VarInt) -> Option<Self> {
        [
            Self::Done,
            Self::Refused,
            Self::Protocol,
            Self::Timeout,
            Self::HandlerFailed,
            Self::HandlerPanicked,
            Self::ShuttingDown,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let join = ClientHandshake::Join {
            token: "ab".repeat(32),
        };
        assert_eq!(
            ClientHandshake::decode(&join.encode().unwrap()).unwrap(),
            join
        );
        let hello = ClientHandshake::Hello;
        assert_eq!(
            String::from_utf8(hello.encode().unwrap()).unwrap(),
            r#"{"type":"hello"}"#
        );
        let enrolled = ServerHandshake::Enrolled {
            office: "caue-15".into(),
            read_only: true,
            relay_fingerprint: Fingerprint::from_bytes([1; 32]),
        };
        assert_eq!(
            ServerHandshake::decode(&enrolled.encode().unwrap()).unwrap(),
            enrolled
        );
        assert!(join.encode().unwrap().len() < MAX_HANDSHAKE_FRAME_SIZE);
    }

    #[test]
    fn garbage_and_wrong_direction_are_malformed() {
        for bytes in [
            &b"\x00\xff garbage"[..],
            br#"{"type":"welcome","office":"caue-15","read_only":false}"#,
            br#"{"type":"join"}"#,
            br#"{"type":"hello""#,
            b"",
        ] {
            assert!(
                matches!(
                    ClientHandshake::decode(bytes),
                    Err(HandshakeError::Malformed(_))
                ),
                "{bytes:?}"
            );
        }
        assert!(ServerHandshake::decode(br#"{"type":"hello"}"#).is_err());
        let bad_fp =
            br#"{"type":"enrolled","office":"caue-15","read_only":false,"relay_fingerprint":"zz"}"#;
        assert!(ServerHandshake::decode(bad_fp).is_err());
    }

    #[test]
    fn close_codes_round_trip() {
        for code in [
            CloseCode::Done,
            CloseCode::HandlerPanicked,
            CloseCode::ShuttingDown,
        ] {
            assert_eq!(CloseCode::from_code(code.code()), Some(code));
        }
        assert_eq!(CloseCode::from_code(VarInt::from_u32(999)), None);
    }

    proptest::proptest! {
        /// Fuzz campaign, in the test suite: any handshake frame body (what arrives before
        /// authentication) decodes or fails without panicking.
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = ClientHandshake::decode(&bytes);
            let _ = ServerHandshake::decode(&bytes);
        }

        #[test]
        fn any_json_decodes_or_fails_without_panicking(
            json in "\\{\"(Join|Hello|Welcome|Refused|[a-z]{0,5})\":(null|\"[ -~]{0,20}\"|\\{(\"[a-z_]{1,8}\":(\"[ -~]{0,12}\"|[0-9]{1,3}|true|null),?){0,4}\\})\\}",
        ) {
            let _ = ClientHandshake::decode(json.as_bytes());
            let _ = ServerHandshake::decode(json.as_bytes());
        }
    }
}
