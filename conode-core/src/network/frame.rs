//! Node-to-node framing: a u32 big-endian length, then a protobuf `Envelope` (version, kind, request
//! id, service, protocol, round id, payload; defined in `proto/network.proto`). Lengths above the
//! limit are refused before any allocation, and decoding never panics.

use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Wire version carried in every envelope.
pub const WIRE_VERSION: u32 = 1;
/// Default hard limit of one frame.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    Request = 1,
    Response = 2,
    Error = 3,
}

/// The frame body, generated from `proto/network.proto` (see [`crate::wire`]).
pub use crate::wire::network::Envelope;

impl Envelope {
    pub fn kind(&self) -> Option<Kind> {
        match self.kind {
            1 => Some(Kind::Request),
            2 => Some(Kind::Response),
            3 => Some(Kind::Error),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("undecodable frame: {0}")]
    Decode(String),
    #[error("unsupported wire version {0}")]
    Version(u32),
    #[error("connection closed")]
    Closed,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes an envelope with its length prefix.
pub fn encode(env: &Envelope) -> Vec<u8> {
    let len = env.encoded_len();
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    // Encoding into a Vec with enough capacity cannot fail.
    let _ = env.encode(&mut out);
    out
}

/// Writes one pre-encoded frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> Result<(), FrameError> {
    w.write_all(frame).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame; refuses lengths above `max`. Returns the envelope and its size on the wire.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<(Envelope, usize), FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let size = u32::from_be_bytes(len) as usize;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    let mut buf = vec![0u8; size];
    r.read_exact(&mut buf).await?;
    let env = decode(&buf)?;
    Ok((env, size + 4))
}

/// Decodes an envelope body (without the length prefix).
pub fn decode(buf: &[u8]) -> Result<Envelope, FrameError> {
    let env = Envelope::decode(buf).map_err(|e| FrameError::Decode(e.to_string()))?;
    if env.version != WIRE_VERSION {
        return Err(FrameError::Version(env.version));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[tokio::test]
    async fn roundtrip_and_limit() {
        let env = Envelope {
            version: WIRE_VERSION,
            kind: Kind::Request as u32,
            id: 7,
            service: "Net".into(),
            protocol: "Ping".into(),
            round_id: vec![1, 2],
            payload: vec![9; 100],
        };
        let bytes = encode(&env);
        let (got, n) = read_frame(&mut bytes.as_slice(), 1024).await.unwrap();
        assert_eq!((got, n), (env, bytes.len()));
        let err = read_frame(&mut bytes.as_slice(), 10).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max: 10, .. }), "{err}");
        let huge = [0xffu8, 0xff, 0xff, 0xff];
        assert!(matches!(read_frame(&mut &huge[..], DEFAULT_MAX_FRAME).await, Err(FrameError::TooLarge { .. })));
    }

    proptest! {
        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&data);
        }
    }
}
