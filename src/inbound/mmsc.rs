//! The MM7 callbacks of one MMSC: delivery reports end their messages
//! through the receipts (looked up by MessageID and Recipient: one request
//! may have had several recipients), inbound MMS goes to [`Inbound`].
//!
//! # Delivery reports that match nothing
//! MMSCs deliver reports at least once, and may post one before the
//! SubmitRsp naming its MessageID has been read. A report whose MessageID
//! matches no message waits until every SubmitReq in flight when it came
//! has been answered (at most the MMSC's request timeout), then is looked
//! up again. A report that still matches nothing is answered with a valid
//! `DeliveryReportRsp`, never a Fault (a Fault makes the MMSC retry for
//! hours) and counted in `sluice_mm7_reports_unmatched_total{carrier,
//! reason}`: 1000 Success for a repeat of a report already applied (the
//! last [`RECENT_REPORTS`] (MessageID, recipient) pairs of each MMSC are
//! remembered), 2005
//! Message ID Not found, a permanent status, for any other.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Inbound, TARGET};
use crate::carrier::mm7::{Mm7Carrier, mm_status_outcome};
use crate::mm7::server::HandlerError;
use crate::mm7::soap::{Address, DeliverReq, DeliveryReportReq};
use crate::mm7::status::{self, Status};
use crate::model::{DeliveryState, LogSafe};
use crate::receipts::{InboundMo, Receipts, normalize_id, recipient_id};

/// MessageIDs of applied delivery reports remembered per MMSC, to tell a
/// repeat from a report that never matched.
pub const RECENT_REPORTS: usize = 65_536;

/// The MM7 callbacks of one MMSC.
#[derive(Debug)]
pub struct MmscCallbacks {
    receipts: Arc<Receipts>,
    inbound: Arc<Inbound>,
    mmsc: Arc<Mm7Carrier>,
    carrier: Arc<str>,
    /// Canonical MessageIDs of the last applied final reports.
    recent: Mutex<RecentIds>,
}

/// A bounded set of recently seen ids, oldest forgotten first.
#[derive(Debug, Default)]
struct RecentIds {
    set: HashSet<Box<str>>,
    order: VecDeque<Box<str>>,
}

impl RecentIds {
    fn insert(&mut self, id: &str) {
        if self.set.insert(id.into()) {
            self.order.push_back(id.into());
        }
        while self.order.len() > RECENT_REPORTS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
}

impl MmscCallbacks {
    /// The callbacks of `mmsc`.
    pub fn new(
        receipts: Arc<Receipts>,
        inbound: Arc<Inbound>,
        mmsc: Arc<Mm7Carrier>,
    ) -> MmscCallbacks {
        MmscCallbacks {
            receipts,
            inbound,
            carrier: mmsc.name().clone(),
            mmsc,
            recent: Mutex::default(),
        }
    }

    /// Applies a final report; `None` when its MessageID and recipient
    /// match no part.
    async fn apply(
        &self,
        report: &DeliveryReportReq,
        state: DeliveryState,
        reason: &str,
    ) -> Option<()> {
        match self
            .receipts
            .report(&self.carrier, &report_key(report), state, 0, reason)
        {
            Ok(publishing) => {
                self.recent
                    .lock()
                    .insert(&normalize_id(&report_key(report)));
                if let Some(p) = publishing {
                    p.await;
                }
                Some(())
            }
            Err(_) => None,
        }
    }

    /// True when a final report with this MessageID and recipient was
    /// applied lately.
    fn is_repeat(&self, report: &DeliveryReportReq) -> bool {
        self.recent
            .lock()
            .contains(&normalize_id(&report_key(report)))
    }

    /// A report that matches nothing: counted, answered for good.
    fn unmatched(&self, report: &DeliveryReportReq) -> Status {
        let repeat = self.is_repeat(report);
        let reason = if repeat { "duplicate" } else { "unknown" };
        metrics::counter!("sluice_mm7_reports_unmatched_total",
            "carrier" => self.carrier.to_string(), "reason" => reason)
        .increment(1);
        if repeat {
            tracing::debug!(target: TARGET, carrier = %self.carrier,
                message_id = %LogSafe::new(&report.message_id), "repeated delivery report");
            Status::success()
        } else {
            tracing::warn!(target: TARGET, carrier = %self.carrier,
                message_id = %LogSafe::new(&report.message_id),
                mm_status = %LogSafe::display(&report.mm_status),
                "delivery report for an unknown MessageID (already final, or never ours): answered 2005");
            Status::new(status::MESSAGE_ID_NOT_FOUND)
                .with_details("no message waits for a report with this MessageID")
        }
    }
}

/// The key a report is correlated by: its MessageID and recipient (found
/// under the MessageID alone for a request that had one recipient).
fn report_key(report: &DeliveryReportReq) -> Vec<u8> {
    recipient_id(&report.message_id, &address(&report.recipient))
}

fn address(a: &Address) -> String {
    match a {
        Address::Number(s) | Address::ShortCode(s) | Address::Email(s) => s.clone(),
    }
}

impl crate::mm7::Mm7Inbound for MmscCallbacks {
    async fn delivery_report(&self, report: DeliveryReportReq) -> Result<Status, HandlerError> {
        metrics::counter!("sluice_mm7_reports_total", "carrier" => self.carrier.to_string())
            .increment(1);
        let Some((state, reason)) = mm_status_outcome(&report.mm_status) else {
            return Ok(Status::success());
        };
        let reason = match &report.status_text {
            Some(t) if !t.is_empty() => {
                let t: String = t.chars().take(160).collect();
                format!("{reason}: {t}")
            }
            _ => reason.to_owned(),
        };
        // Every request in flight now may be the one whose answer names
        // this MessageID.
        let mark = self.mmsc.in_flight().mark();
        if self.apply(&report, state, &reason).await.is_some() {
            return Ok(Status::success());
        }
        if !self.is_repeat(&report) && !self.mmsc.in_flight().is_empty() {
            let _ = tokio::time::timeout(
                self.mmsc.timeout(),
                self.mmsc.in_flight().ended_before(mark),
            )
            .await;
            if self.apply(&report, state, &reason).await.is_some() {
                return Ok(Status::success());
            }
        }
        // In cluster mode the MMS may be another node's: the report goes to
        // the node that sent it (an MMSC posts every report to one URL).
        if !self.is_repeat(&report)
            && self
                .receipts
                .forward_report(&self.carrier, &report_key(&report), state, 0)
        {
            metrics::counter!("sluice_mm7_reports_forwarded_total",
                "carrier" => self.carrier.to_string())
            .increment(1);
            return Ok(Status::success());
        }
        Ok(self.unmatched(&report))
    }

    async fn deliver(&self, d: DeliverReq) -> Result<(), HandlerError> {
        let mo = InboundMo {
            carrier: self.carrier.clone(),
            channel: "mms",
            from: address(&d.sender),
            to: d.recipients.first().map(address).unwrap_or_default(),
            text: d.text,
            // Capped like every peer string that is kept.
            linked_id: d
                .linked_id
                .map(|l| l.chars().take(64).collect())
                .unwrap_or_default(),
        };
        self.inbound.handle(mo).await.map_err(HandlerError::from)
    }
}
