//! [`JsonEvents`]: the JSON form of events for webhook endpoints, one
//! object per event, encoded once when the event is created (and journaled
//! as those bytes). A request's body is `{"events":[<object>,…]}`.
//!
//! ```json
//! {"id":17,"type":"delivery","message_id":"42","client_ref":"order-1","campaign_id":"spring",
//!  "state":"delivered","reason":"","error_code":0,"channel":"sms","carrier":"smsc-a","parts":1,"at_ms":1733330000123}
//! {"id":18,"type":"inbound","from":"+14155550100","to":"12345","text":"hi","carrier":"smsc-a","at_ms":1733330000456}
//! {"id":19,"type":"opt_out","number":"+14155550100","scope":"brand","opted_out":true,"keyword":"STOP","at_ms":1733330000789,"campaign_id":"spring"}
//! {"id":20,"type":"inbound","from":"+14155550100","to":"12345","text":"yes","carrier":"mmsc-a","at_ms":1733330000901,"linked_id":"mo-7"}
//! {"id":21,"type":"click","message_id":"42","client_ref":"order-1","campaign_id":"spring","number":"+14155550100",
//!  "link_index":0,"url":"https://shop.example/sale","first":true,"at_ms":1733330001000,"user_agent":"Mozilla/5.0 …","ip_class":"203.0.113.0/24"}
//! ```
//!
//! `id` is the event's id for this endpoint (each destination has its own):
//! receivers drop an `id` they have already processed. `channel` is `sms`,
//! `mms`, or `null` when the message never reached a carrier; `note` appears
//! when the route needs saying (an SMS fallback).

use bytes::Bytes;
use serde_json::{Value, json};

use crate::events::{Channel, EventEncoder, Notice};
use crate::ledger::Finalized;

/// Encodes events as the JSON objects webhook endpoints receive.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonEvents;

impl EventEncoder for JsonEvents {
    fn delivery(&self, event_id: u64, f: &Finalized, channel: Channel, at_ms: u64) -> Bytes {
        let m = &f.message;
        let channel = match channel {
            Channel::Sms => Value::from("sms"),
            Channel::Mms => Value::from("mms"),
            Channel::Unspecified => Value::Null,
        };
        let mut v = json!({
            "id": event_id,
            "type": "delivery",
            "message_id": m.id.to_string(),
            "client_ref": &*m.client_ref,
            "campaign_id": &*m.campaign_id,
            "state": f.state.as_str(),
            "reason": &*f.reason,
            "error_code": f.error_code,
            "channel": channel,
            "carrier": f.carrier.as_deref(),
            "parts": f.parts,
            "at_ms": at_ms,
        });
        if let Some(note) = &f.note {
            v["note"] = Value::from(&**note);
        }
        Bytes::from(v.to_string())
    }

    fn notice(&self, event_id: u64, notice: &Notice) -> Bytes {
        let v = match notice {
            Notice::Inbound(e) => {
                let mut v = json!({
                    "id": event_id,
                    "type": "inbound",
                    "from": e.from,
                    "to": e.to,
                    "text": e.text,
                    "carrier": e.carrier,
                    "at_ms": e.at_ms,
                });
                if !e.linked_id.is_empty() {
                    v["linked_id"] = Value::from(e.linked_id.as_str());
                }
                v
            }
            Notice::Opt(e) => {
                let mut v = json!({
                    "id": event_id,
                    "type": "opt_out",
                    "number": e.number,
                    "scope": e.scope,
                    "opted_out": e.opted_out,
                    "keyword": e.keyword,
                    "at_ms": e.at_ms,
                });
                if !e.campaign.is_empty() {
                    v["campaign_id"] = Value::from(e.campaign.as_str());
                }
                v
            }
            Notice::Click(e) => json!({
                "id": event_id,
                "type": "click",
                "message_id": e.message_id.to_string(),
                "client_ref": e.client_ref,
                "campaign_id": e.campaign,
                "number": e.number,
                "link_index": e.link_index,
                "url": e.url,
                "first": e.first,
                "at_ms": e.at_ms,
                "user_agent": e.user_agent,
                "ip_class": e.ip_class,
            }),
        };
        Bytes::from(v.to_string())
    }
}

/// The body of one request: `{"events":[…]}` around already encoded
/// objects (copied once, not re-encoded).
pub fn body<'a>(events: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"events\":[");
    for (i, e) in events.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e);
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}
