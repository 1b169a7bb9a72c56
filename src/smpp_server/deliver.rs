//! What the SMPP server sends its upstreams: delivery receipts and inbound
//! messages as `deliver_sm` PDUs, encoded once when the event is created
//! ([`SmppEvents`], the encoder of the tenant's `smpp` event destination)
//! and journaled as those bytes until the upstream's `deliver_sm_resp`.
//! A session sends a stored PDU with its own sequence number
//! ([`with_sequence`]).
//!
//! Which messages get a receipt is decided from their `client_ref`: the
//! door names each message it admits `smpp<R>.<unique>`, `R` being the
//! submit's `registered_delivery & 0x03` ([`client_ref`]), so the request
//! survives a restart with the message.
//!
//! A receipt is the SMPP 3.4 Appendix B text
//! (`id:… sub:001 dlvrd:… submit date:… done date:… stat:… err:… text:…`,
//! `id` being the id the submit was answered with), `esm_class` 0x04, with
//! the `receipted_message_id` and `message_state` TLVs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

use crate::events::{Channel, EventEncoder, InboundEvent, Notice};
use crate::ledger::Finalized;
use crate::model::{DeliveryState, Sender};
use crate::smpp::pdu::{Body, DeliverSm, Pdu, Tlv, tag};
use crate::smpp::receipt::{
    ESM_DELIVERY_RECEIPT, format_receipt_text, receipt_date, receipt_snippet,
};
use crate::smpp::text::{self, Concat, TextOptions};

/// Most octets of text in `short_message`; longer goes in `message_payload`.
const MAX_SHORT_MESSAGE: usize = 254;

/// Type of number and numbering plan of an address.
const TON_INTERNATIONAL: u8 = 0x01;
const TON_NETWORK_SPECIFIC: u8 = 0x03;
const TON_ALPHANUMERIC: u8 = 0x05;
const NPI_ISDN: u8 = 0x01;

/// Where this process's SMPP `client_ref`s come from.
static REFS: std::sync::LazyLock<RefSource> = std::sync::LazyLock::new(RefSource::new);

/// The `client_ref` of a message the door admits, carrying the receipt
/// request (`registered_delivery & 0x03`). Unique across nodes and
/// restarts: see [`RefSource`].
pub fn client_ref(receipt: u8) -> String {
    REFS.next(receipt)
}

/// Makes the `client_ref`s of one process: a random 64-bit nonce drawn at
/// start, then a counter. Admission claims `(tenant, client_ref)` for the
/// whole dedupe window, in cluster mode across every node, so two nodes (or
/// a node and its own earlier run) must never make the same ref: one that
/// did would have its message answered as a duplicate of another and never
/// sent. Refs built from the start-up clock did exactly that once one node
/// had sent as many messages as microseconds separated the two starts. Two
/// nonces collide with odds of 2^-64 per pair of processes.
#[derive(Debug)]
pub(crate) struct RefSource {
    nonce: u64,
    next: AtomicU64,
}

impl RefSource {
    pub(crate) fn new() -> RefSource {
        RefSource {
            nonce: rand::random(),
            next: AtomicU64::new(0),
        }
    }

    /// The next ref: `smpp<receipt>.<nonce>.<n>`, in hex (at most 39 bytes).
    pub(crate) fn next(&self, receipt: u8) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("smpp{}.{:016x}.{n:x}", receipt & 0x03, self.nonce)
    }
}

/// Whether a message that ended in `state` gets a receipt: admitted by the
/// SMPP door with a receipt asked for (always, on failure only, or on
/// success only: SMPP 5.0's value 3, reserved in 3.4).
pub fn receipt_wanted(client_ref: &str, state: DeliveryState) -> bool {
    match client_ref.as_bytes() {
        [b's', b'm', b'p', b'p', b'1', b'.', ..] => true,
        [b's', b'm', b'p', b'p', b'2', b'.', ..] => state != DeliveryState::Delivered,
        [b's', b'm', b'p', b'p', b'3', b'.', ..] => state == DeliveryState::Delivered,
        _ => false,
    }
}

/// The receipt `stat:` word and `message_state` of a final state.
pub fn receipt_state(state: DeliveryState) -> (&'static str, u8) {
    match state {
        DeliveryState::Delivered => ("DELIVRD", 2),
        DeliveryState::Expired => ("EXPIRED", 3),
        DeliveryState::Failed => ("UNDELIV", 5),
        DeliveryState::Rejected | DeliveryState::Suppressed => ("REJECTD", 8),
        DeliveryState::Unknown
        | DeliveryState::Queued
        | DeliveryState::Dispatched
        | DeliveryState::Submitted => ("UNKNOWN", 7),
    }
}

/// Encodes the `smpp` destination's events as `deliver_sm` PDUs (sequence
/// number 0; see [`with_sequence`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct SmppEvents;

impl EventEncoder for SmppEvents {
    fn delivery(&self, _event_id: u64, f: &Finalized, _channel: Channel, at_ms: u64) -> Bytes {
        receipt(f, at_ms)
    }

    fn notice(&self, _event_id: u64, notice: &Notice) -> Bytes {
        match notice {
            Notice::Inbound(e) => inbound(e),
            // The destination takes neither opt-outs nor clicks (SMPP has
            // no such PDU).
            Notice::Opt(_) | Notice::Click(_) => Bytes::new(),
        }
    }

    fn wants_delivery(&self, f: &Finalized) -> bool {
        receipt_wanted(&f.message.client_ref, f.state)
    }
}

/// A stored PDU with `sequence_number` in its header, appended to `out`.
/// `None` when `pdu` is not a whole PDU (a damaged record).
pub fn with_sequence(pdu: &[u8], sequence_number: u32, out: &mut BytesMut) -> Option<()> {
    let len = pdu
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))? as usize;
    if len != pdu.len() || len < crate::smpp::pdu::HEADER_LEN {
        return None;
    }
    out.put_slice(&pdu[..12]);
    out.put_u32(sequence_number);
    out.put_slice(&pdu[16..]);
    Some(())
}

/// The receipt of a finished message.
fn receipt(f: &Finalized, at_ms: u64) -> Bytes {
    let m = &f.message;
    let id = m.id.to_string();
    let (stat, message_state) = receipt_state(f.state);
    let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
    let text = format_receipt_text(
        &id,
        1,
        u32::from(f.state == DeliveryState::Delivered),
        &receipt_date(at(m.accepted_at_ms)),
        &receipt_date(at(at_ms)),
        stat,
        f.error_code,
        &receipt_snippet(&m.text),
    );
    let (dest_ton, dest_npi, dest) = sender_address(&m.from);
    let handset = m.to.to_string();
    let sm = DeliverSm {
        source_addr_ton: TON_INTERNATIONAL,
        source_addr_npi: NPI_ISDN,
        source_addr: Bytes::from(handset.trim_start_matches('+').to_owned()),
        dest_addr_ton: dest_ton,
        dest_addr_npi: dest_npi,
        destination_addr: dest,
        esm_class: ESM_DELIVERY_RECEIPT,
        registered_delivery: 0,
        short_message: Bytes::from(text),
        tlvs: vec![
            Tlv::from_c_string(tag::RECEIPTED_MESSAGE_ID, id.as_bytes()),
            Tlv::from_u8(tag::MESSAGE_STATE, message_state),
        ],
        ..DeliverSm::default()
    };
    Pdu::new(0, Body::DeliverSm(sm)).to_bytes()
}

/// An inbound message for the tenant: GSM-7 (unpacked) when its text
/// fits the alphabet, else UCS-2; in `message_payload` when longer than a
/// `short_message` holds.
fn inbound(e: &InboundEvent) -> Bytes {
    let opts = TextOptions {
        concat: Concat::Payload,
        gsm7_packed: false,
    };
    // Texts over the gateway's limit are cut to it, never refused: the
    // upstream still learns of the message.
    let encoded = text::encode(&e.text, &opts, 0)
        .ok()
        .and_then(|mut s| s.pop());
    let (data_coding, user_data) = match encoded {
        Some(seg) => (seg.data_coding, seg.message_payload.unwrap_or_default()),
        None => {
            let cut: String = e.text.chars().take(text::MAX_TEXT_CHARS).collect();
            let units: Vec<u8> = cut.encode_utf16().flat_map(u16::to_be_bytes).collect();
            (0x08, Bytes::from(units))
        }
    };
    let (short_message, tlvs) = if user_data.len() <= MAX_SHORT_MESSAGE {
        (user_data, Vec::new())
    } else {
        (
            Bytes::new(),
            vec![Tlv::new(tag::MESSAGE_PAYLOAD, user_data)],
        )
    };
    let (src_ton, src_npi, src) = match e.from.strip_prefix('+') {
        Some(digits) => (TON_INTERNATIONAL, NPI_ISDN, Bytes::from(digits.to_owned())),
        None => (0, 0, Bytes::from(e.from.clone())),
    };
    let (dest_ton, dest_npi, dest) = match Sender::parse(&e.to) {
        Ok(s) => sender_address(&s),
        Err(_) => (0, 0, Bytes::from(e.to.clone())),
    };
    let sm = DeliverSm {
        source_addr_ton: src_ton,
        source_addr_npi: src_npi,
        source_addr: src,
        dest_addr_ton: dest_ton,
        dest_addr_npi: dest_npi,
        destination_addr: dest,
        registered_delivery: 0,
        data_coding,
        short_message,
        tlvs,
        ..DeliverSm::default()
    };
    Pdu::new(0, Body::DeliverSm(sm)).to_bytes()
}

/// A sender as an SMPP address: type of number, numbering plan, octets.
fn sender_address(s: &Sender) -> (u8, u8, Bytes) {
    match s {
        Sender::LongCode(n) => {
            let n = n.to_string();
            (
                TON_INTERNATIONAL,
                NPI_ISDN,
                Bytes::from(n.trim_start_matches('+').to_owned()),
            )
        }
        Sender::ShortCode(c) => (TON_NETWORK_SPECIFIC, 0, Bytes::from(c.to_string())),
        Sender::Alphanumeric(a) => (TON_ALPHANUMERIC, 0, Bytes::from(a.to_string())),
    }
}

/// How many times one bind sends an event the upstream answers with a
/// passing error (`ESME_RSYSERR`, a `generic_nack` naming no error) before
/// it is dead-lettered (kept in the journal, sent again after a replay or a
/// restart): such an error is often permanent in practice, and retried for
/// ever it would lead every window.
pub(super) const MAX_PASSING_ERRORS: u32 = 3;

/// Most events one bind counts passing errors for; past it the counts start
/// again (an event that failed here and was then answered on another bind
/// leaves its count behind).
const MAX_COUNTED_EVENTS: usize = 4096;

/// One bind's count of passing errors per event, each since the event's
/// dead-letter clock started (`events::Endpoint::since_ms`): a replay moves
/// that clock on, so a replayed event gets its tries again, even on a bind
/// that failed it before it was set aside.
#[derive(Debug, Default)]
pub(super) struct PassingErrors(HashMap<u64, (u32, u64)>);

impl PassingErrors {
    /// One more passing error for `event_id`, whose clock started at
    /// `since_ms`: true while it may be sent again, false at the
    /// [`MAX_PASSING_ERRORS`]th.
    pub(super) fn note(&mut self, event_id: u64, since_ms: u64) -> bool {
        if self.0.len() >= MAX_COUNTED_EVENTS {
            self.0.clear();
        }
        let (n, counted_since) = self.0.entry(event_id).or_insert((0, since_ms));
        if *counted_since != since_ms {
            (*n, *counted_since) = (0, since_ms);
        }
        *n += 1;
        *n < MAX_PASSING_ERRORS
    }

    /// The event is settled here (answered, refused or set aside).
    pub(super) fn forget(&mut self, event_id: u64) {
        self.0.remove(&event_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three passing errors set an event aside; a replay (its clock moved
    /// on) gives it three tries again on a bind that counted it before; the
    /// counts stay bounded.
    #[test]
    fn passing_errors_count_per_event_and_start_again_after_a_replay() {
        let mut p = PassingErrors::default();
        assert!(p.note(7, 1_000));
        assert!(p.note(8, 1_000), "another event counts apart");
        assert!(p.note(7, 1_000));
        // Set aside elsewhere and replayed: its clock started again.
        assert!(p.note(7, 5_000));
        assert!(p.note(7, 5_000));
        assert!(!p.note(7, 5_000), "the third since the replay");
        p.forget(7);
        assert!(p.note(7, 5_000), "forgotten once settled");
        for id in 100..100 + MAX_COUNTED_EVENTS as u64 * 2 {
            p.note(id, 0);
        }
        assert!(p.0.len() <= MAX_COUNTED_EVENTS);
    }

    /// Two processes (two nodes, or a node and its own earlier run) started
    /// in the same microsecond never make the same ref, as refs built from
    /// the start-up clock did; the longest ref fits `MAX_CLIENT_REF`.
    #[test]
    fn refs_of_two_processes_never_meet() {
        let (a, b) = (RefSource::new(), RefSource::new());
        let of = |s: &RefSource| (0..10_000).map(|_| s.next(1)).collect::<Vec<_>>();
        let (a, b) = (of(&a), of(&b));
        let seen: std::collections::HashSet<&String> = a.iter().collect();
        assert_eq!(seen.len(), a.len());
        assert!(b.iter().all(|r| !seen.contains(r)), "a ref made twice");
        let last = RefSource {
            nonce: u64::MAX,
            next: AtomicU64::new(u64::MAX),
        }
        .next(1);
        assert_eq!(last.len(), 39, "{last}");
        assert!(last.len() <= crate::admission::MAX_CLIENT_REF);
        assert!(receipt_wanted(&last, DeliveryState::Delivered));
    }

    #[test]
    fn client_refs_carry_the_receipt_request_and_are_unique() {
        let a = client_ref(1);
        let b = client_ref(1);
        assert_ne!(a, b);
        assert!(a.starts_with("smpp1."), "{a}");
        assert!(receipt_wanted(&a, DeliveryState::Delivered));
        let f = client_ref(2);
        assert!(!receipt_wanted(&f, DeliveryState::Delivered));
        assert!(receipt_wanted(&f, DeliveryState::Failed));
        let s = client_ref(3);
        assert!(receipt_wanted(&s, DeliveryState::Delivered));
        assert!(!receipt_wanted(&s, DeliveryState::Failed));
        assert!(!receipt_wanted(&s, DeliveryState::Expired));
        assert!(!receipt_wanted(&client_ref(0), DeliveryState::Failed));
        assert!(!receipt_wanted("order-17", DeliveryState::Failed));
    }

    #[test]
    fn a_stored_pdu_goes_out_with_the_sessions_sequence_number() {
        let pdu = Pdu::enquire_link(0).to_bytes();
        let mut out = BytesMut::new();
        with_sequence(&pdu, 77, &mut out).expect("whole PDU");
        let back = Pdu::decode(out.freeze()).expect("decodes");
        assert_eq!(back.sequence_number, 77);
        assert!(with_sequence(&pdu[..10], 1, &mut BytesMut::new()).is_none());
        assert!(with_sequence(b"", 1, &mut BytesMut::new()).is_none());
    }

    #[test]
    fn a_long_unicode_inbound_goes_in_message_payload() {
        let e = InboundEvent {
            from: "+14155550100".into(),
            to: "12345".into(),
            text: "Привет ✓ ".repeat(30),
            at_ms: 0,
            carrier: "c".into(),
            linked_id: String::new(),
        };
        let pdu = Pdu::decode(inbound(&e)).expect("decodes");
        let Body::DeliverSm(sm) = pdu.body else {
            panic!("not a deliver_sm: {pdu:?}")
        };
        assert_eq!(sm.data_coding, 0x08);
        assert!(sm.short_message.is_empty());
        let payload = sm.tlv(tag::MESSAGE_PAYLOAD).expect("payload");
        assert_eq!(
            text::decode(0x08, &payload.value, false).expect("UCS-2"),
            e.text
        );
        assert_eq!(&sm.source_addr[..], b"14155550100");
        assert_eq!(sm.dest_addr_ton, TON_NETWORK_SPECIFIC);
    }
}
