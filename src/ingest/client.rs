//! A client for the ingest protocol, as an upstream campaign system would
//! write one: a cheap clonable handle with typed async calls plus a driver
//! task that owns the socket; events arrive on a channel.
//!
//! Used by `sluice send`, the demo, the load tool and the tests. Batches are
//! pipelined (many in flight, matched by request id) and the client never
//! sends more messages than the credits it holds.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::codec::FramedRead;

use super::codec;
use super::pb::{self, frame::Body};

/// Client failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting or writing failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server answered with an Error frame.
    #[error("server error {code:?}: {message}")]
    Server {
        /// Error code.
        code: pb::ErrorCode,
        /// Server's explanation.
        message: String,
    },
    /// The connection closed before the answer came.
    #[error("connection closed")]
    Closed,
    /// The server answered with a frame that does not fit the request.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Body, ClientError>>>>>;

/// A connected, authenticated ingest client.
#[derive(Clone, Debug)]
pub struct Client {
    out: mpsc::Sender<Bytes>,
    pending: Pending,
    credits: Arc<Semaphore>,
    next_id: Arc<AtomicU64>,
    /// What the server said in HelloOk.
    pub hello: pb::HelloOk,
}

/// Events received after [`Client::subscribe`].
pub type Events = mpsc::Receiver<pb::Event>;

impl Client {
    /// Connects, says Hello and waits for HelloOk.
    ///
    /// # Errors
    /// I/O errors, or the server's Error (e.g. `AuthFailed`).
    pub async fn connect(
        addr: &str,
        tenant: &str,
        token: &str,
    ) -> Result<(Client, Events), ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Client::over(stream, tenant, token).await
    }

    /// Connects over TLS with `tls` (its roots, and its client certificate
    /// when the gateway asks for one), verifying the server as `server_name`
    /// (a DNS name or an IP address), then as [`Client::connect`].
    ///
    /// # Errors
    /// I/O and TLS errors, or the server's Error.
    pub async fn connect_tls(
        addr: &str,
        server_name: &str,
        tls: std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
        tenant: &str,
        token: &str,
    ) -> Result<(Client, Events), ClientError> {
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, stream)
            .await?;
        Client::over(stream, tenant, token).await
    }

    /// Says Hello over an already connected stream (plain or TLS) and waits
    /// for HelloOk.
    ///
    /// # Errors
    /// I/O errors, or the server's Error.
    pub async fn over<S>(
        stream: S,
        tenant: &str,
        token: &str,
    ) -> Result<(Client, Events), ClientError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        let (rd, mut wr) = tokio::io::split(stream);
        let (out, mut out_rx) = mpsc::channel::<Bytes>(1024);
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(64 * 1024);
            while let Some(b) = out_rx.recv().await {
                buf.extend_from_slice(&b);
                while let Ok(b) = out_rx.try_recv() {
                    buf.extend_from_slice(&b);
                    if buf.len() > 1 << 20 {
                        break;
                    }
                }
                if wr.write_all(&buf).await.is_err() {
                    return;
                }
                buf.clear();
            }
            let _ = wr.shutdown().await;
        });
        let pending: Pending = Arc::default();
        let credits = Arc::new(Semaphore::new(0));
        let (ev_tx, ev_rx) = mpsc::channel(64);
        tokio::spawn(drive(
            FramedRead::new(rd, codec::length_codec(64 << 20)),
            pending.clone(),
            credits.clone(),
            ev_tx,
        ));
        let mut c = Client {
            out,
            pending,
            credits,
            next_id: Arc::new(AtomicU64::new(1)),
            hello: pb::HelloOk::default(),
        };
        let answer = c
            .request(Body::Hello(pb::Hello {
                protocol_version: super::PROTOCOL_VERSION,
                tenant: tenant.to_owned(),
                token: token.to_owned(),
                client_name: concat!("sluice-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            }))
            .await?;
        match answer {
            Body::HelloOk(ok) => {
                c.credits.add_permits(ok.credits as usize);
                c.hello = ok;
                Ok((c, ev_rx))
            }
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    async fn request(&self, body: Body) -> Result<Body, ClientError> {
        let rx = self.start(body).await?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    async fn start(
        &self,
        body: Body,
    ) -> Result<oneshot::Receiver<Result<Body, ClientError>>, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        // The driver may have ended (and failed its waiters) already.
        if self.credits.is_closed() || self.out.send(codec::frame_bytes(id, body)).await.is_err() {
            self.pending.lock().remove(&id);
            return Err(ClientError::Closed);
        }
        Ok(rx)
    }

    /// Sends a batch once enough credits are held, and returns a future for
    /// its ack: call again before awaiting it to pipeline.
    ///
    /// # Errors
    /// The connection closed before the batch was sent.
    pub async fn send_batch(
        &self,
        messages: Vec<pb::SubmitMessage>,
    ) -> Result<impl Future<Output = Result<pb::BatchAck, ClientError>> + use<>, ClientError> {
        let n = messages.len() as u32;
        self.credits
            .acquire_many(n)
            .await
            .map_err(|_| ClientError::Closed)?
            .forget();
        let rx = self
            .start(Body::SubmitBatch(pb::SubmitBatch { messages }))
            .await?;
        Ok(async move {
            match rx.await.map_err(|_| ClientError::Closed)?? {
                Body::BatchAck(a) => Ok(a),
                other => Err(ClientError::Unexpected(format!("{other:?}"))),
            }
        })
    }

    /// Sends a batch and waits for its ack.
    ///
    /// # Errors
    /// The server's Error or a closed connection.
    pub async fn submit(
        &self,
        messages: Vec<pb::SubmitMessage>,
    ) -> Result<pb::BatchAck, ClientError> {
        self.send_batch(messages).await?.await
    }

    /// Uploads media; returns its id. Files larger than the server's frame
    /// limit go in chunks.
    ///
    /// # Errors
    /// The server refused the media (`MediaRejected`) or the connection closed.
    pub async fn put_media(
        &self,
        content_type: &str,
        data: bytes::Bytes,
    ) -> Result<pb::MediaOk, ClientError> {
        let chunk = (self.hello.max_frame_bytes as usize)
            .saturating_sub(1024)
            .max(1024);
        if data.len() <= chunk {
            return match self
                .request(Body::PutMedia(pb::PutMedia {
                    content_type: content_type.to_owned(),
                    total_size: data.len() as u64,
                    data,
                    last: true,
                    ..Default::default()
                }))
                .await?
            {
                Body::MediaOk(ok) => Ok(ok),
                other => Err(ClientError::Unexpected(format!("{other:?}"))),
            };
        }
        let upload_id = format!("u{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut offset = 0usize;
        loop {
            let end = (offset + chunk).min(data.len());
            let last = end == data.len();
            let answer = self
                .request(Body::PutMedia(pb::PutMedia {
                    upload_id: upload_id.clone(),
                    content_type: content_type.to_owned(),
                    total_size: data.len() as u64,
                    offset: offset as u64,
                    data: data.slice(offset..end),
                    last,
                }))
                .await?;
            match answer {
                Body::MediaOk(ok) if last => return Ok(ok),
                Body::MediaOk(_) => offset = end,
                other => return Err(ClientError::Unexpected(format!("{other:?}"))),
            }
        }
    }

    /// Starts the tenant's event stream (shared with the tenant's other
    /// tenant-scoped connections).
    ///
    /// # Errors
    /// The server's Error or a closed connection.
    pub async fn subscribe(&self, max_in_flight: u32) -> Result<(), ClientError> {
        self.subscribe_scoped(max_in_flight, pb::SubscribeScope::ScopeTenant)
            .await
    }

    /// Starts an event stream of the given scope: the tenant's, or only the
    /// delivery events of messages submitted on this connection from now on.
    ///
    /// # Errors
    /// The server's Error or a closed connection.
    pub async fn subscribe_scoped(
        &self,
        max_in_flight: u32,
        scope: pb::SubscribeScope,
    ) -> Result<(), ClientError> {
        match self
            .request(Body::Subscribe(pb::Subscribe {
                max_in_flight,
                scope: scope as i32,
            }))
            .await?
        {
            Body::SubscribeOk(_) => Ok(()),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Acknowledges events.
    ///
    /// # Errors
    /// The connection closed.
    pub async fn ack(&self, event_ids: Vec<u64>) -> Result<(), ClientError> {
        self.out
            .send(codec::frame_bytes(
                0,
                Body::EventAck(pb::EventAck { event_ids }),
            ))
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Round trip to the server.
    ///
    /// # Errors
    /// The connection closed.
    pub async fn ping(&self) -> Result<(), ClientError> {
        match self.request(Body::Ping(pb::Ping { nonce: 7 })).await? {
            Body::Pong(_) => Ok(()),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Credits currently held.
    pub fn credits(&self) -> usize {
        self.credits.available_permits()
    }
}

async fn drive<R: tokio::io::AsyncRead + Unpin>(
    mut frames: FramedRead<R, tokio_util::codec::LengthDelimitedCodec>,
    pending: Pending,
    credits: Arc<Semaphore>,
    events: mpsc::Sender<pb::Event>,
) {
    while let Some(Ok(bytes)) = frames.next().await {
        let Ok((id, body)) = codec::decode_frame(bytes.freeze()) else {
            tracing::warn!(target: "sluice::client", "undecodable frame from server");
            continue;
        };
        match body {
            Body::EventBatch(b) => {
                for e in b.events {
                    if events.send(e).await.is_err() {
                        break;
                    }
                }
            }
            Body::CreditGrant(g) => credits.add_permits(g.credits as usize),
            Body::GoAway(g) => {
                tracing::info!(target: "sluice::client", reason = %crate::model::LogSafe::new(&g.reason), "server going away");
            }
            Body::Error(e) if id == 0 || !pending.lock().contains_key(&id) => {
                tracing::warn!(target: "sluice::client", code = e.code, message = %crate::model::LogSafe::display(&e.message), "server error");
            }
            body => {
                if let Body::BatchAck(a) = &body {
                    credits.add_permits(a.credits as usize);
                }
                let Some(tx) = pending.lock().remove(&id) else {
                    continue;
                };
                let r = match body {
                    Body::Error(e) => Err(ClientError::Server {
                        code: pb::ErrorCode::try_from(e.code)
                            .unwrap_or(pb::ErrorCode::ErrorUnspecified),
                        message: e.message,
                    }),
                    b => Ok(b),
                };
                let _ = tx.send(r);
            }
        }
    }
    // Connection gone: close the credit gate (requests started from now on
    // see it and fail at once), then fail every waiter.
    credits.close();
    for (_, tx) in pending.lock().drain() {
        let _ = tx.send(Err(ClientError::Closed));
    }
}
