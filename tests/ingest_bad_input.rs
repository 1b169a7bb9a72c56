//! Bad input on the ingest protocol gets a clear Error frame or a closed
//! connection, never a panic, and other connections carry on.

mod common;

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use common::*;
use prost::Message;
use sluice::ingest::codec::frame_bytes;
use sluice::ingest::pb::{self, frame::Body};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads frames until EOF or `timeout`; returns the decoded frames.
async fn read_frames(s: &mut TcpStream, timeout: Duration) -> (Vec<pb::Frame>, bool) {
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(timeout, async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .unwrap_or(false);
    let mut frames = Vec::new();
    let mut off = 0;
    while buf.len() - off >= 4 {
        let len = u32::from_be_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
        if buf.len() - off - 4 < len {
            break;
        }
        frames.push(pb::Frame::decode(&buf[off + 4..off + 4 + len]).unwrap());
        off += 4 + len;
    }
    (frames, closed)
}

fn error_code(f: &pb::Frame) -> Option<pb::ErrorCode> {
    match &f.body {
        Some(Body::Error(e)) => pb::ErrorCode::try_from(e.code).ok(),
        _ => None,
    }
}

fn hello(token: &str) -> bytes::Bytes {
    frame_bytes(
        1,
        Body::Hello(pb::Hello {
            protocol_version: 1,
            tenant: TENANT.into(),
            token: token.into(),
            client_name: "test".into(),
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_others_carry_on() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = sluice::gateway::start(config(dir.path(), &smsc))
        .await
        .unwrap();
    let addr = gw.ingest_addr;
    // A healthy client stays connected throughout.
    let (good, got) = subscriber(&addr.to_string()).await;

    // 1. Wrong token: AUTH_FAILED, then closed.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&hello("wrong-token-000")).await.unwrap();
    let (frames, closed) = read_frames(&mut s, Duration::from_secs(5)).await;
    assert_eq!(error_code(&frames[0]), Some(pb::ErrorCode::AuthFailed));
    assert!(closed);

    // 2. A batch before Hello: NOT_AUTHENTICATED, then closed.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let batch = frame_bytes(
        2,
        Body::SubmitBatch(pb::SubmitBatch {
            messages: vec![msg("x", "+14155550100", "hi")],
        }),
    );
    s.write_all(&batch).await.unwrap();
    let (frames, closed) = read_frames(&mut s, Duration::from_secs(5)).await;
    assert_eq!(
        error_code(&frames[0]),
        Some(pb::ErrorCode::NotAuthenticated)
    );
    assert_eq!(frames[0].request_id, 2);
    assert!(closed);

    // 3. A length prefix over the maximum: BAD_FRAME, then closed.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&hello(TOKEN)).await.unwrap();
    s.write_all(&(64u32 << 20).to_be_bytes()).await.unwrap();
    let (frames, closed) = read_frames(&mut s, Duration::from_secs(5)).await;
    assert!(matches!(frames[0].body, Some(Body::HelloOk(_))));
    assert_eq!(error_code(&frames[1]), Some(pb::ErrorCode::BadFrame));
    assert!(closed);

    // 4. Invalid protobuf and an unknown frame type after Hello: errors, the
    //    connection stays usable.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&hello(TOKEN)).await.unwrap();
    let mut junk = BytesMut::new();
    junk.put_u32(5);
    junk.put_slice(&[0xff, 0xff, 0xff, 0xff, 0xff]);
    s.write_all(&junk).await.unwrap();
    // Field 99 (unknown to this build) holding a message: an unknown body.
    let mut unknown = BytesMut::new();
    let mut body = Vec::new();
    prost::encoding::encode_key(99, prost::encoding::WireType::LengthDelimited, &mut body);
    prost::encoding::encode_varint(0, &mut body);
    unknown.put_u32(body.len() as u32);
    unknown.put_slice(&body);
    s.write_all(&unknown).await.unwrap();
    s.write_all(&frame_bytes(9, Body::Ping(pb::Ping { nonce: 5 })))
        .await
        .unwrap();
    let (frames, _) = read_frames(&mut s, Duration::from_millis(800)).await;
    let codes: Vec<_> = frames.iter().filter_map(error_code).collect();
    assert_eq!(
        codes,
        vec![pb::ErrorCode::BadFrame, pb::ErrorCode::UnknownFrame]
    );
    assert!(
        frames
            .iter()
            .any(|f| matches!(f.body, Some(Body::Pong(pb::Pong { nonce: 5 }))))
    );

    // 5. A truncated frame, then EOF: the server closes without panicking.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&hello(TOKEN)).await.unwrap();
    let whole = frame_bytes(3, Body::Ping(pb::Ping { nonce: 1 }));
    s.write_all(&whole[..whole.len() - 2]).await.unwrap();
    s.shutdown().await.unwrap();
    let (_, closed) = read_frames(&mut s, Duration::from_secs(5)).await;
    assert!(closed);

    // The healthy client still works end to end.
    let ack = good
        .submit(vec![msg("still-ok", "+14155550199", "still here")])
        .await
        .unwrap();
    let id = accepted_ids(&ack)[0];
    eventually("delivered", Duration::from_secs(10), || {
        got.state_of(id) == Some(pb::DeliveryState::StateDelivered)
    })
    .await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_messages_are_rejected_with_reasons() {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.ingest.initial_credits = 10;
    let gw = sluice::gateway::start(cfg).await.unwrap();
    // A batch over the credits held is refused as a whole.
    let mut s = TcpStream::connect(gw.ingest_addr).await.unwrap();
    s.write_all(&hello(TOKEN)).await.unwrap();
    let msgs: Vec<_> = (0..11)
        .map(|i| msg(&format!("cr-{i}"), "+14155550100", "x"))
        .collect();
    s.write_all(&frame_bytes(
        7,
        Body::SubmitBatch(pb::SubmitBatch { messages: msgs }),
    ))
    .await
    .unwrap();
    let (frames, _) = read_frames(&mut s, Duration::from_millis(500)).await;
    assert_eq!(
        error_code(&frames[1]),
        Some(pb::ErrorCode::NoCredit),
        "{frames:?}"
    );
    assert_eq!(frames[1].request_id, 7);

    let (c, _) =
        sluice::ingest::client::Client::connect(&gw.ingest_addr.to_string(), TENANT, TOKEN)
            .await
            .unwrap();
    let mut bad_sender = msg("b2", "+14155550100", "hi");
    bad_sender.from = "no$such".into();
    let mut no_ref = msg("", "+14155550100", "hi");
    no_ref.client_ref.clear();
    let ack = c
        .submit(vec![
            msg("b1", "+1555", "hi"),
            bad_sender,
            msg("b3", "+14155550100", ""),
            no_ref,
            msg("b5", "+14155550100", &"z".repeat(1601)),
        ])
        .await
        .unwrap();
    let reasons: Vec<_> = ack
        .results
        .iter()
        .map(|r| pb::RejectReason::try_from(r.reason).unwrap())
        .collect();
    assert_eq!(
        reasons,
        vec![
            pb::RejectReason::InvalidNumber,
            pb::RejectReason::InvalidSender,
            pb::RejectReason::EmptyMessage,
            pb::RejectReason::InvalidField,
            pb::RejectReason::TextTooLong,
        ]
    );
    assert!(ack.results.iter().all(|r| !r.detail.is_empty()));
    gw.shutdown().await;
}
