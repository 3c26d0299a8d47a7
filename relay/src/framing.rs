//! Length-prefixed frames on a QUIC bidirectional stream: a `u32` big-endian length, then the bytes.
//!
//! QUIC streams are byte streams; the sync protocol and the connection handshake exchange whole
//! messages. The length is checked against a limit before any byte of the body is buffered, and
//! the body is then accumulated as it arrives, so a peer that announces a large frame and sends
//! nothing costs nothing.

use quinn::{ReadError, ReadExactError, RecvStream, SendStream, WriteError};

/// Largest frame either side sends or accepts, in bytes: the sync protocol's own cap on one
/// message, since every frame carries one message (the handshake's are far smaller). Defined
/// once, in core, where the sync engine splits larger transfers to fit it.
pub use atelier_core::sync::MAX_FRAME_SIZE;

/// Size of the length prefix.
pub const HEADER_SIZE: usize = 4;

/// Capacity reserved up front for a frame body; it grows as bytes actually arrive. A small
/// number so that the announced length alone never decides how much memory is taken.
const INITIAL_BODY_CAPACITY: usize = 64 * 1024;

/// Errors while sending or receiving frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A frame is larger than the limit; `size` is the announced or attempted length.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Announced (receiving) or attempted (sending) frame length.
        size: u64,
        /// The limit in force.
        limit: usize,
    },
    /// The stream ended inside a length prefix.
    #[error("stream ended inside a frame header after {received} of 4 bytes")]
    TruncatedHeader {
        /// Header bytes received before the end.
        received: usize,
    },
    /// The stream ended inside a frame body.
    #[error("truncated frame: announced {size} bytes, stream ended after {received}")]
    Truncated {
        /// Announced frame length.
        size: usize,
        /// Body bytes received before the end.
        received: usize,
    },
    /// Reading from the stream failed (connection lost, stream reset…).
    #[error("cannot read frame")]
    Read(#[from] ReadError),
    /// Writing to the stream failed.
    #[error("cannot write frame")]
    Write(#[from] WriteError),
    /// The sending side was already finished or reset.
    #[error("stream already closed")]
    Closed(#[from] quinn::ClosedStream),
}

/// Both halves of a QUIC bidirectional stream, speaking in frames.
#[derive(Debug)]
pub struct FramedStream {
    /// The sending half.
    pub send: SendStream,
    /// The receiving half.
    pub recv: RecvStream,
}

impl FramedStream {
    /// Wraps the two halves of a bidirectional stream.
    pub fn new(send: SendStream, recv: RecvStream) -> Self {
        Self { send, recv }
    }

    /// Sends one frame. Frames above [`MAX_FRAME_SIZE`] are refused before anything is written.
    pub async fn send(&mut self, frame: &[u8]) -> Result<(), FrameError> {
        let header = encode_header(frame.len(), MAX_FRAME_SIZE)?;
        self.send.write_all(&header).await?;
        self.send.write_all(frame).await?;
        Ok(())
    }

    /// Receives one frame of at most [`MAX_FRAME_SIZE`] bytes, or `None` if the peer finished
    /// the stream cleanly between two frames.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        self.recv_limited(MAX_FRAME_SIZE).await
    }

    /// Receives one frame of at most `limit` bytes (capped at [`MAX_FRAME_SIZE`]). Used with a
    /// small limit before the peer is authenticated.
    pub async fn recv_limited(&mut self, limit: usize) -> Result<Option<Vec<u8>>, FrameError> {
        read_frame(&mut self.recv, limit).await
    }

    /// Ends the sending half cleanly: the peer's next [`FramedStream::recv`] returns `None`
    /// once it has read every frame.
    pub fn finish(&mut self) -> Result<(), FrameError> {
        self.send.finish()?;
        Ok(())
    }
}

/// Writes one frame on a sending half (for drivers that read and write from separate tasks).
pub async fn write_frame(send: &mut SendStream, frame: &[u8]) -> Result<(), FrameError> {
    let header = encode_header(frame.len(), MAX_FRAME_SIZE)?;
    send.write_all(&header).await?;
    send.write_all(frame).await?;
    Ok(())
}

/// Reads one frame of at most `limit` bytes from a receiving half; `None` on a clean end.
pub async fn read_frame(
    recv: &mut RecvStream,
    limit: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    match read_header(recv, limit).await? {
        Some(size) => read_body(recv, size).await.map(Some),
        None => Ok(None),
    }
}

/// Reads a frame's length prefix (at most `limit`, capped at [`MAX_FRAME_SIZE`]); `None` on a
/// clean end. With [`read_body`], lets a reader reserve memory for a frame before reading it.
pub async fn read_header(recv: &mut RecvStream, limit: usize) -> Result<Option<usize>, FrameError> {
    let limit = limit.min(MAX_FRAME_SIZE);
    let mut header = [0u8; HEADER_SIZE];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(ReadExactError::FinishedEarly(received)) => {
            return Err(FrameError::TruncatedHeader { received })
        }
        Err(ReadExactError::ReadError(e)) => return Err(e.into()),
    }
    decode_header(header, limit).map(Some)
}

/// Reads the `size` bytes of a frame body whose header [`read_header`] read.
pub async fn read_body(recv: &mut RecvStream, size: usize) -> Result<Vec<u8>, FrameError> {
    let mut body = Vec::with_capacity(size.min(INITIAL_BODY_CAPACITY));
    while body.len() < size {
        match recv.read_chunk(size - body.len(), true).await? {
            Some(chunk) => body.extend_from_slice(&chunk.bytes),
            None => {
                return Err(FrameError::Truncated {
                    size,
                    received: body.len(),
                })
            }
        }
    }
    Ok(body)
}

/// The length prefix for a frame of `len` bytes, if `len` is within `limit`.
fn encode_header(len: usize, limit: usize) -> Result<[u8; HEADER_SIZE], FrameError> {
    let too_large = || FrameError::TooLarge {
        size: len as u64,
        limit,
    };
    if len > limit {
        return Err(too_large());
    }
    let len = u32::try_from(len).map_err(|_| too_large())?;
    Ok(len.to_be_bytes())
}

/// The body length announced by a peer's length prefix, if within `limit`: the one check
/// before anything is allocated for a frame (public for the fuzz targets in `fuzz/`).
pub fn decode_header(header: [u8; HEADER_SIZE], limit: usize) -> Result<usize, FrameError> {
    let size = u32::from_be_bytes(header);
    match usize::try_from(size) {
        Ok(size) if size <= limit => Ok(size),
        _ => Err(FrameError::TooLarge {
            size: u64::from(size),
            limit,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::transport;
    use std::time::Duration;

    /// Bound on every wait in these tests; generous because CI machines are slow, and only
    /// reached when something is broken.
    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn header_round_trips_and_checks_the_limit() {
        assert_eq!(encode_header(0x0102_0304, MAX_FRAME_SIZE).ok(), None);
        assert_eq!(encode_header(258, 1000).unwrap(), [0, 0, 1, 2]);
        assert_eq!(decode_header([0, 0, 1, 2], 1000).unwrap(), 258);
        let err = decode_header([0xff; 4], MAX_FRAME_SIZE).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::TooLarge {
                    size: 0xffff_ffff,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("4294967295"), "{err}");
    }

    /// Two raw QUIC endpoints with one bidirectional stream between them, no handshake frames.
    async fn stream_pair() -> (quinn::Endpoint, FramedStream, quinn::Endpoint, FramedStream) {
        let server_id = Identity::generate().unwrap();
        let client_id = Identity::generate().unwrap();
        let server =
            transport::server_endpoint(&server_id, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        let client = transport::client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
        let fp = server_id.fingerprint();
        let (client_conn, server_conn) =
            tokio::join!(transport::connect(&client, &client_id, addr, &fp), async {
                server.accept().await.unwrap().await.unwrap()
            });
        let client_conn = client_conn.unwrap();
        let (send, recv) = client_conn.open_bi().await.unwrap();
        // A stream exists for the peer only once something was sent on it, hence the "hi".
        let mut client_stream = FramedStream::new(send, recv);
        client_stream.send(b"hi").await.unwrap();
        let (ssend, srecv) = server_conn.accept_bi().await.unwrap();
        let mut server_stream = FramedStream::new(ssend, srecv);
        assert_eq!(server_stream.recv().await.unwrap().unwrap(), b"hi");
        (client, client_stream, server, server_stream)
    }

    #[tokio::test]
    async fn frames_round_trip_and_end_cleanly() {
        let (_c, mut client, _s, mut server) =
            tokio::time::timeout(WAIT, stream_pair()).await.unwrap();
        let big = vec![7u8; 3 * 1024 * 1024 + 5];
        let empty: &[u8] = &[];
        // Larger than quinn's stream window: sending and receiving must run together.
        let sending = async {
            client.send(empty).await.unwrap();
            client.send(&big).await.unwrap();
            client.finish().unwrap();
        };
        let receiving = async {
            let mut all = Vec::new();
            while let Some(frame) = server.recv().await.unwrap() {
                all.push(frame);
            }
            all
        };
        let ((), received) = tokio::time::timeout(WAIT, async { tokio::join!(sending, receiving) })
            .await
            .unwrap();
        assert_eq!(received, vec![Vec::new(), big]);
    }

    #[tokio::test]
    async fn oversize_announcement_is_refused_without_waiting_for_the_body() {
        let (_c, mut client, _s, mut server) =
            tokio::time::timeout(WAIT, stream_pair()).await.unwrap();
        // A header claiming 4 GiB and no body: the error comes from the header alone.
        client
            .send
            .write_all(&[0xff, 0xff, 0xff, 0xff])
            .await
            .unwrap();
        let err = tokio::time::timeout(WAIT, server.recv())
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::TooLarge {
                    size: 0xffff_ffff,
                    ..
                }
            ),
            "{err}"
        );
        let err = client
            .send(&vec![0u8; MAX_FRAME_SIZE + 1])
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
    }

    #[tokio::test]
    async fn small_limit_applies_before_authentication() {
        let (_c, mut client, _s, mut server) =
            tokio::time::timeout(WAIT, stream_pair()).await.unwrap();
        client.send(&[1u8; 100]).await.unwrap();
        let err = tokio::time::timeout(WAIT, server.recv_limited(99))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::TooLarge {
                    size: 100,
                    limit: 99
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn truncated_frames_are_errors_naming_the_size() {
        let (_c, mut client, _s, mut server) =
            tokio::time::timeout(WAIT, stream_pair()).await.unwrap();
        client
            .send
            .write_all(&[0, 0, 0, 10, 1, 2, 3])
            .await
            .unwrap();
        client.finish().unwrap();
        let err = tokio::time::timeout(WAIT, server.recv())
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::Truncated {
                    size: 10,
                    received: 3
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("10 bytes"), "{err}");

        let (_c, mut client, _s, mut server) =
            tokio::time::timeout(WAIT, stream_pair()).await.unwrap();
        client.send.write_all(&[0, 0]).await.unwrap();
        client.finish().unwrap();
        let err = tokio::time::timeout(WAIT, server.recv())
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(err, FrameError::TruncatedHeader { received: 2 }),
            "{err}"
        );
    }

    proptest::proptest! {
        /// Fuzz campaign, in the test suite: any length prefix a peer sends is judged against
        /// the limit, never trusted (the body is read only up to what it announces).
        #[test]
        fn any_length_prefix_is_judged_without_panicking(header in proptest::array::uniform4(proptest::num::u8::ANY), limit in proptest::num::usize::ANY) {
            if let Ok(size) = decode_header(header, limit) {
                proptest::prop_assert!(size <= limit);
                proptest::prop_assert_eq!(size as u32, u32::from_be_bytes(header));
            }
        }
    }
}
