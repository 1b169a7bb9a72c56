//! The one interface the scheduler uses to hand messages to carriers, and
//! the sink carriers report back through. [`smpp::SmppCarrier`] implements it
//! over SMPP binds.

pub mod mm7;
pub mod smpp;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::model::{DeliveryState, MessageId};
use crate::smpp::pdu::{CommandStatus, DeliverSm};

/// Where carriers report what happened to what they were given.
pub trait CarrierSink: Send + Sync + 'static {
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
        let futs: Vec<_> = batch
            .into_iter()
            .map(|(seq, sm)| (seq, self.deliver(carrier, sm)))
            .collect();
        Box::pin(async move {
            let mut out = Vec::with_capacity(futs.len());
            for (seq, f) in futs {
                out.push((seq, f.await));
            }
            out
        })
    }
}

pub use crate::config::Unanswered;
