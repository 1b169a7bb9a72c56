use std::pin::Pin;
use std::task::{Context, Poll};

use super::*;

/// Records each write call.
#[derive(Default)]
struct Writes {
    calls: Vec<Vec<u8>>,
    shut: bool,
}

impl AsyncWrite for Writes {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.calls.push(buf.to_vec());
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.shut = true;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn queued_frames_leave_in_one_write_in_order_then_the_stream_shuts() {
    let (tx, rx) = mpsc::unbounded_channel();
    for f in ["ab", "cd", "ef"] {
        tx.send(Bytes::from_static(f.as_bytes())).unwrap();
    }
    drop(tx);
    let mut out = Writes::default();
    write_coalesced(&mut out, rx).await.unwrap();
    assert_eq!(out.calls, vec![b"abcdef".to_vec()]);
    assert!(out.shut);
}

#[tokio::test]
async fn a_lone_frame_goes_as_it_is_and_bounded_queues_work_too() {
    let (tx, rx) = mpsc::channel(4);
    let writer = tokio::spawn(async move {
        let mut out = Writes::default();
        write_coalesced(&mut out, rx).await.map(|()| out.calls)
    });
    tx.send(Bytes::from_static(b"one")).await.unwrap();
    drop(tx);
    let calls = writer.await.unwrap().unwrap();
    assert_eq!(calls, vec![b"one".to_vec()]);
}

#[tokio::test]
async fn one_write_gathers_at_most_max_write_bytes() {
    let (tx, rx) = mpsc::unbounded_channel();
    let frame = Bytes::from(vec![7u8; MAX_WRITE / 4 + 1]);
    for _ in 0..8 {
        tx.send(frame.clone()).unwrap();
    }
    drop(tx);
    let mut out = Writes::default();
    write_coalesced(&mut out, rx).await.unwrap();
    assert!(out.calls.len() >= 2, "{} writes", out.calls.len());
    assert!(out.calls.iter().all(|c| c.len() < MAX_WRITE + frame.len()));
    assert_eq!(
        out.calls.iter().map(Vec::len).sum::<usize>(),
        8 * frame.len()
    );
}

#[tokio::test]
async fn a_failed_write_is_an_error() {
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(Bytes::from_static(b"x")).unwrap();
    let (a, b) = tokio::io::duplex(8);
    drop(b);
    assert!(write_coalesced(a, rx).await.is_err());
}
