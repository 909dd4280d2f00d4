//! Node-to-node framing: a u32 big-endian length, then a protobuf `Envelope` (version, kind, request
//! id, service, protocol, round id, payload; defined in `proto/network.proto`). Lengths above the
//! limit are refused before any allocation, the limit may depend on the frame's route (service and
//! protocol, read from the first bytes), the buffer grows only with bytes received (never from the
//! declared length alone), and decoding never panics.

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
    #[error("{service}/{protocol} is not served to this peer")]
    NotServed { service: String, protocol: String },
    #[error("no frame within {0:?}")]
    Idle(std::time::Duration),
    #[error("frame not received within {0:?}")]
    Slow(std::time::Duration),
    #[error("memory budget for unknown peers exhausted")]
    Budget,
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
    let size = read_length(r).await?;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    let buf = read_body(r, size, |_| Ok(max), |_| Ok(())).await?;
    let env = decode(&buf)?;
    Ok((env, size + 4))
}

/// Reads the 4-byte length prefix; `Closed` when the peer closed cleanly before it.
pub async fn read_length<R: AsyncRead + Unpin>(r: &mut R) -> Result<usize, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => Ok(u32::from_be_bytes(len) as usize),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Closed),
        Err(e) => Err(e.into()),
    }
}

/// How many bytes of a body are read before its route is looked at.
pub const ROUTE_PREFIX: usize = 512;
/// Largest read of a body at once: the buffer grows by at most this much beyond what arrived.
pub const CHUNK: usize = 64 * 1024;

/// Reads a body of `size` bytes. `limit` gets the route (service, protocol) found in the first
/// bytes, if any, and returns the largest size allowed for it (or refuses the route); `on_chunk`
/// is told of every chunk before the buffer grows for it (a memory budget may refuse).
pub async fn read_body<R, L, C>(r: &mut R, size: usize, limit: L, mut on_chunk: C) -> Result<Vec<u8>, FrameError>
where
    R: AsyncRead + Unpin,
    L: FnOnce(Option<Route<'_>>) -> Result<usize, FrameError>,
    C: FnMut(usize) -> Result<(), FrameError>,
{
    let first = size.min(ROUTE_PREFIX);
    on_chunk(first)?;
    let mut buf = vec![0u8; first];
    r.read_exact(&mut buf).await?;
    let max = limit(peek_route(&buf))?;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    while buf.len() < size {
        let want = (size - buf.len()).min(CHUNK);
        on_chunk(want)?;
        let start = buf.len();
        buf.resize(start + want, 0);
        let mut filled = 0;
        while filled < want {
            let n = r.read(&mut buf[start + filled..start + want]).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
            filled += n;
        }
    }
    Ok(buf)
}

/// Where a frame goes: its kind, service and protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route<'a> {
    pub kind: u32,
    pub service: &'a str,
    pub protocol: &'a str,
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The route of an envelope from the first bytes of its encoding (the fields before the payload),
/// without decoding the rest; `None` when they are not all there or not well-formed.
pub fn peek_route(prefix: &[u8]) -> Option<Route<'_>> {
    let (mut pos, mut kind, mut service, mut protocol) = (0usize, None, None, None);
    while pos < prefix.len() {
        let key = varint(prefix, &mut pos)?;
        let (field, wire_type) = (key >> 3, key & 7);
        match wire_type {
            0 => {
                let v = varint(prefix, &mut pos)?;
                if field == 2 {
                    kind = Some(u32::try_from(v).ok()?);
                }
            }
            2 => {
                let len = usize::try_from(varint(prefix, &mut pos)?).ok()?;
                if field >= 6 {
                    // round_id and payload come after the route.
                    break;
                }
                let end = pos.checked_add(len)?;
                let bytes = prefix.get(pos..end)?;
                pos = end;
                match field {
                    4 => service = Some(std::str::from_utf8(bytes).ok()?),
                    5 => protocol = Some(std::str::from_utf8(bytes).ok()?),
                    _ => {}
                }
            }
            1 => pos = pos.checked_add(8)?,
            5 => pos = pos.checked_add(4)?,
            _ => return None,
        }
        if let (Some(kind), Some(service), Some(protocol)) = (kind, service, protocol) {
            return Some(Route { kind, service, protocol });
        }
    }
    // proto3 leaves out empty fields: a missing kind is 0, missing strings are empty.
    match (service, protocol) {
        (Some(service), Some(protocol)) => Some(Route { kind: kind.unwrap_or(0), service, protocol }),
        _ => None,
    }
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

    #[test]
    fn route_is_read_from_the_prefix() {
        let env = Envelope {
            version: WIRE_VERSION,
            kind: Kind::Request as u32,
            id: 300,
            service: "Cosi".into(),
            protocol: "Announce".into(),
            round_id: vec![1; 40],
            payload: vec![9; 4000],
        };
        let bytes = encode(&env);
        let route = peek_route(&bytes[4..4 + ROUTE_PREFIX]).unwrap();
        assert_eq!(route, Route { kind: 1, service: "Cosi", protocol: "Announce" });
        assert_eq!(peek_route(&bytes[4..12]), None);
    }

    #[tokio::test]
    async fn route_limit_refuses_before_reading_the_body() {
        let env = Envelope {
            version: WIRE_VERSION,
            kind: 1,
            service: "Net".into(),
            protocol: "Ping".into(),
            payload: vec![0; 5000],
            ..Default::default()
        };
        let bytes = encode(&env);
        let mut r = &bytes[4..];
        let err = read_body(
            &mut r,
            bytes.len() - 4,
            |route| Ok(if route.map(|r| r.service) == Some("Net") { 1024 } else { 1 << 20 }),
            |_| Ok(()),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max: 1024, .. }), "{err}");
        // Only the route prefix was consumed.
        assert_eq!(r.len(), bytes.len() - 4 - ROUTE_PREFIX);
    }

    #[tokio::test]
    async fn buffer_follows_received_bytes() {
        // A declared 16 MiB frame of which 100 bytes arrive: the read fails without having
        // reserved more than what arrived plus one chunk.
        let mut data = vec![0u8; 100];
        data[0] = 0x0a;
        let mut seen = 0usize;
        let err = read_body(
            &mut data.as_slice(),
            16 << 20,
            |_| Ok(16 << 20),
            |n| {
                seen += n;
                Ok(())
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, FrameError::Io(_)), "{err}");
        assert!(seen <= ROUTE_PREFIX + CHUNK, "{seen}");
    }

    proptest! {
        #[test]
        fn peek_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = peek_route(&data);
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&data);
        }
    }
}
