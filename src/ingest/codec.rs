//! Frame codec for the ingest protocol: a 4-byte big-endian length followed
//! by one protobuf `Frame`.
//!
//! Framing is `tokio_util`'s `LengthDelimitedCodec`, which checks the declared
//! length against the maximum before it buffers anything; this file adds the
//! protobuf layer and the encoders both sides share, including a pre-encoded
//! event path that splices stored event bytes into a frame without decoding
//! them again.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use tokio_util::codec::LengthDelimitedCodec;

use super::pb;
use crate::journal::PendingEvent;

/// A length-delimited codec with the protocol's framing and `max` frame bytes.
pub fn length_codec(max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max)
        .new_codec()
}

/// Encodes a frame with its 4-byte length prefix into `dst`.
pub fn encode_frame(dst: &mut BytesMut, request_id: u64, body: pb::frame::Body) {
    let frame = pb::Frame {
        request_id,
        body: Some(body),
    };
    let len = frame.encoded_len();
    dst.reserve(4 + len);
    dst.put_u32(len as u32);
    frame.encode(dst).expect("reserved capacity is sufficient");
}

/// Encodes a frame with its length prefix into new bytes.
pub fn frame_bytes(request_id: u64, body: pb::frame::Body) -> Bytes {
    let mut b = BytesMut::new();
    encode_frame(&mut b, request_id, body);
    b.freeze()
}

/// Field number of `Frame.event_batch`.
const FRAME_EVENT_BATCH: u32 = 8;
/// Field number of `EventBatch.events`.
const BATCH_EVENTS: u32 = 1;

/// Builds a length-prefixed `Frame { event_batch }` from already-encoded
/// `Event`s: the stored bytes are copied once into the frame, never decoded.
pub fn event_batch_frame(events: &[std::sync::Arc<PendingEvent>]) -> Bytes {
    let batch_len: usize = events
        .iter()
        .map(|e| 1 + encoded_len_varint(e.payload.len() as u64) + e.payload.len())
        .sum();
    let frame_len = 1 + encoded_len_varint(batch_len as u64) + batch_len;
    let mut b = BytesMut::with_capacity(4 + frame_len);
    b.put_u32(frame_len as u32);
    encode_key(FRAME_EVENT_BATCH, WireType::LengthDelimited, &mut b);
    encode_varint(batch_len as u64, &mut b);
    for e in events {
        encode_key(BATCH_EVENTS, WireType::LengthDelimited, &mut b);
        encode_varint(e.payload.len() as u64, &mut b);
        b.put_slice(&e.payload);
    }
    debug_assert_eq!(b.len(), 4 + frame_len);
    b.freeze()
}

/// Why a received frame body is unusable (the connection can carry on).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Not valid protobuf for `Frame`.
    #[error("invalid protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A frame with no body, or a body type this build does not know.
    #[error("frame has no known body")]
    UnknownBody,
}

/// Decodes one frame body (without its length prefix).
///
/// # Errors
/// [`FrameError`] for undecodable or unknown frames.
pub fn decode_frame(bytes: Bytes) -> Result<(u64, pb::frame::Body), FrameError> {
    let f = pb::Frame::decode(bytes)?;
    match f.body {
        Some(body) => Ok((f.request_id, body)),
        None => Err(FrameError::UnknownBody),
    }
}

#[cfg(test)]
mod tests;
