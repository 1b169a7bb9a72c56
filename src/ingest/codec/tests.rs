use super::*;
use bytes::Buf;
use std::sync::Arc;
use tokio_util::codec::Decoder;

#[test]
fn spliced_event_batch_decodes_as_a_normal_frame() {
    let events: Vec<Arc<PendingEvent>> = (1..=3)
        .map(|i| {
            let e = pb::Event {
                event_id: i,
                kind: Some(pb::event::Kind::Inbound(pb::InboundMessage {
                    text: format!("t{i}"),
                    ..Default::default()
                })),
            };
            Arc::new(PendingEvent {
                event_id: i,
                message_id: crate::model::MessageId(0),
                tenant: "t".into(),
                payload: e.encode_to_vec().into(),
            })
        })
        .collect();
    let mut b = BytesMut::from(&event_batch_frame(&events)[..]);
    let frame = length_codec(1 << 20).decode(&mut b).unwrap().unwrap();
    let (id, body) = decode_frame(frame.freeze()).unwrap();
    assert_eq!(id, 0);
    let pb::frame::Body::EventBatch(batch) = body else {
        panic!()
    };
    assert_eq!(
        batch.events.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[test]
fn frames_round_trip_and_oversize_is_refused_before_buffering() {
    let f = frame_bytes(7, pb::frame::Body::Ping(pb::Ping { nonce: 9 }));
    let mut codec = length_codec(64);
    // Byte by byte: incomplete until the last byte.
    let mut b = BytesMut::new();
    for (i, byte) in f.iter().enumerate() {
        b.put_u8(*byte);
        let r = codec.decode(&mut b).unwrap();
        assert_eq!(r.is_some(), i + 1 == f.len());
        if let Some(frame) = r {
            assert_eq!(decode_frame(frame.freeze()).unwrap().0, 7);
        }
    }
    let mut big = BytesMut::new();
    big.put_u32(65);
    assert!(codec.decode(&mut big).is_err());
    assert!(big.remaining() <= 4);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert!(decode_frame(bytes::Bytes::from_static(&[0xff; 7])).is_err());
    assert!(matches!(
        decode_frame(bytes::Bytes::new()),
        Err(FrameError::UnknownBody)
    ));
}
