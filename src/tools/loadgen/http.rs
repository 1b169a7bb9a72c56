//! `sluice bench --http`: batches go through the tenants' HTTP/JSON API
//! (`POST /v1/messages`) instead of the framed protocol, while events still
//! come over framed subscriptions, so ack and submit-to-terminal latencies
//! compare with a framed run of the same options.
//!
//! HTTP/1.1 answers one request at a time per connection, so each batch in
//! flight has its own keep-alive connection: `--pipeline` connections per
//! `--connections`. The ack clock starts when the request is handed to its
//! connection (as the framed sender's starts when the frame is) and stops
//! when the answer's body is read and parsed.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::drive::Shared;
use crate::ingest::pb;

/// Where and as whom batches are posted.
#[derive(Clone)]
pub(crate) struct ApiTarget {
    /// The API door.
    pub addr: SocketAddr,
    /// `Bearer <token>`.
    pub authorization: hyper::header::HeaderValue,
}

/// One batch in flight at a time on its own connection, until the plan runs
/// out or the connection fails.
pub(crate) async fn sender(shared: Arc<Shared>, api: ApiTarget, max_batch: usize) {
    let plan = &shared.plan;
    let mut conn = match connect(api.addr).await {
        Ok(c) => c,
        Err(e) => {
            shared.on_lost(0, &format!("HTTP API {}: {e}", api.addr));
            return;
        }
    };
    while let Some(c) = plan.claim(max_batch.min(plan.batch)) {
        if let Some(due) = c.due {
            tokio::time::sleep_until(due).await;
            shared.on_lag(Instant::now() - due);
        }
        let batch = plan.templates.batch(c.first, c.n);
        shared
            .live
            .offered
            .fetch_add(c.n as u64, std::sync::atomic::Ordering::Relaxed);
        let body = json!({ "messages": batch.iter().map(message_json).collect::<Vec<_>>() });
        let req = hyper::Request::post("/v1/messages")
            .header(hyper::header::HOST, "sluice")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::AUTHORIZATION, api.authorization.clone())
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("a valid request");
        let sent_us = plan.us(Instant::now());
        match post(&mut conn, req).await {
            Ok(ack) => shared.on_ack(c.first, sent_us, &ack),
            Err(e) => {
                shared.on_lost(c.n, &e);
                return;
            }
        }
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (send, conn) = http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(send)
}

/// Posts one batch; its results as the framed protocol's `BatchAck`.
async fn post(
    conn: &mut SendRequest<Full<Bytes>>,
    req: hyper::Request<Full<Bytes>>,
) -> Result<pb::BatchAck, String> {
    conn.ready().await.map_err(|e| e.to_string())?;
    let res = conn.send_request(req).await.map_err(|e| e.to_string())?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let v: Value =
        serde_json::from_slice(&body).map_err(|e| format!("HTTP {status}: not JSON ({e})"))?;
    batch_ack(&v).ok_or_else(|| {
        let why = v["error"].as_str().unwrap_or("no results");
        format!("HTTP {status}: {}", crate::model::LogSafe::new(why))
    })
}

/// A message as the API's JSON.
fn message_json(m: &pb::SubmitMessage) -> Value {
    let channel = match pb::ChannelPreference::try_from(m.channel) {
        Ok(pb::ChannelPreference::ChannelSms) => "sms",
        Ok(pb::ChannelPreference::ChannelMms) => "mms",
        _ => "auto",
    };
    let fallback = match pb::FallbackPolicy::try_from(m.fallback) {
        Ok(pb::FallbackPolicy::FallbackSmsTextOnly) => "sms_text_only",
        Ok(pb::FallbackPolicy::FallbackNone) => "none",
        _ => "sms_with_link",
    };
    let priority = if m.priority == pb::PriorityClass::PriorityTransactional as i32 {
        "transactional"
    } else {
        "marketing"
    };
    json!({
        "client_ref": m.client_ref, "to": m.to, "from": m.from, "text": m.text,
        "media": m.media, "subject": m.subject, "channel": channel, "fallback": fallback,
        "campaign_id": m.campaign_id, "validity_seconds": m.validity_seconds,
        "priority": priority, "tags": m.tags,
    })
}

/// The API's per-message results as a `BatchAck` (`None`: no results).
fn batch_ack(v: &Value) -> Option<pb::BatchAck> {
    let results = v["results"].as_array()?;
    let results = results
        .iter()
        .map(|r| {
            let status = r["status"].as_str().unwrap_or_default();
            let id = r["id"]
                .as_str()
                .and_then(|id| u64::from_str_radix(id, 16).ok())
                .unwrap_or(0);
            let reason = match status {
                "accepted" | "duplicate" => pb::RejectReason::RejectNone,
                _ => r["reason"]
                    .as_str()
                    .and_then(pb::RejectReason::from_str_name)
                    .unwrap_or(pb::RejectReason::InvalidField),
            };
            pb::SubmitResult {
                client_ref: r["client_ref"].as_str().unwrap_or_default().to_owned(),
                message_id: id,
                reason: reason as i32,
                detail: r["detail"].as_str().unwrap_or_default().to_owned(),
                duplicate: status == "duplicate",
            }
        })
        .collect();
    Some(pb::BatchAck {
        results,
        credits: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_results_read_back_as_a_batch_ack() {
        let v = json!({ "results": [
            { "client_ref": "a", "status": "accepted", "id": "00000000000000ff" },
            { "client_ref": "b", "status": "duplicate", "id": "0000000000000001" },
            { "client_ref": "c", "status": "rejected", "reason": "NO_ROUTE", "detail": "x" },
        ]});
        let ack = batch_ack(&v).unwrap();
        let got: Vec<(u64, i32, bool)> = ack
            .results
            .iter()
            .map(|r| (r.message_id, r.reason, r.duplicate))
            .collect();
        assert_eq!(
            got,
            vec![
                (255, pb::RejectReason::RejectNone as i32, false),
                (1, pb::RejectReason::RejectNone as i32, true),
                (0, pb::RejectReason::NoRoute as i32, false),
            ]
        );
        assert!(batch_ack(&json!({ "error": "busy" })).is_none());
    }

    #[test]
    fn messages_keep_their_enums_in_json() {
        let m = pb::SubmitMessage {
            client_ref: "r".into(),
            channel: pb::ChannelPreference::ChannelMms as i32,
            fallback: pb::FallbackPolicy::FallbackNone as i32,
            priority: pb::PriorityClass::PriorityTransactional as i32,
            ..Default::default()
        };
        let v = message_json(&m);
        assert_eq!(
            (&v["channel"], &v["fallback"], &v["priority"]),
            (&json!("mms"), &json!("none"), &json!("transactional"))
        );
    }
}
