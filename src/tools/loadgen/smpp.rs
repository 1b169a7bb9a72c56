//! `sluice bench --smpp`: messages go through the SMPP server door as an
//! upstream ESME sends them — one transceiver bind per `--connections`,
//! `submit_sm` per part (long texts in 8-bit UDH parts), every submit
//! asking for a receipt — and the receipts come back as `deliver_sm` on
//! the same bind, so a run compares with a framed one of the same options.
//!
//! A claimed batch of `--batch` messages is one unit, as a framed batch is:
//! its clock starts when its last part is written and stops when the last
//! `submit_sm_resp` of its parts arrives; at most `--pipeline` batches are
//! in flight per bind (mind `smpp_server.max_pending_submits`). A message
//! counts as accepted when every part was answered `ESME_ROK`; a receipt's
//! `receipted_message_id` and `message_state` end it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::drive::Shared;
use crate::ingest::pb;
use crate::smpp::codec::SmppCodec;
use crate::smpp::pdu::{Bind, Body, CommandStatus, Pdu, SubmitSm, tag};
use crate::smpp::text::{self, TextOptions};

/// Where and as whom the binds go.
#[derive(Clone, Debug)]
pub(crate) struct SmppTarget {
    /// The SMPP server door.
    pub addr: SocketAddr,
    /// The tenant's `smpp_system_id`.
    pub system_id: String,
    /// Its `smpp_password`.
    pub password: String,
}

/// A bound transceiver.
pub(crate) type Bound = Framed<TcpStream, SmppCodec>;

/// Connects and binds a transceiver.
///
/// # Errors
/// The connection or the bind failed.
pub(crate) async fn bind(target: &SmppTarget) -> Result<Bound, String> {
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let mut io = Framed::new(tcp, SmppCodec::default());
    let bind = Body::BindTransceiver(Bind {
        system_id: Bytes::from(target.system_id.clone()),
        password: Bytes::from(target.password.clone()),
        interface_version: 0x34,
        ..Bind::default()
    });
    io.send(&Pdu::new(1, bind))
        .await
        .map_err(|e| e.to_string())?;
    match io.next().await {
        Some(Ok(Ok(p))) if p.command_status.is_ok() => Ok(io),
        Some(Ok(Ok(p))) => Err(format!("bind refused: {}", p.command_status)),
        _ => Err("the connection closed during the bind".into()),
    }
}

/// One batch in flight: its results fill in as parts are answered.
struct InFlight {
    sent_us: u64,
    results: Vec<pb::SubmitResult>,
    parts_left: usize,
}

/// The state of a receipt's `message_state`, as an event's.
fn state_of(message_state: u8) -> pb::DeliveryState {
    match message_state {
        2 => pb::DeliveryState::StateDelivered,
        3 => pb::DeliveryState::StateExpired,
        5 => pb::DeliveryState::StateFailed,
        8 => pb::DeliveryState::StateRejected,
        _ => pb::DeliveryState::StateUnknown,
    }
}

/// Runs one bind: sends its share of the plan, answers and tallies
/// receipts until `done`; `sent` fires when its batches are all answered.
pub(crate) async fn connection(
    shared: Arc<Shared>,
    mut io: Bound,
    sent: oneshot::Sender<()>,
    done: CancellationToken,
) {
    let plan = &shared.plan;
    let opts = TextOptions::default();
    let mut seq: u32 = 1;
    let mut parts: HashMap<u32, (u64, usize)> = HashMap::new();
    let mut batches: HashMap<u64, InFlight> = HashMap::new();
    let mut sending = true;
    let mut sent = Some(sent);
    loop {
        while sending && batches.len() < plan.pipeline {
            let Some(c) = plan.claim(plan.batch) else {
                sending = false;
                break;
            };
            if let Some(due) = c.due {
                tokio::time::sleep_until(due).await;
                shared.on_lag(Instant::now() - due);
            }
            let mut parts_left = 0;
            for (i, m) in plan.templates.batch(c.first, c.n).into_iter().enumerate() {
                let reference = (c.first + i as u64) as u16;
                let Ok(segments) = text::encode(&m.text, &opts, reference) else {
                    continue;
                };
                for s in segments {
                    seq = if seq >= 0x7FFF_FFFF { 2 } else { seq + 1 };
                    let sm = SubmitSm {
                        source_addr_ton: 3,
                        source_addr: Bytes::from(m.from.clone()),
                        dest_addr_ton: 1,
                        dest_addr_npi: 1,
                        destination_addr: Bytes::from(m.to.trim_start_matches('+').to_owned()),
                        esm_class: if s.esm_class_udhi { 0x40 } else { 0 },
                        registered_delivery: 1,
                        data_coding: s.data_coding,
                        short_message: s.short_message,
                        ..SubmitSm::default()
                    };
                    if io.feed(&Pdu::new(seq, Body::SubmitSm(sm))).await.is_err() {
                        shared.on_lost(c.n, &"the bind closed while sending");
                        return;
                    }
                    parts.insert(seq, (c.first, i));
                    parts_left += 1;
                }
            }
            if SinkExt::<&Pdu>::flush(&mut io).await.is_err() {
                shared.on_lost(c.n, &"the bind closed while sending");
                return;
            }
            shared.live.offered.fetch_add(c.n as u64, Ordering::Relaxed);
            let results = (0..c.n)
                .map(|_| pb::SubmitResult {
                    reason: pb::RejectReason::RejectNone as i32,
                    ..pb::SubmitResult::default()
                })
                .collect();
            let b = InFlight {
                sent_us: plan.us(Instant::now()),
                results,
                parts_left,
            };
            if parts_left == 0 {
                // Nothing of it could be encoded: answered at once.
                let ack = pb::BatchAck {
                    results: b.results,
                    ..pb::BatchAck::default()
                };
                shared.on_ack(c.first, b.sent_us, &ack);
                continue;
            }
            batches.insert(c.first, b);
        }
        if !sending
            && batches.is_empty()
            && let Some(s) = sent.take()
        {
            let _ = s.send(());
        }
        let frame = tokio::select! {
            f = io.next() => f,
            () = done.cancelled() => break,
        };
        let pdu = match frame {
            Some(Ok(Ok(p))) => p,
            Some(Ok(Err(e))) => {
                shared.on_lost(0, &format!("malformed PDU from sluice: {e}"));
                continue;
            }
            _ => {
                let open: usize = batches.values().map(|b| b.results.len()).sum();
                shared.on_lost(open, &"the bind closed");
                return;
            }
        };
        match pdu.body {
            Body::SubmitSmResp(r) => {
                let Some((first, i)) = parts.remove(&pdu.sequence_number) else {
                    continue;
                };
                let Some(b) = batches.get_mut(&first) else {
                    continue;
                };
                let result = &mut b.results[i];
                if pdu.command_status.is_ok() {
                    let id = std::str::from_utf8(&r.message_id)
                        .ok()
                        .and_then(|s| u64::from_str_radix(s, 16).ok())
                        .unwrap_or(0);
                    result.message_id = id;
                } else if pdu.command_status == CommandStatus::ESME_RTHROTTLED {
                    result.reason = pb::RejectReason::Unavailable as i32;
                } else {
                    result.reason = pb::RejectReason::InvalidField as i32;
                }
                b.parts_left -= 1;
                if b.parts_left == 0
                    && let Some(b) = batches.remove(&first)
                {
                    let ack = pb::BatchAck {
                        results: b.results,
                        ..pb::BatchAck::default()
                    };
                    shared.on_ack(first, b.sent_us, &ack);
                }
            }
            Body::DeliverSm(sm) => {
                let _ = io
                    .send(&Pdu::deliver_sm_resp(
                        pdu.sequence_number,
                        CommandStatus::ESME_ROK,
                    ))
                    .await;
                let id = sm
                    .tlv(tag::RECEIPTED_MESSAGE_ID)
                    .map(|t| t.as_c_string())
                    .and_then(|v| {
                        std::str::from_utf8(&v)
                            .ok()
                            .and_then(|s| u64::from_str_radix(s, 16).ok())
                    });
                let state = sm.tlv(tag::MESSAGE_STATE).and_then(|t| t.as_u8());
                if let (Some(message_id), Some(state)) = (id, state) {
                    shared.on_events(&[pb::Event {
                        event_id: 0,
                        kind: Some(pb::event::Kind::Delivery(pb::DeliveryEvent {
                            message_id,
                            state: state_of(state) as i32,
                            ..pb::DeliveryEvent::default()
                        })),
                    }]);
                }
            }
            Body::EnquireLink => {
                let _ = io.send(&Pdu::enquire_link_resp(pdu.sequence_number)).await;
            }
            _ => {}
        }
    }
    let _ = io.send(&Pdu::unbind(1)).await;
}
