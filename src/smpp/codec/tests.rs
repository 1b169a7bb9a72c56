use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};

use super::*;
use crate::smpp::pdu::{Body, CommandStatus, SubmitSm, Tlv, tag};

fn submit_sm(seq: u32) -> Pdu {
    Pdu::new(
        seq,
        Body::SubmitSm(SubmitSm {
            source_addr: Bytes::from_static(b"12345"),
            destination_addr: Bytes::from_static(b"14155550100"),
            short_message: Bytes::from_static(b"hello there"),
            tlvs: vec![Tlv::from_u16(tag::SAR_MSG_REF_NUM, 7)],
            ..SubmitSm::default()
        }),
    )
}

fn script() -> (Vec<Pdu>, Bytes) {
    let pdus = vec![
        Pdu::enquire_link(1),
        submit_sm(2),
        Pdu::submit_sm_resp(2, CommandStatus::ESME_ROK, "0a1b2c"),
        Pdu::submit_sm_resp(3, CommandStatus::ESME_RTHROTTLED, ""),
        Pdu::deliver_sm_resp(4, CommandStatus::ESME_ROK),
        Pdu::unbind(5),
    ];
    let mut wire = BytesMut::new();
    for pdu in &pdus {
        pdu.encode(&mut wire);
    }
    (pdus, wire.freeze())
}

fn decode_all(codec: &mut SmppCodec, src: &mut BytesMut) -> Vec<Pdu> {
    let mut out = Vec::new();
    while let Some(item) = codec.decode(src).unwrap() {
        out.push(item.unwrap());
    }
    out
}

#[test]
fn one_byte_at_a_time() {
    let (pdus, wire) = script();
    let mut codec = SmppCodec::default();
    let mut src = BytesMut::new();
    let mut out = Vec::new();
    for &b in wire.iter() {
        src.put_u8(b);
        out.extend(decode_all(&mut codec, &mut src));
    }
    assert_eq!(out, pdus);
    assert!(src.is_empty());
}

#[test]
fn every_split_point() {
    let (pdus, wire) = script();
    for at in 0..=wire.len() {
        let mut codec = SmppCodec::default();
        let mut src = BytesMut::from(&wire[..at]);
        let mut out = decode_all(&mut codec, &mut src);
        src.extend_from_slice(&wire[at..]);
        out.extend(decode_all(&mut codec, &mut src));
        assert_eq!(out, pdus, "split at {at}");
    }
}

#[tokio::test]
async fn framed_read_over_many_small_reads() {
    let (pdus, wire) = script();
    let mut mock = tokio_test::io::Builder::new();
    for chunk in wire.chunks(3) {
        mock.read(chunk);
    }
    let mut framed = FramedRead::new(mock.build(), SmppCodec::default());
    let mut out = Vec::new();
    while let Some(item) = framed.next().await {
        out.push(item.unwrap().unwrap());
    }
    assert_eq!(out, pdus);
}

#[tokio::test]
async fn framed_write_emits_the_wire_bytes() {
    let (pdus, wire) = script();
    let mock = tokio_test::io::Builder::new().write(&wire).build();
    let mut framed = FramedWrite::new(mock, SmppCodec::default());
    for pdu in &pdus[..3] {
        framed.feed(pdu).await.unwrap();
    }
    for pdu in pdus[3..].iter().cloned() {
        framed.feed(pdu).await.unwrap();
    }
    SinkExt::<Pdu>::flush(&mut framed).await.unwrap();
}

#[test]
fn incomplete_frame_reserves_the_rest() {
    let wire = submit_sm(1).to_bytes();
    let mut codec = SmppCodec::default();
    let mut src = BytesMut::new();
    src.extend_from_slice(&wire[..2]);
    assert!(codec.decode(&mut src).unwrap().is_none());
    assert!(src.capacity() >= 16);
    src.extend_from_slice(&wire[2..10]);
    assert!(codec.decode(&mut src).unwrap().is_none());
    assert!(
        src.capacity() >= wire.len(),
        "{} < {}",
        src.capacity(),
        wire.len()
    );
    assert_eq!(src.len(), 10, "nothing consumed while incomplete");
}

#[test]
fn command_length_below_16_is_fatal() {
    for length in [0u32, 1, 15] {
        let mut src = BytesMut::from(&length.to_be_bytes()[..]);
        let err = SmppCodec::default().decode(&mut src).unwrap_err();
        assert!(
            matches!(err, CodecError::Length { length: l, max: 65536 } if l == length as usize),
            "{err}"
        );
    }
}

#[test]
fn command_length_above_max_is_fatal_before_the_frame_arrives() {
    let mut codec = SmppCodec::new(1024);
    let mut src = BytesMut::from(&1025u32.to_be_bytes()[..]);
    let err = codec.decode(&mut src).unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::Length {
                length: 1025,
                max: 1024
            }
        ),
        "{err}"
    );
    assert!(src.capacity() < 1025, "reserved for a frame it refused");
    // A huge declared length is refused as soon as 4 octets are in.
    let mut src = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
    assert!(matches!(
        codec.decode(&mut src),
        Err(CodecError::Length { .. })
    ));
    // Exactly max is fine.
    let pdu = Pdu::new(
        1,
        Body::Other {
            command_id: 0x0001_0000,
            body: Bytes::from(vec![0; 1024 - 16]),
        },
    );
    let mut src = BytesMut::from(&pdu.to_bytes()[..]);
    assert_eq!(codec.decode(&mut src).unwrap(), Some(Ok(pdu)));
}

#[test]
fn bad_body_is_reported_and_the_stream_carries_on() {
    let mut wire = BytesMut::new();
    // A bind_transmitter whose system_id never ends.
    wire.put_u32(22);
    wire.put_u32(2);
    wire.put_u32(0);
    wire.put_u32(41);
    wire.put_slice(b"sluice");
    Pdu::enquire_link(42).encode(&mut wire);

    let mut codec = SmppCodec::default();
    let err = codec.decode(&mut wire).unwrap().unwrap().unwrap_err();
    assert_eq!(err.sequence_number(), Some(41));
    assert_eq!(
        err.generic_nack(),
        Pdu::generic_nack(41, CommandStatus::ESME_RINVCMDLEN)
    );
    assert_eq!(
        codec.decode(&mut wire).unwrap(),
        Some(Ok(Pdu::enquire_link(42)))
    );
    assert!(codec.decode(&mut wire).unwrap().is_none());
}

#[test]
fn eof_inside_a_frame_is_an_error() {
    let wire = submit_sm(1).to_bytes();
    let mut src = BytesMut::from(&wire[..20]);
    let err = SmppCodec::default().decode_eof(&mut src).unwrap_err();
    assert!(matches!(err, CodecError::Io(_)), "{err}");
    let mut empty = BytesMut::new();
    assert!(
        SmppCodec::default()
            .decode_eof(&mut empty)
            .unwrap()
            .is_none()
    );
}

#[test]
fn encoder_checks_max_and_writes_nothing_on_error() {
    let mut codec = SmppCodec::new(32);
    let mut dst = BytesMut::new();
    let err = codec.encode(&submit_sm(1), &mut dst).unwrap_err();
    assert!(matches!(err, CodecError::Length { max: 32, .. }), "{err}");
    assert!(dst.is_empty());
    codec.encode(Pdu::enquire_link(1), &mut dst).unwrap();
    assert_eq!(dst.len(), 16);
}

#[test]
fn max_is_at_least_a_header() {
    assert_eq!(SmppCodec::new(0).max_pdu_len(), 16);
    assert_eq!(SmppCodec::default().max_pdu_len(), DEFAULT_MAX_PDU_LEN);
    let mut src = BytesMut::from(&Pdu::enquire_link(3).to_bytes()[..]);
    assert_eq!(
        SmppCodec::new(0).decode(&mut src).unwrap(),
        Some(Ok(Pdu::enquire_link(3)))
    );
}
