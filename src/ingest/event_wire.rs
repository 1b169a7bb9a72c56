//! Events in the ingest protocol's wire format: [`WireEvents`] encodes each
//! event as a `sluice.v1.Event` once, when it is created; the hub journals
//! and sends those bytes as they are (spliced into `EventBatch` frames by
//! [`super::codec`]). Delivery events, one per message, are encoded by hand
//! (one allocation, no field cloned; checked against prost in the tests).

use bytes::{Bytes, BytesMut};
use prost::Message as _;

use super::pb;
use crate::events::{Channel, EventEncoder, Notice};
use crate::ledger::Finalized;
use crate::model::DeliveryState;
use crate::wire::proto::{
    bytes_len, message_head_len, put_bytes, put_message_head, put_uint, uint_len,
};

/// Encodes events as `sluice.v1.Event`.
#[derive(Debug, Default, Clone, Copy)]
pub struct WireEvents;

impl EventEncoder for WireEvents {
    fn delivery(&self, event_id: u64, f: &Finalized, channel: Channel, at_ms: u64) -> Bytes {
        delivery_event(event_id, f, channel, at_ms)
    }

    fn notice(&self, event_id: u64, notice: &Notice) -> Bytes {
        let kind = match notice {
            Notice::Inbound(e) => pb::event::Kind::Inbound(pb::InboundMessage {
                from: e.from.clone(),
                to: e.to.clone(),
                text: e.text.clone(),
                at_ms: e.at_ms,
                carrier: e.carrier.clone(),
                linked_id: e.linked_id.clone(),
            }),
            Notice::Opt(e) => pb::event::Kind::Opt(pb::OptEvent {
                number: e.number.clone(),
                scope: e.scope.clone(),
                opted_out: e.opted_out,
                keyword: e.keyword.clone(),
                at_ms: e.at_ms,
                campaign_id: e.campaign.clone(),
            }),
            Notice::Click(e) => pb::event::Kind::Click(pb::LinkClick {
                message_id: e.message_id,
                client_ref: e.client_ref.clone(),
                campaign_id: e.campaign.clone(),
                number: e.number.clone(),
                link_index: e.link_index,
                url: e.url.clone(),
                first: e.first,
                at_ms: e.at_ms,
                user_agent: e.user_agent.clone(),
                ip_class: e.ip_class.clone(),
            }),
        };
        pb::Event {
            event_id,
            kind: Some(kind),
        }
        .encode_to_vec()
        .into()
    }
}

/// The wire state of a final delivery state.
fn wire_state(state: DeliveryState) -> pb::DeliveryState {
    match state {
        DeliveryState::Delivered => pb::DeliveryState::StateDelivered,
        DeliveryState::Failed => pb::DeliveryState::StateFailed,
        DeliveryState::Expired => pb::DeliveryState::StateExpired,
        DeliveryState::Rejected => pb::DeliveryState::StateRejected,
        DeliveryState::Unknown => pb::DeliveryState::StateUnknown,
        DeliveryState::Suppressed => pb::DeliveryState::StateSuppressed,
        DeliveryState::Queued | DeliveryState::Dispatched | DeliveryState::Submitted => {
            pb::DeliveryState::StateSubmitted
        }
    }
}

/// Encodes the `Event` for a finished message into one buffer of exactly
/// its size (field lengths are summed first).
pub fn delivery_event(event_id: u64, f: &Finalized, channel: Channel, at_ms: u64) -> Bytes {
    let channel = match channel {
        Channel::Mms => pb::Channel::MmsUsed,
        Channel::Sms => pb::Channel::SmsUsed,
        Channel::Unspecified => pb::Channel::Unspecified,
    } as u64;
    let m = &f.message;
    let state = wire_state(f.state) as u64;
    let carrier = f.carrier.as_deref().unwrap_or_default().as_bytes();
    let note = f.note.as_deref().unwrap_or_default().as_bytes();
    let body = uint_len(1, m.id.0)
        + bytes_len(2, m.client_ref.len())
        + uint_len(3, state)
        + bytes_len(4, f.reason.len())
        + uint_len(5, u64::from(f.error_code))
        + uint_len(6, channel)
        + uint_len(7, at_ms)
        + bytes_len(8, carrier.len())
        + uint_len(9, u64::from(f.parts))
        + bytes_len(10, m.campaign_id.len())
        + bytes_len(11, note.len());
    let total = uint_len(1, event_id) + message_head_len(2, body) + body;
    let mut out = BytesMut::with_capacity(total);
    put_uint(1, event_id, &mut out);
    put_message_head(2, body, &mut out);
    put_uint(1, m.id.0, &mut out);
    put_bytes(2, m.client_ref.as_bytes(), &mut out);
    put_uint(3, state, &mut out);
    put_bytes(4, f.reason.as_bytes(), &mut out);
    put_uint(5, u64::from(f.error_code), &mut out);
    put_uint(6, channel, &mut out);
    put_uint(7, at_ms, &mut out);
    put_bytes(8, carrier, &mut out);
    put_uint(9, u64::from(f.parts), &mut out);
    put_bytes(10, m.campaign_id.as_bytes(), &mut out);
    put_bytes(11, note, &mut out);
    debug_assert_eq!(out.len(), total);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{InboundEvent, OptEvent};

    #[test]
    fn notices_decode_with_every_field() {
        let inbound = InboundEvent {
            from: "+14155550100".into(),
            to: "12345".into(),
            text: "hi \u{1F600}".into(),
            at_ms: 42,
            carrier: "smsc".into(),
            linked_id: String::new(),
        };
        let got = pb::Event::decode(WireEvents.notice(5, &Notice::Inbound(inbound))).unwrap();
        assert_eq!(got.event_id, 5);
        let Some(pb::event::Kind::Inbound(i)) = got.kind else {
            panic!("{got:?}")
        };
        assert_eq!(
            (
                i.from.as_str(),
                i.to.as_str(),
                i.text.as_str(),
                i.at_ms,
                i.carrier.as_str()
            ),
            ("+14155550100", "12345", "hi \u{1F600}", 42, "smsc")
        );
        let opt = OptEvent {
            number: "+14155550100".into(),
            scope: "brand".into(),
            opted_out: true,
            keyword: "STOP".into(),
            at_ms: 7,
            campaign: "spring".into(),
        };
        let got = pb::Event::decode(WireEvents.notice(6, &Notice::Opt(opt))).unwrap();
        let Some(pb::event::Kind::Opt(o)) = got.kind else {
            panic!("{got:?}")
        };
        assert_eq!(
            (
                o.number.as_str(),
                o.scope.as_str(),
                o.opted_out,
                o.keyword.as_str(),
                o.at_ms
            ),
            ("+14155550100", "brand", true, "STOP", 7)
        );
        assert_eq!(o.campaign_id, "spring");
        let click = crate::events::ClickEvent {
            message_id: 42,
            client_ref: "r-1".into(),
            campaign: "spring".into(),
            number: "+14155550100".into(),
            link_index: 1,
            url: "https://shop.example/a".into(),
            first: true,
            at_ms: 9,
            user_agent: "Mozilla/5.0".into(),
            ip_class: "203.0.113.0/24".into(),
        };
        let got = pb::Event::decode(WireEvents.notice(7, &Notice::Click(click))).unwrap();
        let Some(pb::event::Kind::Click(c)) = got.kind else {
            panic!("{got:?}")
        };
        assert_eq!(
            (
                c.message_id,
                c.client_ref.as_str(),
                c.campaign_id.as_str(),
                c.link_index,
                c.first
            ),
            (42, "r-1", "spring", 1, true)
        );
        assert_eq!(
            (
                c.url.as_str(),
                c.at_ms,
                c.user_agent.as_str(),
                c.ip_class.as_str()
            ),
            ("https://shop.example/a", 9, "Mozilla/5.0", "203.0.113.0/24")
        );
    }
}
