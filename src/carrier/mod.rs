//! Carriers: the protocol-neutral [`Carrier`] interface the one dispatcher
//! (`schedule::dispatch::Dispatcher`) drives, with [`smpp::SmppCarrier`]
//! (SMS over SMPP binds) and [`mm7::Mm7Carrier`] (MMS over MM7), each
//! owning what its protocol's answers and statuses mean for a message; the
//! [`LastCheck`] every carrier asks right before bytes leave; and the
//! [`CarrierSink`] carriers report back through (implemented by
//! `receipts`).

pub mod mm7;
pub mod smpp;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use std::time::Duration;

use tokio::time::Instant;

use crate::model::{DeliveryState, Message, MessageId};
use crate::smpp::pdu::{CommandStatus, DeliverSm};

pub use crate::smpp::session::WriteGate;

/// Whether a carrier takes messages now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// It takes what its room allows.
    Open,
    /// It is down and due for one try: one message, if
    /// [`Carrier::begin_probe`] agrees.
    Probe,
    /// It is down; the next try is due then (`None`: when it says so).
    Closed(Option<Instant>),
}

/// How much the dispatcher may take in one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// Most messages.
    pub messages: usize,
    /// Most units ([`Carrier::cost`]) in all.
    pub units: usize,
}

/// What the dispatcher needs from a carrier, whatever its protocol: room
/// (the dispatcher pops only what the carrier can take, so the backlog
/// stays in the fair queue), preparing a message (SMS: its encoded parts),
/// and the hand-off of dispatched messages (SMS: to the binds' part queue;
/// MMS: a request per message). The carrier then answers through
/// [`CarrierSink`].
pub trait Carrier: Send + Sync + 'static {
    /// What a message becomes before it is handed over.
    type Prepared: Send + 'static;

    /// Why a message cannot be prepared.
    type Unfit: std::error::Error;

    /// Whether a message that ends in this carrier's queue, before it was
    /// ever dispatched, names this carrier (MMS do: their event says channel
    /// `mms`); SMS name a carrier only once dispatched.
    const NAMED_IN_EARLY_ENDS: bool = false;

    /// How often [`Carrier::upkeep`] runs (`None`: never).
    const UPKEEP_EVERY: Option<Duration> = None;

    /// The carrier's name.
    fn name(&self) -> &Arc<str>;

    /// Whether it takes messages now.
    fn gate(&self, _now: Instant) -> Gate {
        Gate::Open
    }

    /// Starts the one try while down; false when another try is running or
    /// the carrier came back meanwhile (look again).
    fn begin_probe(&self) -> bool {
        true
    }

    /// Resolves once there is room for `units` (never more than the carrier
    /// can hold, so it resolves); false when the carrier is gone.
    fn wait_room(&self, units: usize) -> impl Future<Output = bool> + Send;

    /// The room free now.
    fn room(&self) -> Room;

    /// Units `m` takes (SMS: parts; MMS: one) when the queue did not weigh
    /// it already.
    fn cost(&self, m: &Message) -> usize;

    /// Prepares `m` for the hand-off, or says why it cannot go (it ends
    /// `rejected`).
    fn prepare(&self, m: &Arc<Message>) -> Result<Self::Prepared, Self::Unfit>;

    /// Units a prepared message takes.
    fn units(prepared: &Self::Prepared) -> usize;

    /// Reserves `units` for a batch about to be handed off (called once per
    /// batch, before the ledger records the dispatch; the batch was sized to
    /// the room, so it rarely waits); false when the carrier is gone.
    fn reserve(&self, units: usize) -> impl Future<Output = bool> + Send;

    /// Returns what [`Carrier::reserve`] took for a message that is not
    /// handed off after all (it ended meanwhile).
    fn unreserve(&self, units: usize);

    /// Hands over messages the ledger now holds dispatched here.
    /// `checked_epoch`: the [`LastCheck::epoch`] they passed the dispatch
    /// check at; `probe`: this is the one try while down (a batch of one,
    /// or empty when that message ended meanwhile).
    fn hand_off(
        self: &Arc<Self>,
        batch: Vec<(Arc<Message>, Self::Prepared)>,
        checked_epoch: u64,
        probe: bool,
    ) -> impl Future<Output = ()> + Send;

    /// Periodic work while the dispatcher runs ([`Carrier::UPKEEP_EVERY`]).
    fn upkeep(&self) {}
}

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

    /// A part goes back to wait in its carrier's queue because of `cause`
    /// (a refusal for now, such as throttling): recorded in its history.
    fn part_waits(&self, id: MessageId, part: u32, cause: &str) {
        let _ = (id, part, cause);
    }

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
