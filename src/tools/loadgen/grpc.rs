//! `sluice bench --grpc`: batches go through the gRPC door's `SubmitBatch`
//! and events come back over its `Events` stream (tenant scope), so a run
//! compares with a framed one of the same options.
//!
//! Each `--connections` is one HTTP/2 channel carrying `--pipeline` unary
//! calls in flight (one sender task each) and one Events call. The ack
//! clock starts when a call is handed to the channel and stops when its
//! `BatchAck` is decoded. Under back-pressure (`RESOURCE_EXHAUSTED`) a
//! batch waits the hinted delay and goes again, with the same client_refs.
//! Events are acknowledged in batches of up to 1024, or after 2 ms without
//! one; when the run ends the receiver acknowledges what it holds, closes
//! its side and waits for the server to end the call, so every ack is
//! processed before the connection goes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Request, Streaming};

use super::drive::Shared;
use crate::grpc::GatewayClient;
use crate::ingest::pb;

/// Acknowledge events once this many are held.
const ACK_BATCH: usize = 1024;
/// ... or when no event came for this long.
const ACK_LINGER: Duration = Duration::from_millis(2);
/// How long the end of a run waits for the server to close an Events call.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Retries of one batch under back-pressure before it counts as lost.
const MAX_RETRIES: u32 = 600;

/// Where and as whom calls go.
#[derive(Clone, Debug)]
pub(crate) struct GrpcTarget {
    /// The gRPC door.
    pub addr: SocketAddr,
    /// `Bearer <token>`.
    pub authorization: MetadataValue<Ascii>,
}

impl GrpcTarget {
    fn request<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        r.metadata_mut()
            .insert("authorization", self.authorization.clone());
        r
    }
}

/// One HTTP/2 channel to the door.
///
/// # Errors
/// The connection failed.
pub(crate) async fn connect(target: &GrpcTarget) -> Result<GatewayClient<Channel>, String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", target.addr))
        .map_err(|e| e.to_string())?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    // Event batches and batch acks may be large.
    Ok(GatewayClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

/// An open Events call (tenant scope).
pub(crate) struct Subscription {
    acks: mpsc::Sender<pb::EventsRequest>,
    batches: Streaming<pb::EventBatch>,
}

/// Opens an Events call on the tenant's stream.
///
/// # Errors
/// The call was refused.
pub(crate) async fn subscribe(
    client: &mut GatewayClient<Channel>,
    target: &GrpcTarget,
) -> Result<Subscription, String> {
    let (acks, rx) = mpsc::channel(64);
    let subscribe = pb::EventsRequest {
        body: Some(pb::events_request::Body::Subscribe(pb::Subscribe {
            max_in_flight: 0,
            scope: pb::SubscribeScope::ScopeTenant as i32,
        })),
    };
    acks.send(subscribe).await.map_err(|e| e.to_string())?;
    let requests =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let batches = client
        .events(target.request(requests))
        .await
        .map_err(|s| format!("Events: {}: {}", s.code(), s.message()))?
        .into_inner();
    Ok(Subscription { acks, batches })
}

/// One batch in flight at a time, until the plan runs out or a call fails
/// for good.
pub(crate) async fn sender(
    shared: Arc<Shared>,
    mut client: GatewayClient<Channel>,
    target: GrpcTarget,
) {
    let plan = &shared.plan;
    while let Some(c) = plan.claim(plan.batch) {
        if let Some(due) = c.due {
            tokio::time::sleep_until(due).await;
            shared.on_lag(Instant::now() - due);
        }
        let batch = pb::SubmitBatch {
            messages: plan.templates.batch(c.first, c.n),
        };
        shared.live.offered.fetch_add(c.n as u64, Ordering::Relaxed);
        let mut tries = 0;
        loop {
            let sent_us = plan.us(Instant::now());
            match client.submit_batch(target.request(batch.clone())).await {
                Ok(ack) => {
                    shared.on_ack(c.first, sent_us, &ack.into_inner());
                    break;
                }
                Err(s) if s.code() == Code::ResourceExhausted && tries < MAX_RETRIES => {
                    tries += 1;
                    let wait = crate::grpc::retry_delay(&s).unwrap_or(Duration::from_millis(100));
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = plan.stop.cancelled() => {
                            shared.on_lost(c.n, &"interrupted while the gateway was full");
                            return;
                        }
                    }
                }
                Err(s) => {
                    let e = format!("SubmitBatch: {}: {}", s.code(), s.message());
                    shared.on_lost(c.n, &crate::model::LogSafe::new(&e));
                    return;
                }
            }
        }
    }
}

/// Reads events, tallies them and acknowledges them in batches, until the
/// call ends or `done` is cancelled; then acknowledges what it holds, closes
/// its side and waits (bounded) for the server to end the call.
pub(crate) async fn receiver(shared: Arc<Shared>, sub: Subscription, done: CancellationToken) {
    let Subscription { acks, mut batches } = sub;
    let mut ids: Vec<u64> = Vec::with_capacity(ACK_BATCH);
    let ack = |ids: Vec<u64>| pb::EventsRequest {
        body: Some(pb::events_request::Body::Ack(pb::EventAck {
            event_ids: ids,
        })),
    };
    loop {
        tokio::select! {
            biased;
            m = batches.message() => match m {
                Ok(Some(batch)) => {
                    shared.on_events(&batch.events);
                    ids.extend(batch.events.iter().map(|e| e.event_id));
                    if ids.len() >= ACK_BATCH && acks.send(ack(std::mem::take(&mut ids))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(s) => {
                    let e = format!("Events: {}: {}", s.code(), s.message());
                    shared.on_lost(0, &crate::model::LogSafe::new(&e));
                    return;
                }
            },
            () = tokio::time::sleep(ACK_LINGER), if !ids.is_empty() => {
                if acks.send(ack(std::mem::take(&mut ids))).await.is_err() {
                    return;
                }
            }
            () = done.cancelled() => break,
        }
    }
    if !ids.is_empty() && acks.send(ack(ids)).await.is_err() {
        return;
    }
    // Closing our side ends the call once the server has read every ack.
    drop(acks);
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        // Anything sent after the run ended is not acknowledged: it goes
        // back to the tenant's stream.
        while let Ok(Some(_)) = batches.message().await {}
    })
    .await;
}
