//! Framing of an SMPP byte stream into [`Pdu`]s: a `tokio_util` codec.
//!
//! This file owns only the framing: find the 4-octet `command_length`, check
//! it, wait for the whole frame, cut it off as a `Bytes` without copying, and
//! hand it to [`Pdu::decode`]. Field layout lives in [`super::pdu`]; buffers and
//! the read loop belong to the session that wraps this codec in a `Framed`.
//!
//! Two kinds of failure, kept apart on purpose:
//!
//! - A `command_length` outside `16..=max_pdu_len` is fatal
//!   ([`CodecError::Length`]): the stream cannot be resynchronised, so the
//!   connection must be dropped. It is checked as soon as the first four octets
//!   are in, before anything is reserved for the frame.
//! - A complete frame whose body does not decode yields `Ok(Some(Err(_)))`
//!   with the [`PduError`], so the session can answer with a `generic_nack` and
//!   carry on reading the next frame.

use std::io;

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::pdu::{HEADER_LEN, Pdu, PduError};

#[cfg(test)]
mod tests;

/// Default largest PDU accepted: 64 KiB (a submit_sm with a full
/// `message_payload` TLV fits).
pub const DEFAULT_MAX_PDU_LEN: usize = 64 * 1024;

/// Fatal stream errors: after one of these the connection should be closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A `command_length` outside `16..=max`, read by the decoder, or a PDU
    /// longer than `max` handed to the encoder.
    #[error("PDU length {length} outside 16..={max}")]
    Length {
        /// The offending length.
        length: usize,
        /// The codec's `max_pdu_len`.
        max: usize,
    },
    /// The underlying transport failed (or closed in the middle of a frame).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Splits a byte stream into SMPP PDUs and encodes PDUs onto it.
///
/// # Defaults
/// `max_pdu_len` is [`DEFAULT_MAX_PDU_LEN`] (64 KiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmppCodec {
    max_pdu_len: usize,
}

impl SmppCodec {
    /// A codec accepting PDUs of up to `max_pdu_len` octets, header included
    /// (raised to 16 if smaller, since no PDU is shorter than its header).
    pub fn new(max_pdu_len: usize) -> SmppCodec {
        SmppCodec {
            max_pdu_len: max_pdu_len.max(HEADER_LEN),
        }
    }

    /// The largest PDU this codec accepts, header included.
    pub fn max_pdu_len(&self) -> usize {
        self.max_pdu_len
    }
}

impl Default for SmppCodec {
    fn default() -> Self {
        SmppCodec::new(DEFAULT_MAX_PDU_LEN)
    }
}

impl Decoder for SmppCodec {
    type Item = Result<Pdu, PduError>;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, CodecError> {
        if src.len() < 4 {
            src.reserve(HEADER_LEN - src.len());
            return Ok(None);
        }
        let length = (&src[..4]).get_u32() as usize;
        if !(HEADER_LEN..=self.max_pdu_len).contains(&length) {
            return Err(CodecError::Length {
                length,
                max: self.max_pdu_len,
            });
        }
        if src.len() < length {
            src.reserve(length - src.len());
            return Ok(None);
        }
        let frame = src.split_to(length).freeze();
        Ok(Some(Pdu::decode(frame)))
    }
}

impl Encoder<&Pdu> for SmppCodec {
    type Error = CodecError;

    /// # Errors
    /// [`CodecError::Length`] when the PDU is longer than `max_pdu_len`;
    /// nothing is written then.
    fn encode(&mut self, pdu: &Pdu, dst: &mut BytesMut) -> Result<(), CodecError> {
        let length = pdu.encoded_len();
        if length > self.max_pdu_len {
            return Err(CodecError::Length {
                length,
                max: self.max_pdu_len,
            });
        }
        pdu.encode_len(length, dst);
        Ok(())
    }
}

impl Encoder<Pdu> for SmppCodec {
    type Error = CodecError;

    fn encode(&mut self, pdu: Pdu, dst: &mut BytesMut) -> Result<(), CodecError> {
        Encoder::<&Pdu>::encode(self, &pdu, dst)
    }
}
