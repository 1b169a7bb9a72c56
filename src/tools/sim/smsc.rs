//! An SMSC simulator speaking SMPP 3.4 on the server side, for tests, the
//! demo (`sluice sim smsc`) and the load tool.
//!
//! This file owns the simulator: its configuration ([`SmscConfig`], parsed by
//! clap), the listener and one task per connection, the bind and submit_sm
//! logic, the reassembly and counting of what was submitted ([`Smsc::stats`],
//! [`Smsc::texts`]), and the delivery of receipts and MO messages to
//! receiver binds. PDU layout, framing, text decoding and receipt text come
//! from [`crate::smpp`].
//!
//! # Shape
//!
//! - **One task per connection, one writer task beside it.** The connection
//!   task reads a burst of PDUs (up to [`READS_PER_TURN`] already buffered),
//!   answers each into one buffer, and hands the buffer to the writer through
//!   an unbounded channel: one write per burst, no task per PDU, and reading
//!   never waits on writing (a client blocked writing submits while we write
//!   receipts cannot deadlock us).
//! - **One timer task for all delayed receipts.** `receipt_delay` is the same
//!   for every receipt, so due times arrive in order and a FIFO queue is a
//!   delay queue; the task sleeps until the head is due (tokio's clock, so
//!   tests can pause it).
//! - **A router for deliver_sm.** Receipts go to a receiver or transceiver
//!   bound with the submitter's system_id, MO messages to any receiver;
//!   round-robin when several are bound, parked until one binds when none is.
//!   A connection that closes hands back every deliver_sm it wrote and never
//!   saw answered, and every one queued for it, to the router (so a client
//!   may see a receipt twice, as with real SMSCs).
//! - **Exact counters.** Every counter is updated before the PDU that reports
//!   it is written, so a client that has read an answer sees it counted. The
//!   invariant `submits == throttled + accepted_parts + rejected` holds.
//!
//! # Decisions
//!
//! - **Texts that do not decode are refused** (`ESME_RINVDCS` for an unknown
//!   `data_coding`, `ESME_RSUBMITFAIL` for a malformed UDH or UCS-2 body, or
//!   concatenation values outside 1..=total), counted as `rejected`: a
//!   gateway bug should show up at the submit, not as a missing text.
//! - **`registered_delivery` is honoured**: 0 gets no receipt, 2 ("failure
//!   only") gets one only for a failed outcome, 3 (SMPP 5.0's "success
//!   only") only for a delivered one.
//! - **Receipt text is ASCII-safe**: the `text:` snippet keeps only characters
//!   that are the same in GSM 03.38 and ASCII (others become `?`), since the
//!   receipt goes out with `data_coding` 0.
//! - **No deliver_sm window**: deliver_sm are written as soon as they are due,
//!   however many are unanswered (a real SMSC caps them; a simulator that
//!   floods is the harder test).
//! - **Malformed responses are not nacked**: a `generic_nack` answering a
//!   response would confuse the client; they are ignored (logged). Malformed
//!   requests get a `generic_nack` echoing the sequence number.
//! - **enquire_link is answered before a bind too** (SMPP 5.0 allows it in the
//!   open state and clients probe with it); every other request before a bind
//!   gets `generic_nack` with `ESME_RINVBNDSTS`.
//! - **Message ids** come from one counter starting at `0xA0000000`, so hex
//!   ids always contain a letter and cannot be mistaken for decimal ones.
//!   Hex ids are lowercase, so `--receipt-id-format hex-upper` is a real
//!   change of case.

use std::collections::{HashMap, VecDeque};

/// Tables the `count_only` fingerprints are spread over.
const FINGERPRINT_SHARDS: usize = 4096;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use parking_lot::Mutex;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::smpp::codec::{CodecError, SmppCodec};
use crate::smpp::pdu::{
    Bind, BindResp, Body, CommandStatus, DeliverSm, Pdu, PduError, RESPONSE_BIT, SubmitSm, Tlv, tag,
};
use crate::smpp::receipt::{
    ESM_DELIVERY_RECEIPT, format_receipt_text, receipt_date, receipt_snippet,
};
use crate::smpp::text::{self, DecodedPart, Incoming, Reassembler, TextError, TextOptions};

#[cfg(test)]
mod tests;

const TARGET: &str = "sluice::sim";

/// The `system_id` the simulator answers binds with.
pub const SYSTEM_ID: &str = "sluicesim";

/// Largest burst of already-buffered PDUs handled before answers are written.
const READS_PER_TURN: usize = 1024;

/// How long a connection the simulator closes keeps reading (and discarding)
/// after it shut its write side, so the client reads every answer before the
/// socket goes away.
const LINGER: Duration = Duration::from_secs(1);

/// How long [`Smsc::run_until_shutdown`] waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Incomplete concatenated messages held for reassembly.
const REASSEMBLY_CAPACITY: usize = 100_000;

/// First message id handed out.
const FIRST_MESSAGE_ID: u64 = 0xA000_0000;

/// The UDHI bit of `esm_class`.
const ESM_UDHI: u8 = 0x40;

/// `interface_version` / `sc_interface_version` of SMPP 3.4.
const SMPP_34: u8 = 0x34;

/// Largest sequence number before wrapping to 1.
const MAX_SEQUENCE: u32 = 0x7FFF_FFFF;

// === impl SmscConfig ===

/// Configuration of the simulator; `sluice sim smsc` flattens it into its
/// arguments.
///
/// # Defaults
/// As the `default_value`s below: listen on `127.0.0.1:2775`, accept any
/// account, receipts after 1 s, every message delivered, no throttling, no
/// disconnects, hex ids, receipts with the same id, after the
/// submit_sm_resp, without TLVs, one per part, unpacked GSM-7.
#[derive(Clone, PartialEq, clap::Args)]
pub struct SmscConfig {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:2775")]
    pub listen: SocketAddr,
    /// system_id:password pairs allowed to bind (repeat the flag); none = accept any.
    #[arg(long = "account", value_parser = parse_account)]
    pub accounts: Vec<(String, String)>,
    /// Delay between accepting a part and sending its receipt.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub receipt_delay: Duration,
    /// Outcome mix, e.g. "delivered=0.9,undeliverable=0.05,expired=0.05" (also
    /// rejected, deleted, unknown; 'none' = no receipt).
    #[arg(long, default_value = "delivered=1")]
    pub outcomes: OutcomeMix,
    /// Fraction of submit_sm answered ESME_RTHROTTLED (0x58).
    #[arg(long, default_value_t = 0.0)]
    pub throttle_fraction: f64,
    /// Throttle every submit above this many per second per bind (a hidden
    /// rate limit); 0 = off.
    #[arg(long, default_value_t = 0)]
    pub throttle_above: u32,
    /// Close the connection after every N PDUs received; 0 = never.
    #[arg(long, default_value_t = 0)]
    pub disconnect_every: u64,
    /// When `disconnect_every` cuts the link on a submit_sm, its
    /// submit_sm_resp is lost with the link (with `receipt_before_resp` the
    /// receipt got out first): the client cannot know the submit was taken.
    #[arg(long)]
    pub lose_resp_on_cut: bool,
    /// Format of message ids in submit_sm_resp.
    #[arg(long, value_enum, default_value = "hex")]
    pub id_format: IdFormat,
    /// Format of the id in receipts (to show that correlation must normalise).
    #[arg(long, value_enum, default_value = "same")]
    pub receipt_id_format: ReceiptIdFormat,
    /// Send the receipt before the submit_sm_resp (some SMSCs race).
    #[arg(long)]
    pub receipt_before_resp: bool,
    /// Put receipted_message_id / message_state TLVs in receipts besides the text.
    #[arg(long)]
    pub receipt_tlvs: bool,
    /// Which parts of a multipart message get receipts.
    #[arg(long, value_enum, default_value = "each")]
    pub part_receipts: PartReceipts,
    /// Read (and write MO) GSM-7 text packed, 8 septets in 7 octets.
    #[arg(long)]
    pub gsm7_packed: bool,
    /// Keep only a 128-bit fingerprint of each message (duplicates are still
    /// counted; `texts()` is empty): for long load runs.
    #[arg(long)]
    pub count_only: bool,
    /// Stamp when each message arrives whose text carries a bench sequence
    /// number (its first run of ten digits) divisible by this; 0 = none
    /// (`sluice bench --embedded` reads them for its latency to the wire).
    #[arg(skip)]
    pub stamp_every: u64,
}

impl Default for SmscConfig {
    fn default() -> Self {
        SmscConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2775)),
            accounts: Vec::new(),
            receipt_delay: Duration::from_secs(1),
            outcomes: OutcomeMix::only(Outcome::Delivered),
            throttle_fraction: 0.0,
            throttle_above: 0,
            disconnect_every: 0,
            lose_resp_on_cut: false,
            id_format: IdFormat::Hex,
            receipt_id_format: ReceiptIdFormat::Same,
            receipt_before_resp: false,
            receipt_tlvs: false,
            part_receipts: PartReceipts::Each,
            gsm7_packed: false,
            count_only: false,
            stamp_every: 0,
        }
    }
}

/// Passwords are never printed.
impl fmt::Debug for SmscConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let accounts: Vec<String> = self
            .accounts
            .iter()
            .map(|(id, _)| format!("{id}:***"))
            .collect();
        f.debug_struct("SmscConfig")
            .field("listen", &self.listen)
            .field("accounts", &accounts)
            .field("receipt_delay", &self.receipt_delay)
            .field("outcomes", &self.outcomes)
            .field("throttle_fraction", &self.throttle_fraction)
            .field("throttle_above", &self.throttle_above)
            .field("disconnect_every", &self.disconnect_every)
            .field("lose_resp_on_cut", &self.lose_resp_on_cut)
            .field("id_format", &self.id_format)
            .field("receipt_id_format", &self.receipt_id_format)
            .field("receipt_before_resp", &self.receipt_before_resp)
            .field("receipt_tlvs", &self.receipt_tlvs)
            .field("part_receipts", &self.part_receipts)
            .field("gsm7_packed", &self.gsm7_packed)
            .finish()
    }
}

/// Parses `system_id:password` (the password may contain colons; it may be
/// empty, the system_id may not).
///
/// # Errors
/// A message (without the password) when there is no colon or the
/// system_id is empty.
pub fn parse_account(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((id, password)) if !id.is_empty() => Ok((id.to_owned(), password.to_owned())),
        _ => Err("expected system_id:password".to_owned()),
    }
}

/// How message ids in submit_sm_resp are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum IdFormat {
    /// Lowercase hexadecimal, e.g. `a000002a`.
    #[default]
    Hex,
    /// Decimal, e.g. `2684354602`.
    Decimal,
    /// A UUID whose last 62 bits are the counter, e.g.
    /// `5f3c1a2b-9d4e-4f60-8000-0000a000002a`.
    Uuid,
}

/// How the id is written in receipts, relative to the submit_sm_resp's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum ReceiptIdFormat {
    /// Exactly as in the submit_sm_resp.
    #[default]
    Same,
    /// The id's number in decimal (a UUID's 128-bit value).
    Decimal,
    /// The id's number in uppercase hex (an uppercased UUID).
    HexUpper,
    /// The submit_sm_resp id left-padded with zeros: hex to 16 digits,
    /// decimal to 20 (a UUID is left as it is).
    ZeroPadded,
}

/// Which parts of a concatenated message get a receipt. Single-part
/// messages always get one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum PartReceipts {
    /// Every part.
    #[default]
    Each,
    /// Only part 1.
    First,
    /// Only the last part (seq == total).
    Last,
}

// === impl Outcome ===

/// The final state a receipt reports.
///
/// | outcome         | stat    | err | message_state |
/// |-----------------|---------|-----|---------------|
/// | `delivered`     | DELIVRD | 000 | 2             |
/// | `undeliverable` | UNDELIV | 001 | 5             |
/// | `expired`       | EXPIRED | 027 | 3             |
/// | `rejected`      | REJECTD | 011 | 8             |
/// | `deleted`       | DELETED | 006 | 4             |
/// | `unknown`       | UNKNOWN | 255 | 7             |
/// | `none`          | no receipt is sent            |||
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Delivered to the handset.
    Delivered,
    /// Could not be delivered.
    Undeliverable,
    /// The validity period ran out.
    Expired,
    /// Refused by the network.
    Rejected,
    /// Deleted by the SMSC.
    Deleted,
    /// State unknown.
    Unknown,
    /// No receipt at all.
    None,
}

impl Outcome {
    /// Every outcome, in the table's order.
    pub const ALL: [Outcome; 7] = [
        Outcome::Delivered,
        Outcome::Undeliverable,
        Outcome::Expired,
        Outcome::Rejected,
        Outcome::Deleted,
        Outcome::Unknown,
        Outcome::None,
    ];

    /// The name used in `--outcomes`.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Undeliverable => "undeliverable",
            Outcome::Expired => "expired",
            Outcome::Rejected => "rejected",
            Outcome::Deleted => "deleted",
            Outcome::Unknown => "unknown",
            Outcome::None => "none",
        }
    }

    /// The receipt's `stat:` word (empty for [`Outcome::None`]).
    pub const fn stat(self) -> &'static str {
        match self {
            Outcome::Delivered => "DELIVRD",
            Outcome::Undeliverable => "UNDELIV",
            Outcome::Expired => "EXPIRED",
            Outcome::Rejected => "REJECTD",
            Outcome::Deleted => "DELETED",
            Outcome::Unknown => "UNKNOWN",
            Outcome::None => "",
        }
    }

    /// The receipt's `err:` code.
    pub const fn err(self) -> u32 {
        match self {
            Outcome::Delivered | Outcome::None => 0,
            Outcome::Undeliverable => 1,
            Outcome::Expired => 27,
            Outcome::Rejected => 11,
            Outcome::Deleted => 6,
            Outcome::Unknown => 255,
        }
    }

    /// The `message_state` TLV value (§5.3.2.35).
    pub const fn message_state(self) -> u8 {
        match self {
            Outcome::Delivered => 2,
            Outcome::Expired => 3,
            Outcome::Deleted => 4,
            Outcome::Undeliverable => 5,
            Outcome::Unknown | Outcome::None => 7,
            Outcome::Rejected => 8,
        }
    }

    /// True for every outcome but delivered (and none).
    pub const fn is_failure(self) -> bool {
        !matches!(self, Outcome::Delivered | Outcome::None)
    }
}

impl FromStr for Outcome {
    type Err = OutcomeMixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| OutcomeMixError::UnknownOutcome(s.to_owned()))
    }
}

// === impl OutcomeMix ===

/// A weighted choice of [`Outcome`]s, parsed from
/// `"delivered=0.9,undeliverable=0.05,expired=0.05"`.
///
/// Weights need not add up to 1 (they are normalised); a bare name weighs 1,
/// so `"none"` means "never send receipts".
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeMix {
    /// Outcomes with a positive weight, normalised to add up to 1.
    weights: Vec<(Outcome, f64)>,
}

/// Why an outcome mix does not parse. Returned by [`OutcomeMix::from_str`]
/// and [`OutcomeMix::new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutcomeMixError {
    /// A name that is not an outcome.
    #[error(
        "unknown outcome `{0}` (expected delivered, undeliverable, expired, rejected, deleted, unknown or none)"
    )]
    UnknownOutcome(String),
    /// A weight that is not a finite number >= 0.
    #[error("bad weight `{0}`: expected a number >= 0")]
    BadWeight(String),
    /// The same outcome twice.
    #[error("outcome `{0}` given twice")]
    Duplicate(&'static str),
    /// No outcome, or all weights zero.
    #[error("the outcome weights add up to zero")]
    Empty,
}

impl OutcomeMix {
    /// Always `outcome`.
    pub fn only(outcome: Outcome) -> OutcomeMix {
        OutcomeMix {
            weights: vec![(outcome, 1.0)],
        }
    }

    /// A mix of `(outcome, weight)` pairs.
    ///
    /// # Errors
    /// [`OutcomeMixError::BadWeight`] for a negative or non-finite weight,
    /// [`OutcomeMixError::Duplicate`] for an outcome given twice,
    /// [`OutcomeMixError::Empty`] when the weights add up to zero.
    pub fn new(weights: &[(Outcome, f64)]) -> Result<OutcomeMix, OutcomeMixError> {
        for (i, (outcome, weight)) in weights.iter().enumerate() {
            if !weight.is_finite() || *weight < 0.0 {
                return Err(OutcomeMixError::BadWeight(weight.to_string()));
            }
            if weights[..i].iter().any(|(o, _)| o == outcome) {
                return Err(OutcomeMixError::Duplicate(outcome.name()));
            }
        }
        let total: f64 = weights.iter().map(|(_, w)| w).sum();
        if total <= 0.0 {
            return Err(OutcomeMixError::Empty);
        }
        let weights = weights
            .iter()
            .filter(|(_, w)| *w > 0.0)
            .map(|(o, w)| (*o, w / total))
            .collect();
        Ok(OutcomeMix { weights })
    }

    /// The outcome for a uniform draw `x` in `[0, 1)`: outcomes take
    /// consecutive slices of `[0, 1)` in the order given.
    pub fn pick(&self, x: f64) -> Outcome {
        let mut upto = 0.0;
        for (outcome, weight) in &self.weights {
            upto += weight;
            if x < upto {
                return *outcome;
            }
        }
        // Rounding left `upto` just under 1.
        self.weights.last().map_or(Outcome::Delivered, |(o, _)| *o)
    }

    /// Draws an outcome (no random number when there is only one).
    fn draw(&self) -> Outcome {
        match self.weights.as_slice() {
            [(only, _)] => *only,
            _ => self.pick(rand::random::<f64>()),
        }
    }
}

impl FromStr for OutcomeMix {
    type Err = OutcomeMixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut weights = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, weight) = match item.split_once('=') {
                Some((name, weight)) => {
                    let w = weight.trim();
                    let w: f64 = w
                        .parse()
                        .map_err(|_| OutcomeMixError::BadWeight(w.to_owned()))?;
                    (name.trim(), w)
                }
                None => (item, 1.0),
            };
            weights.push((name.parse::<Outcome>()?, weight));
        }
        OutcomeMix::new(&weights)
    }
}

impl fmt::Display for OutcomeMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (outcome, weight)) in self.weights.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={weight}", outcome.name())?;
        }
        Ok(())
    }
}

// === message ids ===

impl IdFormat {
    /// Renders message number `n`; `uuid_hi` is the UUID's first half.
    fn render(self, n: u64, uuid_hi: u64) -> String {
        match self {
            IdFormat::Hex => format!("{n:x}"),
            IdFormat::Decimal => n.to_string(),
            IdFormat::Uuid => {
                let lo = uuid_lo(n);
                format!(
                    "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                    uuid_hi >> 32,
                    (uuid_hi >> 16) & 0xFFFF,
                    uuid_hi & 0xFFFF,
                    lo >> 48,
                    lo & 0xFFFF_FFFF_FFFF
                )
            }
        }
    }
}

/// A UUID's second half: the RFC 4122 variant bits over the counter.
fn uuid_lo(n: u64) -> u64 {
    0x8000_0000_0000_0000 | (n & 0x3FFF_FFFF_FFFF_FFFF)
}

/// A random UUID first half with the version nibble set to 4.
fn uuid_hi() -> u64 {
    (rand::random::<u64>() & !0xF000) | 0x4000
}

impl ReceiptIdFormat {
    /// The receipt id of message number `n`, whose submit_sm_resp id was
    /// `same` (written per `id_format`).
    fn render(self, id_format: IdFormat, n: u64, uuid_hi: u64, same: &str) -> String {
        match (self, id_format) {
            (ReceiptIdFormat::Same, _) | (ReceiptIdFormat::ZeroPadded, IdFormat::Uuid) => {
                same.to_owned()
            }
            (ReceiptIdFormat::Decimal, IdFormat::Uuid) => {
                ((u128::from(uuid_hi) << 64) | u128::from(uuid_lo(n))).to_string()
            }
            (ReceiptIdFormat::Decimal, _) => n.to_string(),
            (ReceiptIdFormat::HexUpper, IdFormat::Uuid) => same.to_ascii_uppercase(),
            (ReceiptIdFormat::HexUpper, _) => format!("{n:X}"),
            (ReceiptIdFormat::ZeroPadded, IdFormat::Hex) => format!("{n:016x}"),
            (ReceiptIdFormat::ZeroPadded, IdFormat::Decimal) => format!("{n:020}"),
        }
    }
}

// === impl Counters ===

/// The simulator's counters, read with [`Smsc::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StatsSnapshot {
    /// Successful binds.
    pub binds: u64,
    /// Refused binds (unknown system_id, wrong password, already bound).
    pub bind_failures: u64,
    /// unbind received from a client.
    pub unbinds: u64,
    /// submit_sm received on a bound transmitter or transceiver
    /// (`throttled + accepted_parts + rejected`).
    pub submits: u64,
    /// submit_sm answered `ESME_RTHROTTLED`.
    pub throttled: u64,
    /// submit_sm accepted (each got a message id).
    pub accepted_parts: u64,
    /// submit_sm refused because their text does not decode.
    pub rejected: u64,
    /// Complete (reassembled) messages accepted.
    pub messages: u64,
    /// Complete messages whose (source, destination, text) was seen before.
    pub duplicates: u64,
    /// Receipt deliver_sm written, re-sends included.
    pub receipts_sent: u64,
    /// deliver_sm_resp received for receipts.
    pub receipts_acked: u64,
    /// Connections cut by `disconnect_every`.
    pub disconnects: u64,
    /// generic_nack sent (malformed PDUs, requests before a bind, unknown
    /// commands).
    pub generic_nacks: u64,
    /// MO deliver_sm written, re-sends included.
    pub mo_sent: u64,
    /// deliver_sm_resp received for MO messages (the gateway answers once
    /// it has handled the message, a compliance reply queued included).
    pub mo_acked: u64,
}

#[derive(Debug, Default)]
struct Counters {
    binds: AtomicU64,
    bind_failures: AtomicU64,
    unbinds: AtomicU64,
    submits: AtomicU64,
    throttled: AtomicU64,
    accepted_parts: AtomicU64,
    rejected: AtomicU64,
    messages: AtomicU64,
    duplicates: AtomicU64,
    receipts_sent: AtomicU64,
    receipts_acked: AtomicU64,
    disconnects: AtomicU64,
    generic_nacks: AtomicU64,
    mo_sent: AtomicU64,
    mo_acked: AtomicU64,
}

fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            binds: get(&self.binds),
            bind_failures: get(&self.bind_failures),
            unbinds: get(&self.unbinds),
            submits: get(&self.submits),
            throttled: get(&self.throttled),
            accepted_parts: get(&self.accepted_parts),
            rejected: get(&self.rejected),
            messages: get(&self.messages),
            duplicates: get(&self.duplicates),
            receipts_sent: get(&self.receipts_sent),
            receipts_acked: get(&self.receipts_acked),
            disconnects: get(&self.disconnects),
            generic_nacks: get(&self.generic_nacks),
            mo_sent: get(&self.mo_sent),
            mo_acked: get(&self.mo_acked),
        }
    }
}

// === impl Smsc ===

/// A running simulator: a cheap handle (clones share it). The listener and
/// every connection stop on [`Smsc::shutdown`] or when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Smsc {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    _stop_on_drop: Arc<DropGuard>,
    /// Closes when every background task has ended.
    tasks_done: Arc<Mutex<Option<mpsc::Receiver<()>>>>,
}

impl fmt::Debug for Smsc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Smsc")
            .field("local_addr", &self.local_addr)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Binds the listener (port 0 allowed), spawns the simulator on the current
/// runtime and returns at once.
///
/// # Errors
/// When the listen address cannot be bound.
pub async fn start(cfg: SmscConfig) -> io::Result<Smsc> {
    let listener = TcpListener::bind(cfg.listen).await?;
    let local_addr = listener.local_addr()?;
    let token = CancellationToken::new();
    let shared = Arc::new(Shared {
        accounts: cfg.accounts.iter().cloned().collect(),
        cfg,
        token: token.clone(),
        stats: Counters::default(),
        next_message_id: AtomicU64::new(FIRST_MESSAGE_ID),
        next_conn_id: AtomicU64::new(1),
        next_mo_ref: AtomicU64::new(1),
        uuid_hi: uuid_hi(),
        log: Mutex::new(MessageLog {
            reassembler: Reassembler::new(REASSEMBLY_CAPACITY),
            texts: HashMap::new(),
            arrivals: Vec::new(),
            stamps: Vec::new(),
            fingerprints: (0..FINGERPRINT_SHARDS)
                .map(|_| HashMap::default())
                .collect(),
        }),
        router: Mutex::new(Router::default()),
        timer: Notify::new(),
    });
    let (alive, tasks_done) = mpsc::channel(1);
    tokio::spawn(run_timer(Arc::clone(&shared), alive.clone()));
    tokio::spawn(accept_loop(Arc::clone(&shared), listener, alive));
    tracing::info!(target: TARGET, listen = %local_addr, "SMSC simulator listening");
    Ok(Smsc {
        shared,
        local_addr,
        _stop_on_drop: Arc::new(token.drop_guard()),
        tasks_done: Arc::new(Mutex::new(Some(tasks_done))),
    })
}

impl Smsc {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Every distinct complete message accepted, as (source, destination,
    /// text, times it arrived), sorted.
    pub fn texts(&self) -> Vec<(String, String, String, u32)> {
        let log = self.shared.log.lock();
        let mut texts: Vec<_> = log
            .texts
            .iter()
            .map(|((src, dst, text), n)| (src.clone(), dst.clone(), text.clone(), *n))
            .collect();
        drop(log);
        texts.sort();
        texts
    }

    /// When each complete message arrived, in order (empty when
    /// `count_only`).
    pub fn arrivals(&self) -> Vec<Instant> {
        self.shared.log.lock().arrivals.clone()
    }

    /// (bench sequence number, arrival) of each message stamped under
    /// `stamp_every`, in arrival order.
    pub fn stamps(&self) -> Vec<(u64, Instant)> {
        self.shared.log.lock().stamps.clone()
    }

    /// Stops accepting, sends `unbind` on every connection and closes them.
    /// Receipts not yet delivered are dropped.
    pub fn shutdown(&self) {
        self.shared.token.cancel();
    }

    /// Queues an MO message (esm_class 0, split into concatenated parts when
    /// long) for a receiver or transceiver bind of any system_id; it waits
    /// until one is bound.
    ///
    /// # Errors
    /// [`TextError::TooLong`] or [`TextError::TooManySegments`] when the text
    /// cannot be sent; nothing is queued then.
    pub fn inject_mo(&self, from: &str, to: &str, text: &str) -> Result<(), TextError> {
        let sh = &self.shared;
        // An 8-bit UDH reference; wrapping is expected.
        let reference = (sh.next_mo_ref.fetch_add(1, Ordering::Relaxed) & 0xFFFF) as u16;
        let opts = TextOptions {
            gsm7_packed: sh.cfg.gsm7_packed,
            ..TextOptions::default()
        };
        let segments = text::encode(text, &opts, reference)?;
        let mut router = sh.router.lock();
        for seg in segments {
            let sm = DeliverSm {
                source_addr: Bytes::copy_from_slice(from.as_bytes()),
                destination_addr: Bytes::copy_from_slice(to.as_bytes()),
                esm_class: if seg.esm_class_udhi { ESM_UDHI } else { 0 },
                registered_delivery: 0,
                data_coding: seg.data_coding,
                short_message: seg.short_message,
                ..DeliverSm::default()
            };
            router.dispatch(Outbound {
                pdu: Pdu::new(0, Body::DeliverSm(sm)),
                kind: Kind::Mo,
                route: Route::Any,
            });
        }
        Ok(())
    }

    /// Waits until [`Smsc::shutdown`] is called (e.g. by a clone on a
    /// signal), then for the connections to close (at most 5 s).
    pub async fn run_until_shutdown(self) {
        self.shared.token.cancelled().await;
        let done = self.tasks_done.lock().take();
        if let Some(mut done) = done {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, done.recv()).await;
        }
    }
}

// === impl Shared ===

/// State shared by the handle, the listener, the timer and the connections.
struct Shared {
    cfg: SmscConfig,
    accounts: HashMap<String, String>,
    token: CancellationToken,
    stats: Counters,
    next_message_id: AtomicU64,
    next_conn_id: AtomicU64,
    next_mo_ref: AtomicU64,
    uuid_hi: u64,
    log: Mutex<MessageLog>,
    router: Mutex<Router>,
    /// Wakes the timer task when the delayed queue stops being empty.
    timer: Notify,
}

/// The bench sequence number a text carries: its first run of exactly
/// ten ASCII digits.
fn bench_seq(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let run = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if run == 10 {
                return std::str::from_utf8(&b[i..i + 10]).ok()?.parse().ok();
            }
            i += run;
        } else {
            i += 1;
        }
    }
    None
}

/// What was submitted: parts being reassembled and complete texts.
struct MessageLog {
    reassembler: Reassembler<(Bytes, Bytes)>,
    texts: HashMap<(String, String, String), u32>,
    /// When each complete message arrived (not when `count_only`).
    arrivals: Vec<Instant>,
    /// (bench sequence number, arrival) of the stamped messages.
    stamps: Vec<(u64, Instant)>,
    /// Fingerprints of (source, dest, text) when `count_only`, in many
    /// small tables: one big table's rehash (it doubles at 229k, 458k, 917k…
    /// messages) held this lock for ~100 ms and stalled the whole embedded
    /// bench, gateway included, at those moments.
    fingerprints: Vec<HashMap<u128, u32, foldhash::fast::FixedState>>,
}

impl Shared {
    /// The bind status for these credentials.
    fn check_account(&self, system_id: &[u8], password: &[u8]) -> CommandStatus {
        if self.accounts.is_empty() {
            return CommandStatus::ESME_ROK;
        }
        let id = String::from_utf8_lossy(system_id);
        match self.accounts.get(id.as_ref()) {
            None => CommandStatus::ESME_RINVSYSID,
            Some(expected) if expected.as_bytes() != password => CommandStatus::ESME_RINVPASWD,
            Some(_) => CommandStatus::ESME_ROK,
        }
    }

    /// Counts an accepted part and, when it completes a message, the message.
    fn record(&self, sm: &SubmitSm, incoming: &Incoming<'_>, part: DecodedPart) {
        let mut log = self.log.lock();
        let Some(text) = complete_text(&mut log.reassembler, sm, incoming, part) else {
            return;
        };
        inc(&self.stats.messages);
        if self.cfg.stamp_every > 0
            && let Some(seq) = bench_seq(&text)
            && seq.is_multiple_of(self.cfg.stamp_every)
        {
            log.stamps.push((seq, Instant::now()));
        }
        let count = if self.cfg.count_only {
            let fingerprint = |salt: u8| {
                use std::hash::{Hash, Hasher};
                let mut h = std::hash::DefaultHasher::new();
                salt.hash(&mut h);
                sm.source_addr.hash(&mut h);
                sm.destination_addr.hash(&mut h);
                text.hash(&mut h);
                h.finish()
            };
            let key = (u128::from(fingerprint(1)) << 64) | u128::from(fingerprint(2));
            log.fingerprints[(key as usize) % FINGERPRINT_SHARDS]
                .entry(key)
                .or_insert(0)
        } else {
            log.arrivals.push(Instant::now());
            let src = String::from_utf8_lossy(&sm.source_addr).into_owned();
            let dst = String::from_utf8_lossy(&sm.destination_addr).into_owned();
            log.texts.entry((src, dst, text)).or_insert(0)
        };
        *count += 1;
        if *count > 1 {
            inc(&self.stats.duplicates);
        }
    }

    /// The receipt deliver_sm for an accepted part, if it gets one.
    fn receipt(&self, sm: &SubmitSm, part: &DecodedPart, n: u64, message_id: &str) -> Option<Pdu> {
        let cfg = &self.cfg;
        if let Some(c) = part.concat.filter(|c| c.total > 1) {
            let wanted = match cfg.part_receipts {
                PartReceipts::Each => true,
                PartReceipts::First => c.seq == 1,
                PartReceipts::Last => c.seq == c.total,
            };
            if !wanted {
                return None;
            }
        }
        let outcome = cfg.outcomes.draw();
        let requested = match sm.registered_delivery & 0x03 {
            0 => false,
            2 => outcome.is_failure(),
            3 => !outcome.is_failure(),
            _ => true,
        };
        if outcome == Outcome::None || !requested {
            return None;
        }
        let id = cfg
            .receipt_id_format
            .render(cfg.id_format, n, self.uuid_hi, message_id);
        let now = SystemTime::now();
        let delay = if cfg.receipt_before_resp {
            Duration::ZERO
        } else {
            cfg.receipt_delay
        };
        let text = format_receipt_text(
            &id,
            1,
            u32::from(outcome == Outcome::Delivered),
            &receipt_date(now),
            &receipt_date(now + delay),
            outcome.stat(),
            outcome.err(),
            &receipt_snippet(&part.text),
        );
        let tlvs = if cfg.receipt_tlvs {
            vec![
                Tlv::from_c_string(tag::RECEIPTED_MESSAGE_ID, id.as_bytes()),
                Tlv::from_u8(tag::MESSAGE_STATE, outcome.message_state()),
            ]
        } else {
            Vec::new()
        };
        let receipt = DeliverSm {
            source_addr_ton: sm.dest_addr_ton,
            source_addr_npi: sm.dest_addr_npi,
            source_addr: sm.destination_addr.clone(),
            dest_addr_ton: sm.source_addr_ton,
            dest_addr_npi: sm.source_addr_npi,
            destination_addr: sm.source_addr.clone(),
            esm_class: ESM_DELIVERY_RECEIPT,
            registered_delivery: 0,
            data_coding: 0,
            short_message: Bytes::from(text),
            tlvs,
            ..DeliverSm::default()
        };
        Some(Pdu::new(0, Body::DeliverSm(receipt)))
    }

    /// Queues a receipt to be routed after `receipt_delay`.
    fn schedule(&self, ob: Outbound) {
        let mut router = self.router.lock();
        if router.delayed.is_empty() {
            self.timer.notify_one();
        }
        let due = Instant::now() + self.cfg.receipt_delay;
        router.delayed.push_back((due, ob));
    }
}

// === impl Router ===

/// A deliver_sm waiting for, or written to, a receiver bind.
#[derive(Debug)]
struct Outbound {
    /// Its sequence number is set when it is written.
    pdu: Pdu,
    kind: Kind,
    route: Route,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Receipt,
    Mo,
}

/// Which binds may take a deliver_sm.
#[derive(Debug, Clone)]
enum Route {
    /// Receivers bound with this system_id.
    Account(Arc<str>),
    /// Any receiver.
    Any,
}

/// A receiver bind's inbox.
#[derive(Debug, Clone)]
struct SessionTx {
    conn_id: u64,
    tx: mpsc::UnboundedSender<Outbound>,
}

/// Receivers that may take a route's deliver_sm, and what waits for one.
#[derive(Debug, Default)]
struct Mailbox {
    sessions: Vec<SessionTx>,
    next: usize,
    waiting: VecDeque<Outbound>,
}

impl Mailbox {
    /// Hands `ob` to the next receiver, round-robin, or parks it.
    fn deliver(&mut self, mut ob: Outbound) {
        while !self.sessions.is_empty() {
            let i = self.next % self.sessions.len();
            self.next = self.next.wrapping_add(1);
            match self.sessions[i].tx.send(ob) {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => {
                    // The connection ended without detaching (it panicked).
                    ob = back;
                    self.sessions.swap_remove(i);
                }
            }
        }
        self.waiting.push_back(ob);
    }

    /// Adds a receiver and hands it everything waiting.
    fn attach(&mut self, session: SessionTx) {
        self.sessions.push(session);
        let waiting = std::mem::take(&mut self.waiting);
        for ob in waiting {
            self.deliver(ob);
        }
    }

    fn detach(&mut self, conn_id: u64) {
        self.sessions.retain(|s| s.conn_id != conn_id);
    }
}

/// Routes deliver_sm to receiver binds; holds delayed receipts.
#[derive(Debug, Default)]
struct Router {
    /// Receipts, by system_id.
    accounts: HashMap<Arc<str>, Mailbox>,
    /// MO messages, to any receiver.
    any: Mailbox,
    /// Receipts not yet due, in due order (the delay is constant).
    delayed: VecDeque<(Instant, Outbound)>,
}

impl Router {
    fn dispatch(&mut self, ob: Outbound) {
        match &ob.route {
            Route::Account(id) => {
                let id = Arc::clone(id);
                self.accounts.entry(id).or_default().deliver(ob);
            }
            Route::Any => self.any.deliver(ob),
        }
    }

    fn attach(&mut self, system_id: &Arc<str>, session: SessionTx) {
        self.accounts
            .entry(Arc::clone(system_id))
            .or_default()
            .attach(session.clone());
        self.any.attach(session);
    }

    fn detach(&mut self, system_id: &str, conn_id: u64) {
        if let Some(mailbox) = self.accounts.get_mut(system_id) {
            mailbox.detach(conn_id);
        }
        self.any.detach(conn_id);
    }
}

/// Moves due receipts to the router, sleeping until the next is due.
async fn run_timer(shared: Arc<Shared>, _alive: mpsc::Sender<()>) {
    loop {
        let next_due = {
            let mut router = shared.router.lock();
            let now = Instant::now();
            while router.delayed.front().is_some_and(|(due, _)| *due <= now) {
                if let Some((_, ob)) = router.delayed.pop_front() {
                    router.dispatch(ob);
                }
            }
            router.delayed.front().map(|(due, _)| *due)
        };
        let sleep = async {
            match next_due {
                Some(due) => tokio::time::sleep_until(due).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shared.token.cancelled() => return,
            () = shared.timer.notified() => {}
            () = sleep => {}
        }
    }
}

// === impl Conn ===

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, alive: mpsc::Sender<()>) {
    loop {
        let accepted = tokio::select! {
            () = shared.token.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                tokio::spawn(serve(Arc::clone(&shared), stream, peer, alive.clone()));
            }
            Err(e) => {
                tracing::warn!(target: TARGET, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed.
    Eof,
    /// A framing or I/O error.
    Broken,
    /// `disconnect_every` was reached.
    Cut,
    /// The client unbound.
    Unbind,
    /// The simulator shuts down.
    Shutdown,
}

enum Flow {
    Continue,
    Close(End),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BindKind {
    Transmitter,
    Receiver,
    Transceiver,
}

impl BindKind {
    fn can_submit(self) -> bool {
        self != BindKind::Receiver
    }

    fn can_receive(self) -> bool {
        self != BindKind::Transmitter
    }

    fn resp(self, resp: BindResp) -> Body {
        match self {
            BindKind::Transmitter => Body::BindTransmitterResp(resp),
            BindKind::Receiver => Body::BindReceiverResp(resp),
            BindKind::Transceiver => Body::BindTransceiverResp(resp),
        }
    }
}

struct Bound {
    kind: BindKind,
    system_id: Arc<str>,
}

/// Submits admitted in the current one-second window (`throttle_above`).
struct RateWindow {
    start: Instant,
    count: u32,
}

impl RateWindow {
    fn admit(&mut self, limit: u32, now: Instant) -> bool {
        if now.duration_since(self.start) >= Duration::from_secs(1) {
            self.start = now;
            self.count = 0;
        }
        if self.count >= limit {
            return false;
        }
        self.count += 1;
        true
    }
}

/// One connection's protocol state.
struct Conn {
    id: u64,
    peer: SocketAddr,
    bound: Option<Bound>,
    /// Answers of the current turn, written at its end.
    out: BytesMut,
    inbox_tx: mpsc::UnboundedSender<Outbound>,
    inbox: mpsc::UnboundedReceiver<Outbound>,
    /// deliver_sm written and not answered, by sequence number.
    /// Written deliver_sm awaiting their resp, by sequence number.
    unacked: HashMap<u32, Outbound>,
    last_seq: u32,
    received: u64,
    rate: RateWindow,
}

type Frame = Option<Result<Result<Pdu, PduError>, CodecError>>;

async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, _alive: mpsc::Sender<()>) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let (wtx, wrx) = mpsc::unbounded_channel();
    let mut writer = tokio::spawn(async move {
        if let Err(e) = crate::wire::write_coalesced(wr, wrx).await {
            tracing::debug!(target: TARGET, error = %e, "write failed");
        }
    });
    let mut framed = FramedRead::with_capacity(rd, SmppCodec::default(), 64 * 1024);
    let (inbox_tx, inbox) = mpsc::unbounded_channel();
    let mut conn = Conn {
        id: shared.next_conn_id.fetch_add(1, Ordering::Relaxed),
        peer,
        bound: None,
        out: BytesMut::with_capacity(16 * 1024),
        inbox_tx,
        inbox,
        unacked: HashMap::new(),
        last_seq: 0,
        received: 0,
        rate: RateWindow {
            start: Instant::now(),
            count: 0,
        },
    };
    tracing::debug!(target: TARGET, conn = conn.id, %peer, "connection accepted");
    let end = conn.run(&shared, &mut framed, &wtx).await;
    conn.detach(&shared);
    // The writer writes what is queued, shuts the write side and ends.
    drop(wtx);
    if matches!(end, End::Cut | End::Unbind | End::Shutdown) {
        linger(framed.into_inner()).await;
    }
    if tokio::time::timeout(LINGER, &mut writer).await.is_err() {
        writer.abort();
    }
    tracing::debug!(target: TARGET, conn = conn.id, %peer, ?end, "connection closed");
}

/// Reads and discards until the client closes, at most [`LINGER`].
async fn linger(mut rd: OwnedReadHalf) {
    let mut buf = vec![0; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

impl Conn {
    async fn run(
        &mut self,
        sh: &Shared,
        framed: &mut FramedRead<OwnedReadHalf, SmppCodec>,
        wtx: &mpsc::UnboundedSender<Bytes>,
    ) -> End {
        loop {
            let flow = tokio::select! {
                () = sh.token.cancelled() => {
                    let seq = self.next_seq();
                    Pdu::unbind(seq).encode(&mut self.out);
                    Flow::Close(End::Shutdown)
                }
                frame = framed.next() => {
                    let mut flow = self.on_frame(sh, frame);
                    let mut reads = 1;
                    while matches!(flow, Flow::Continue) && reads < READS_PER_TURN {
                        let Some(frame) = framed.next().now_or_never() else { break };
                        flow = self.on_frame(sh, frame);
                        reads += 1;
                    }
                    flow
                }
                Some(ob) = self.inbox.recv() => {
                    self.write_outbound(sh, ob);
                    Flow::Continue
                }
            };
            if matches!(flow, Flow::Continue) {
                while let Ok(ob) = self.inbox.try_recv() {
                    self.write_outbound(sh, ob);
                }
            }
            if !self.out.is_empty() {
                // A send error means the writer failed; the read side will
                // see it too.
                let _ = wtx.send(self.out.split().freeze());
            }
            if let Flow::Close(end) = flow {
                return end;
            }
        }
    }

    fn on_frame(&mut self, sh: &Shared, frame: Frame) -> Flow {
        let pdu = match frame {
            None => return Flow::Close(End::Eof),
            Some(Err(e)) => {
                tracing::debug!(target: TARGET, conn = self.id, error = %crate::model::LogSafe::display(&e), "framing error, closing");
                return Flow::Close(End::Broken);
            }
            Some(Ok(pdu)) => pdu,
        };
        self.received += 1;
        let flow = match pdu {
            Ok(pdu) => self.on_pdu(sh, pdu),
            Err(e) => {
                self.on_malformed(sh, &e);
                Flow::Continue
            }
        };
        let every = sh.cfg.disconnect_every;
        if matches!(flow, Flow::Continue) && every > 0 && self.received >= every {
            inc(&sh.stats.disconnects);
            tracing::debug!(target: TARGET, conn = self.id, received = self.received, "disconnect_every reached, cutting");
            return Flow::Close(End::Cut);
        }
        flow
    }

    fn on_malformed(&mut self, sh: &Shared, e: &PduError) {
        if e.command_id().is_some_and(|id| id & RESPONSE_BIT != 0) {
            tracing::debug!(target: TARGET, conn = self.id, error = %crate::model::LogSafe::display(&e), "malformed response ignored");
            return;
        }
        tracing::debug!(target: TARGET, conn = self.id, error = %crate::model::LogSafe::display(&e), "malformed PDU, nacking");
        self.nack(sh, e.sequence_number().unwrap_or(0), e.command_status());
    }

    fn nack(&mut self, sh: &Shared, seq: u32, status: CommandStatus) {
        inc(&sh.stats.generic_nacks);
        Pdu::generic_nack(seq, status).encode(&mut self.out);
    }

    fn on_pdu(&mut self, sh: &Shared, pdu: Pdu) -> Flow {
        let seq = pdu.sequence_number;
        let status = pdu.command_status;
        let is_request = pdu.command_id() & RESPONSE_BIT == 0;
        match pdu.body {
            Body::BindTransmitter(b) => self.on_bind(sh, seq, BindKind::Transmitter, &b),
            Body::BindReceiver(b) => self.on_bind(sh, seq, BindKind::Receiver, &b),
            Body::BindTransceiver(b) => self.on_bind(sh, seq, BindKind::Transceiver, &b),
            Body::EnquireLink => Pdu::enquire_link_resp(seq).encode(&mut self.out),
            _ if is_request && self.bound.is_none() => {
                self.nack(sh, seq, CommandStatus::ESME_RINVBNDSTS);
            }
            Body::SubmitSm(sm) => self.on_submit(sh, seq, &sm),
            Body::Unbind => {
                inc(&sh.stats.unbinds);
                Pdu::unbind_resp(seq).encode(&mut self.out);
                return Flow::Close(End::Unbind);
            }
            Body::DeliverSmResp(_) => {
                if let Some(ob) = self.unacked.remove(&seq) {
                    match ob.kind {
                        Kind::Receipt => inc(&sh.stats.receipts_acked),
                        Kind::Mo => inc(&sh.stats.mo_acked),
                    }
                    if !status.is_ok() {
                        tracing::debug!(target: TARGET, conn = self.id, %status, "deliver_sm answered with an error");
                    }
                }
            }
            Body::GenericNack => {
                if self.unacked.remove(&seq).is_some() {
                    tracing::warn!(target: TARGET, conn = self.id, %status, "client nacked a deliver_sm; dropped");
                }
            }
            Body::Other { command_id, .. } if command_id & RESPONSE_BIT != 0 => {}
            Body::DeliverSm(_) | Body::Outbind { .. } | Body::Other { .. } => {
                self.nack(sh, seq, CommandStatus::ESME_RINVCMDID);
            }
            // Responses nobody asked for (the client answering our unbind
            // included) are ignored.
            Body::BindTransmitterResp(_)
            | Body::BindReceiverResp(_)
            | Body::BindTransceiverResp(_)
            | Body::SubmitSmResp(_)
            | Body::EnquireLinkResp
            | Body::UnbindResp => {}
        }
        Flow::Continue
    }

    fn on_bind(&mut self, sh: &Shared, seq: u32, kind: BindKind, bind: &Bind) {
        let status = if self.bound.is_some() {
            CommandStatus::ESME_RALYBND
        } else {
            sh.check_account(&bind.system_id, &bind.password)
        };
        let system_id = String::from_utf8_lossy(&bind.system_id);
        let resp = if status.is_ok() {
            BindResp {
                system_id: Bytes::from_static(SYSTEM_ID.as_bytes()),
                tlvs: vec![Tlv::from_u8(tag::SC_INTERFACE_VERSION, SMPP_34)],
            }
        } else {
            BindResp::default()
        };
        Pdu {
            command_status: status,
            sequence_number: seq,
            body: kind.resp(resp),
        }
        .encode(&mut self.out);
        if !status.is_ok() {
            inc(&sh.stats.bind_failures);
            tracing::info!(target: TARGET, conn = self.id, peer = %self.peer, system_id = %crate::model::LogSafe::new(&system_id), ?kind, %status, "bind refused");
            return;
        }
        inc(&sh.stats.binds);
        tracing::info!(target: TARGET, conn = self.id, peer = %self.peer, system_id = %crate::model::LogSafe::new(&system_id), ?kind, "bound");
        let system_id: Arc<str> = Arc::from(system_id.as_ref());
        if kind.can_receive() {
            let session = SessionTx {
                conn_id: self.id,
                tx: self.inbox_tx.clone(),
            };
            sh.router.lock().attach(&system_id, session);
        }
        self.rate.start = Instant::now();
        self.bound = Some(Bound { kind, system_id });
    }

    fn on_submit(&mut self, sh: &Shared, seq: u32, sm: &SubmitSm) {
        let Some(bound) = &self.bound else {
            // on_pdu nacks requests before a bind; kept for safety.
            self.nack(sh, seq, CommandStatus::ESME_RINVBNDSTS);
            return;
        };
        if !bound.kind.can_submit() {
            Pdu::submit_sm_resp(seq, CommandStatus::ESME_RINVBNDSTS, Bytes::new())
                .encode(&mut self.out);
            return;
        }
        let cfg = &sh.cfg;
        inc(&sh.stats.submits);
        let throttled = (cfg.throttle_fraction > 0.0
            && rand::random::<f64>() < cfg.throttle_fraction)
            || (cfg.throttle_above > 0 && !self.rate.admit(cfg.throttle_above, Instant::now()));
        if throttled {
            inc(&sh.stats.throttled);
            Pdu::submit_sm_resp(seq, CommandStatus::ESME_RTHROTTLED, Bytes::new())
                .encode(&mut self.out);
            return;
        }
        let incoming = incoming(sm, cfg.gsm7_packed);
        let part = match submitted_part(&incoming) {
            Ok(part) => part,
            Err((status, why)) => {
                self.reject(sh, seq, status, &why);
                return;
            }
        };
        let n = sh.next_message_id.fetch_add(1, Ordering::Relaxed);
        let message_id = cfg.id_format.render(n, sh.uuid_hi);
        inc(&sh.stats.accepted_parts);
        let receipt = sh.receipt(sm, &part, n, &message_id).map(|pdu| Outbound {
            pdu,
            kind: Kind::Receipt,
            route: Route::Account(Arc::clone(&bound.system_id)),
        });
        let can_receive = bound.kind.can_receive();
        sh.record(sm, &incoming, part);
        let resp = Pdu::submit_sm_resp(seq, CommandStatus::ESME_ROK, message_id);
        let cut_now = cfg.disconnect_every > 0 && self.received >= cfg.disconnect_every;
        match receipt {
            Some(ob) if cfg.receipt_before_resp && can_receive => {
                self.write_outbound(sh, ob);
                if !(cut_now && cfg.lose_resp_on_cut) {
                    resp.encode(&mut self.out);
                }
            }
            Some(ob) if cfg.receipt_before_resp || cfg.receipt_delay.is_zero() => {
                resp.encode(&mut self.out);
                sh.router.lock().dispatch(ob);
            }
            Some(ob) => {
                resp.encode(&mut self.out);
                sh.schedule(ob);
            }
            None => resp.encode(&mut self.out),
        }
    }

    fn reject(&mut self, sh: &Shared, seq: u32, status: CommandStatus, why: &str) {
        inc(&sh.stats.rejected);
        tracing::debug!(target: TARGET, conn = self.id, %status, why = %crate::model::LogSafe::new(why), "submit_sm refused");
        Pdu::submit_sm_resp(seq, status, Bytes::new()).encode(&mut self.out);
    }

    fn next_seq(&mut self) -> u32 {
        self.last_seq = if self.last_seq >= MAX_SEQUENCE {
            1
        } else {
            self.last_seq + 1
        };
        self.last_seq
    }

    fn write_outbound(&mut self, sh: &Shared, mut ob: Outbound) {
        let seq = self.next_seq();
        ob.pdu.sequence_number = seq;
        ob.pdu.encode(&mut self.out);
        match ob.kind {
            Kind::Receipt => inc(&sh.stats.receipts_sent),
            Kind::Mo => inc(&sh.stats.mo_sent),
        }
        if let Some(stale) = self.unacked.insert(seq, ob) {
            // Two billion deliver_sm unanswered: route the old one again.
            sh.router.lock().dispatch(stale);
        }
    }

    /// Leaves the router and hands back every deliver_sm written and not
    /// answered, and every one still queued for this connection.
    fn detach(&mut self, sh: &Shared) {
        let Some(bound) = self.bound.take() else {
            return;
        };
        if !bound.kind.can_receive() && self.unacked.is_empty() {
            return;
        }
        let mut router = sh.router.lock();
        router.detach(&bound.system_id, self.id);
        self.inbox.close();
        // In the order they were written (sequence numbers rise).
        let mut unacked: Vec<(u32, Outbound)> =
            std::mem::take(&mut self.unacked).into_iter().collect();
        unacked.sort_unstable_by_key(|(seq, _)| *seq);
        let mut back: Vec<Outbound> = unacked.into_iter().map(|(_, ob)| ob).collect();
        while let Ok(ob) = self.inbox.try_recv() {
            back.push(ob);
        }
        if !back.is_empty() {
            tracing::debug!(target: TARGET, conn = self.id, count = back.len(), "re-queuing unanswered deliver_sm");
        }
        for ob in back {
            router.dispatch(ob);
        }
    }
}

/// The part a submit_sm carries, or the status refusing it and why.
fn submitted_part(incoming: &Incoming<'_>) -> Result<DecodedPart, (CommandStatus, String)> {
    match incoming.decode() {
        Ok(part) if part.concat.is_none_or(|c| c.seq >= 1 && c.seq <= c.total) => Ok(part),
        Ok(_) => Err((
            CommandStatus::ESME_RINVOPTPARAMVAL,
            "SAR seqnum outside 1..=total".to_owned(),
        )),
        Err(e) => {
            let status = match e {
                TextError::InvalidEncoding { .. } => CommandStatus::ESME_RINVDCS,
                _ => CommandStatus::ESME_RSUBMITFAIL,
            };
            Err((status, e.to_string()))
        }
    }
}

/// The whole text once `part` completes its message: at once for a single
/// part, through the reassembler (keyed by source and destination) for a
/// concatenated one.
fn complete_text(
    reassembler: &mut Reassembler<(Bytes, Bytes)>,
    sm: &SubmitSm,
    incoming: &Incoming<'_>,
    part: DecodedPart,
) -> Option<String> {
    if part.concat.is_none_or(|c| c.total <= 1) {
        return Some(part.text);
    }
    let key = (sm.source_addr.clone(), sm.destination_addr.clone());
    reassembler.push(key, incoming).unwrap_or_else(|e| {
        tracing::debug!(target: TARGET, error = %e, "reassembled message does not decode");
        None
    })
}

/// Fuzzing hook: a submit_sm through the simulator's own decoding (text
/// fields and SAR TLVs, checks, reassembly); the complete text, if this part
/// completes one, or the status that refuses the submit.
///
/// # Errors
/// The `command_status` the simulator answers a refused submit with.
#[doc(hidden)]
pub fn fuzz_submit(
    sm: &SubmitSm,
    gsm7_packed: bool,
    reassembler: &mut Reassembler<(Bytes, Bytes)>,
) -> Result<Option<String>, CommandStatus> {
    let incoming = incoming(sm, gsm7_packed);
    let part = submitted_part(&incoming).map_err(|(status, _)| status)?;
    Ok(complete_text(reassembler, sm, &incoming, part))
}

/// The text-bearing fields of a submit_sm, SAR and payload TLVs included.
fn incoming(sm: &SubmitSm, gsm7_packed: bool) -> Incoming<'_> {
    Incoming::of(sm, gsm7_packed)
}
