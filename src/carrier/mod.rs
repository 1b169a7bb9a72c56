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
}

pub use crate::config::Unanswered;
