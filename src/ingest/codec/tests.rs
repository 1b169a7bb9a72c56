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
                sink: String::new(),
                created_ms: 0,
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

/// Pseudo-random and mutated frames through the codec, the frame decoder and
/// admission: no panic (the fuzz target `ingest_frame` does this unbounded).
#[test]
fn random_frames_never_panic() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let valid = frame_bytes(
        3,
        pb::frame::Body::SubmitBatch(pb::SubmitBatch {
            messages: vec![pb::SubmitMessage {
                client_ref: "r".into(),
                to: "+14155550100".into(),
                from: "12345".into(),
                text: "hello".into(),
                ..Default::default()
            }],
        }),
    );
    let tenant: std::sync::Arc<str> = "t".into();
    for round in 0..50_000 {
        let mut data = valid.to_vec();
        if round % 2 == 0 {
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % data.len();
                data[i] = next() as u8;
            }
        } else {
            data = (0..(next() % 64)).map(|_| next() as u8).collect();
        }
        let mut b = BytesMut::from(&data[..]);
        let mut c = length_codec(1024);
        while let Ok(Some(f)) = c.decode(&mut b) {
            if let Ok((_, pb::frame::Body::SubmitBatch(batch))) = decode_frame(f.freeze()) {
                for m in batch.messages {
                    let _ = crate::admission::validate(
                        &tenant,
                        crate::ingest::convert::submission(m),
                        std::time::Duration::from_secs(1),
                        0,
                    );
                }
            }
        }
    }
}
