//! Byte-stream plumbing every protocol session shares: the coalescing
//! writer behind each ingest connection, SMPP bind and simulator session,
//! and ([`proto`]) the protobuf field writers of the hot-path encoders.
//!
//! Frames are queued by many tasks (answers, events, submits) and leave in
//! as few syscalls as possible: whatever is queued when the writer wakes is
//! gathered into one write (up to [`MAX_WRITE`] bytes), and a frame that is
//! alone goes out as it is, uncopied. Hand-written: a dozen lines on the
//! hot path of every session, with nothing a crate would add.

use std::future::Future;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

pub mod proto;
#[cfg(test)]
mod tests;

/// Most bytes gathered into one write.
pub const MAX_WRITE: usize = 1 << 20;

/// A queue of encoded frames (bounded or not).
pub trait Frames: Send {
    /// The next frame; `None` once every sender is gone.
    fn recv(&mut self) -> impl Future<Output = Option<Bytes>> + Send;
    /// A frame already queued, if any.
    fn try_recv(&mut self) -> Option<Bytes>;
}

impl Frames for mpsc::Receiver<Bytes> {
    fn recv(&mut self) -> impl Future<Output = Option<Bytes>> + Send {
        mpsc::Receiver::recv(self)
    }

    fn try_recv(&mut self) -> Option<Bytes> {
        mpsc::Receiver::try_recv(self).ok()
    }
}

impl Frames for mpsc::UnboundedReceiver<Bytes> {
    fn recv(&mut self) -> impl Future<Output = Option<Bytes>> + Send {
        mpsc::UnboundedReceiver::recv(self)
    }

    fn try_recv(&mut self) -> Option<Bytes> {
        mpsc::UnboundedReceiver::try_recv(self).ok()
    }
}

/// Writes the frames of `rx` to `wr`, coalesced, until every sender is
/// gone; then shuts `wr` down.
///
/// # Errors
/// A write failed (the peer is gone); frames still queued are dropped with
/// `rx`.
pub async fn write_coalesced<W: AsyncWrite, F: Frames>(wr: W, mut rx: F) -> std::io::Result<()> {
    tokio::pin!(wr);
    let mut buf = BytesMut::new();
    while let Some(first) = rx.recv().await {
        let Some(second) = rx.try_recv() else {
            wr.write_all(&first).await?;
            continue;
        };
        buf.clear();
        buf.extend_from_slice(&first);
        buf.extend_from_slice(&second);
        while buf.len() < MAX_WRITE {
            let Some(more) = rx.try_recv() else { break };
            buf.extend_from_slice(&more);
        }
        wr.write_all(&buf).await?;
    }
    wr.shutdown().await
}
