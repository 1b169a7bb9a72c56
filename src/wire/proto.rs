//! Protobuf fields written by hand, for the encoders on the hot path that
//! write a message straight from domain values instead of building prost
//! structs (`ingest::event_wire::delivery_event`,
//! `journal::record::encode_events` and `encode_stored`). Zero numbers and empty strings are
//! left out, as proto3 does, so the bytes are exactly prost's (each
//! encoder's tests decode, or re-encode, them with prost).

use bytes::{BufMut, BytesMut};
use prost::encoding::{WireType, encode_varint, encoded_len_varint, key_len};

/// Bytes [`put_uint`] writes.
pub fn uint_len(tag: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(v)
    }
}

/// Bytes [`put_bytes`] writes for `n` bytes of content.
pub fn bytes_len(tag: u32, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(n as u64) + n
    }
}

/// Bytes a field's key and length take before `n` bytes of an embedded
/// message (written even when `n` is 0).
pub fn message_head_len(tag: u32, n: usize) -> usize {
    key_len(tag) + encoded_len_varint(n as u64)
}

/// A varint; the one-byte ones (every key below tag 16, most lengths and
/// states) without a call.
#[inline]
fn varint(v: u64, b: &mut BytesMut) {
    if v < 0x80 {
        b.put_u8(v as u8);
    } else {
        encode_varint(v, b);
    }
}

#[inline]
fn key(tag: u32, wire_type: WireType, b: &mut BytesMut) {
    varint(u64::from(tag << 3 | wire_type as u32), b);
}

/// A varint field, unless `v` is 0.
pub fn put_uint(tag: u32, v: u64, b: &mut BytesMut) {
    if v != 0 {
        key(tag, WireType::Varint, b);
        varint(v, b);
    }
}

/// A length-delimited field, unless `s` is empty.
pub fn put_bytes(tag: u32, s: &[u8], b: &mut BytesMut) {
    if !s.is_empty() {
        key(tag, WireType::LengthDelimited, b);
        varint(s.len() as u64, b);
        b.put_slice(s);
    }
}

/// The key and length of an embedded message of `n` bytes, which the caller
/// writes next.
pub fn put_message_head(tag: u32, n: usize, b: &mut BytesMut) {
    key(tag, WireType::LengthDelimited, b);
    varint(n as u64, b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::encoding::encode_key;

    /// Every field writer gives prost's bytes and the length its `_len`
    /// says, across the one-byte boundary of keys, values and lengths.
    #[test]
    fn fields_are_prosts_bytes_of_the_length_announced() {
        let values = [1, 0x7F, 0x80, 0x3FFF, 0x4000, u64::from(u32::MAX), u64::MAX];
        for tag in [1, 15, 16, 2047, 2048, (1 << 29) - 1] {
            for v in values {
                let mut ours = BytesMut::new();
                put_uint(tag, v, &mut ours);
                let mut theirs = BytesMut::new();
                encode_key(tag, WireType::Varint, &mut theirs);
                encode_varint(v, &mut theirs);
                assert_eq!((ours.len(), &ours), (uint_len(tag, v), &theirs));
            }
            for n in [1, 0x7F, 0x80, 300, 0x4000] {
                let content = vec![b'x'; n];
                let mut ours = BytesMut::new();
                put_bytes(tag, &content, &mut ours);
                let mut theirs = BytesMut::new();
                prost::encoding::bytes::encode(tag, &content, &mut theirs);
                assert_eq!((ours.len(), &ours), (bytes_len(tag, n), &theirs));
                let mut head = BytesMut::new();
                put_message_head(tag, n, &mut head);
                assert_eq!(head.len(), message_head_len(tag, n));
                assert_eq!(&theirs[..head.len()], &head[..]);
            }
            let mut nothing = BytesMut::new();
            put_uint(tag, 0, &mut nothing);
            put_bytes(tag, b"", &mut nothing);
            assert!(nothing.is_empty() && uint_len(tag, 0) == 0 && bytes_len(tag, 0) == 0);
        }
    }
}
