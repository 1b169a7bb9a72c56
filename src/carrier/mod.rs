//! Carriers: [`smpp::SmppCarrier`] (SMS over SMPP binds) and
//! [`mm7::Mm7Carrier`] (MMS over MM7), each owning what its protocol's
//! answers and statuses mean for a message; the [`LastCheck`] every carrier
//! asks right before bytes leave; and the [`CarrierSink`] carriers report
//! back through (implemented by `receipts`). The dispatchers in `schedule`
//! share their queue steps (`CarrierQueue::take`, `CarrierQueue::vet`) but
//! still drive each carrier type through its own API: a protocol-neutral
//! carrier interface is not built yet.

pub mod mm7;
pub mod smpp;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::model::{DeliveryState, Message, MessageId};
use crate::smpp::pdu::{CommandStatus, DeliverSm};

pub use crate::smpp::session::WriteGate;

/// The last look at a message right before its bytes leave for the carrier
/// (after every wait for a permit, pacing or the journal): a recipient who
/// opted out meanwhile gets nothing more.
///
/// Checking costs a suppression lookup, so carriers remember the
/// [`LastCheck::epoch`] a part passed at and look again only when it moved.
pub trait LastCheck: Send + Sync + 'static {
    /// A number that grows whenever a message that passed
    /// [`LastCheck::check`] might now fail it (an opt-out was recorded).
    /// Read it *before* checking.
    fn epoch(&self) -> u64;

    /// Why `m` must not be sent now, with the state it ends in.
    fn check(&self, m: &Message) -> Option<(DeliveryState, Arc<str>)>;
}

impl std::fmt::Debug for dyn LastCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LastCheck")
    }
}

/// Where carriers report what happened to what they were given.
pub trait CarrierSink: Send + Sync + 'static {
    /// Parts `(id, part, total)` are about to be written to `carrier`:
    /// records that durably; nothing may be written before the gate opens.
    fn written(&self, carrier: &Arc<str>, parts: &[(MessageId, u32, u32)]) -> WriteGate;

    /// The carrier id of a final receipt that arrived before any answer to
    /// a part now left unanswered (the link dropped): a receipt from
    /// `handset` to `sender` whose `text:` is the start of `text`. The part
    /// reached the carrier; resending it would send it twice.
    fn early_receipt_for(
        &self,
        carrier: &Arc<str>,
        handset: &[u8],
        sender: &[u8],
        text: &str,
    ) -> Option<bytes::Bytes> {
        let _ = (carrier, handset, sender, text);
        None
    }

    /// A part was accepted by the carrier under `carrier_msg_id` (raw, as the
    /// carrier sent it).
    fn part_submitted(&self, carrier: &Arc<str>, id: MessageId, part: u32, carrier_msg_id: &[u8]);

    /// A part ended without reaching the handset (carrier refusal, expiry
    /// while retrying, or an unknown outcome).
    fn part_failed(
        &self,
        id: MessageId,
        part: u32,
        state: DeliveryState,
        code: u32,
        reason: String,
    );

    /// The carrier delivered a PDU (receipt or inbound message); resolves to
    /// the status to answer with, once what it carries is durable.
    fn deliver(
        &self,
        carrier: &Arc<str>,
        sm: DeliverSm,
    ) -> Pin<Box<dyn Future<Output = CommandStatus> + Send>>;

    /// Several deliver_sm of one read burst, `(sequence_number, pdu)`;
    /// resolves to the status of each answer. The default answers them one
    /// by one.
    fn deliver_batch(
        &self,
        carrier: &Arc<str>,
        batch: Vec<(u32, DeliverSm)>,
    ) -> crate::smpp::session::DeliverAnswers {
        crate::smpp::session::answer_each(
            batch
                .into_iter()
                .map(|(seq, sm)| (seq, self.deliver(carrier, sm)))
                .collect(),
        )
    }
}

pub use crate::settings::Unanswered;
