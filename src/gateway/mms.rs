//! The gateway's MMS side: media uploads from the ingest protocol, the
//! channel decision (MMS, or SMS fallback with a link or text only, or
//! failure), MMSC routing and failover, the media source MM7 carriers fetch
//! fitted content from, and the MM7 callbacks (delivery reports, inbound
//! MMS).
//!
//! # MMSC routing
//! A message with media goes to the first MMSC of its MMS route
//! (`[[mms.routes]]`, or every MMSC in configuration order) that takes
//! traffic: one that is up, or down with a try due (see
//! [`Mm7Carrier::takes_traffic`]); when none does, to the route's first
//! (its traffic waits there). An MMSC down (unreachable, or refusing our
//! credentials) for its `failover_after` hands its queue to the first MMSC
//! of each message's route that is up, as SMS carriers do.
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
//! last [`RECENT_REPORTS`] MessageIDs of each MMSC are remembered), 2005
//! Message ID Not found, a permanent status, for any other.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;

use super::{Gateway, TARGET};
use crate::carrier::mm7::{MediaSource, Mm7Carrier};
use crate::config::Config;
use crate::ingest::pb;
use crate::media::store::{MediaStore, Quota, StoreConfig, UploadId};
use crate::mm7::soap::{Address, DeliverReq, DeliveryReportReq, MmStatus};
use crate::mm7::status::{self, Status};
use crate::model::{
    ChannelPref, DeliveryState, FallbackPolicy, LogSafe, MAX_TEXT_CHARS, Message, Msisdn,
};
use crate::receipts::{InboundMo, normalize_id};

/// MessageIDs of applied delivery reports remembered per MMSC, to tell a
/// repeat from a report that never matched.
pub const RECENT_REPORTS: usize = 65_536;

/// Chunked uploads in progress: (connection, client upload id) → upload.
pub(super) type Uploads = DashMap<(u64, String), UploadId>;

/// The media store's settings: size limit, quotas (`[mms]` defaults and
/// per-tenant overrides) and limits on uploads in progress.
pub(super) fn store_config(config: &Config) -> StoreConfig {
    let mut c = StoreConfig::new(config.data_dir.join("media"));
    c.max_size = config.mms.max_media_bytes as u64;
    c.max_uploads_per_tenant = config.mms.max_uploads_per_tenant;
    c.max_uploads = config.mms.max_uploads;
    c.quota = Quota {
        bytes: config.mms.media_quota_bytes,
        count: config.mms.media_quota_count,
    };
    c.tenant_quotas = config
        .tenants
        .iter()
        .filter(|t| t.media_quota_bytes.is_some() || t.media_quota_count.is_some())
        .map(|t| {
            let q = Quota {
                bytes: t.media_quota_bytes.unwrap_or(c.quota.bytes),
                count: t.media_quota_count.unwrap_or(c.quota.count),
            };
            (t.name.clone(), q)
        })
        .collect();
    c
}

impl Gateway {
    /// True when `to` can receive MMS (by the configured prefixes).
    fn mms_reachable(&self, to: Msisdn) -> bool {
        let n = to.to_string();
        self.mms
            .reachable_prefixes
            .iter()
            .any(|p| n.starts_with(p.as_str()))
    }

    fn mmsc(&self, name: &str) -> Option<&Arc<Mm7Carrier>> {
        self.mmscs.iter().find(|c| **c.name() == *name)
    }

    /// The MMSCs that may carry MMS to `to`, in order of preference; empty
    /// when no MMS route matches.
    fn mms_candidates(&self, to: Msisdn) -> Vec<&Arc<Mm7Carrier>> {
        if self.mms_routes.is_empty() {
            return self.mmscs.iter().collect();
        }
        let number = to.to_string();
        self.mms_routes
            .iter()
            .find(|(prefix, _)| number.starts_with(prefix.as_str()))
            .map(|(_, names)| names.iter().filter_map(|n| self.mmsc(n)).collect())
            .unwrap_or_default()
    }

    /// The MMSC for a message with media, or why it cannot go as MMS.
    pub(super) fn mms_route(&self, m: &Message) -> Result<Arc<str>, String> {
        if m.channel == ChannelPref::Sms {
            return Err("SMS requested".into());
        }
        if self.mmscs.is_empty() {
            return Err("no MMS carrier configured".into());
        }
        if !self.mms_reachable(m.to) {
            return Err(format!("{} is not reachable by MMS", m.to));
        }
        let candidates = self.mms_candidates(m.to);
        let chosen = candidates
            .iter()
            .find(|c| c.takes_traffic())
            .or_else(|| candidates.first())
            .ok_or_else(|| format!("no MMS route reaches {}", m.to))?;
        Ok(chosen.name().clone())
    }

    /// Moves the queue of an MMSC down (unreachable, or refusing our
    /// credentials) for its `failover_after` to the first MMSC of each
    /// message's route that is up; what no such MMSC takes stays.
    pub(super) fn mms_failover(&self) {
        for mmsc in &self.mmscs {
            let name = mmsc.name();
            let Some(queue) = self.scheduler.queue(name) else {
                continue;
            };
            if queue.is_empty() || mmsc.down_for().is_none_or(|d| d < mmsc.failover_after()) {
                continue;
            }
            let any_up = self
                .mmscs
                .iter()
                .any(|c| c.name() != name && c.down().is_none());
            if !any_up {
                continue;
            }
            let mut stay = Vec::new();
            let mut moved: Vec<(Arc<str>, Vec<crate::schedule::fair::Item>)> = Vec::new();
            for item in queue.drain() {
                let target = self
                    .mms_candidates(item.message.to)
                    .into_iter()
                    .find(|c| c.name() != name && c.down().is_none())
                    .map(|c| c.name().clone());
                match target {
                    Some(t) => match moved.iter_mut().find(|(n, _)| *n == t) {
                        Some((_, v)) => v.push(item),
                        None => moved.push((t, vec![item])),
                    },
                    None => stay.push(item),
                }
            }
            if !stay.is_empty() {
                queue.push_items(stay);
            }
            let mut count = 0u64;
            for (target, items) in moved {
                if let Some(q) = self.scheduler.queue(&target) {
                    count += items.len() as u64;
                    q.push_items(items);
                }
            }
            if count > 0 {
                metrics::counter!("sluice_failover_messages_total", "carrier" => name.to_string())
                    .increment(count);
                let why = mmsc.down().map(|d| d.to_string()).unwrap_or_default();
                tracing::warn!(target: TARGET, carrier = %name, moved = count, %why,
                    "MMSC down: its MMS failed over");
            }
        }
    }

    /// Sends `m` as SMS per its fallback policy (or fails it), saying why.
    /// `mmsc`: the MMSC that refused it and the MM7 status, when it was
    /// refused there (a failure then reports that MMSC and status).
    pub(super) fn fallback(&self, m: Arc<Message>, reason: String, mmsc: Option<(&Arc<str>, u32)>) {
        let fail = |why: String| {
            let mut endings = self.receipts.endings();
            if let Some(f) = endings.end(m.id, DeliveryState::Failed, 0, &why.into())
                && let Some((carrier, code)) = mmsc
            {
                f.carrier = Some(carrier.clone());
                f.error_code = code;
            }
        };
        let text = match m.fallback {
            FallbackPolicy::None => {
                return fail(format!(
                    "cannot send as MMS ({reason}) and the fallback policy is none"
                ));
            }
            FallbackPolicy::SmsTextOnly if m.text.trim().is_empty() => {
                return fail(format!(
                    "cannot send as MMS ({reason}) and there is no text for SMS"
                ));
            }
            FallbackPolicy::SmsTextOnly => m.text.clone(),
            FallbackPolicy::SmsWithLink => {
                let links: Vec<String> = m
                    .media
                    .iter()
                    .map(|id| {
                        format!(
                            "{}{}",
                            self.mms.public_url.trim_end_matches('/'),
                            self.links.path(m.id.0, id)
                        )
                    })
                    .collect();
                let links = links.join(" ");
                // Keep the whole SMS within the text limit: trim the text,
                // never the link.
                let room = MAX_TEXT_CHARS.saturating_sub(links.chars().count() + 1);
                let body: String = m.text.chars().take(room).collect();
                if body.trim().is_empty() {
                    links
                } else {
                    format!("{body}\n{links}")
                }
            }
        };
        let how = match m.fallback {
            FallbackPolicy::SmsWithLink => "with a link",
            _ => "text only",
        };
        let sms = Arc::new(Message {
            text,
            media: Vec::new(),
            channel: ChannelPref::Sms,
            ..(*m).clone()
        });
        match self.route(m.to).and_then(|c| self.scheduler.queue(c)) {
            Some(q) => {
                self.ledger
                    .set_note(m.id, format!("fallback to SMS {how}: {reason}"));
                metrics::counter!("sluice_mms_fallbacks_total").increment(1);
                q.push(std::iter::once(&sms));
            }
            None => fail(format!(
                "cannot send as MMS ({reason}) and no SMS route reaches {}",
                m.to
            )),
        }
    }

    /// Stores uploaded media (one frame, or a chunk of an upload).
    pub(super) async fn store_media(
        &self,
        tenant: Arc<str>,
        conn: u64,
        req: pb::PutMedia,
    ) -> Result<pb::MediaOk, String> {
        let store = self.media.clone();
        let uploads = self.uploads.clone();
        let label = tenant.to_string();
        let stored = tokio::task::spawn_blocking(move || {
            let ok = |info: crate::media::store::MediaInfo| pb::MediaOk {
                media_id: info.id.to_hex(),
                size: info.len,
                content_type: info.media_type.content_type().to_owned(),
            };
            let refused = |e: crate::media::MediaError| {
                metrics::counter!("sluice_media_refused_total",
                    "tenant" => tenant.to_string(), "reason" => e.kind())
                .increment(1);
                e.to_string()
            };
            let stored = |info| {
                if let Ok(u) = store.usage(&tenant) {
                    metrics::gauge!("sluice_media_stored_bytes", "tenant" => tenant.to_string())
                        .set(u.bytes as f64);
                    metrics::gauge!("sluice_media_stored", "tenant" => tenant.to_string())
                        .set(u.count as f64);
                }
                ok(info)
            };
            if req.upload_id.is_empty() {
                return store
                    .put(&tenant, &req.content_type, req.data)
                    .map(stored)
                    .map_err(refused);
            }
            let key = (conn, req.upload_id.clone());
            let upload = match uploads.get(&key).map(|u| *u) {
                Some(u) => u,
                None if req.offset == 0 => {
                    let u = store
                        .begin_upload(&tenant, &req.content_type, req.total_size)
                        .map_err(refused)?;
                    uploads.insert(key.clone(), u);
                    u
                }
                None => {
                    return Err(format!(
                        "unknown upload {:?} (begin it at offset 0)",
                        crate::model::LogSafe::new(&req.upload_id)
                    ));
                }
            };
            if let Err(e) = store.put_chunk(&tenant, upload, req.offset, &req.data) {
                uploads.remove(&key);
                store.abort(&tenant, upload);
                return Err(refused(e));
            }
            if !req.last {
                return Ok(pb::MediaOk::default());
            }
            uploads.remove(&key);
            store.finish(&tenant, upload).map(stored).map_err(refused)
        })
        .await;
        stored.map_err(|e| {
            tracing::error!(target: TARGET, tenant = %label, error = %e, "media store task failed");
            "media store failed; retry".to_owned()
        })?
    }

    /// Drops the chunked uploads connection `conn` left unfinished, so they
    /// stop holding the tenant's uploads in progress.
    pub(super) fn drop_uploads(&self, tenant: &str, conn: u64) {
        let mut gone = Vec::new();
        self.uploads.retain(|(c, _), u| {
            if *c == conn {
                gone.push(*u);
            }
            *c != conn
        });
        for u in gone {
            self.media.abort(tenant, u);
        }
    }

    /// True when `tenant` uploaded media `id`.
    pub(super) fn owns_media(&self, tenant: &str, id: &str) -> bool {
        self.media.get(tenant, id).is_ok()
    }
}

/// Media for MM7 carriers: from the store, fitted to the size budget
/// (fitting results are cached per media and limit by the fitter).
#[derive(Debug)]
pub(super) struct StoreSource {
    pub store: Arc<MediaStore>,
    pub fitter: Arc<crate::media::fit::Fitter>,
}

impl MediaSource for StoreSource {
    fn fetch(&self, tenant: &str, id: &str, max_bytes: usize) -> Result<(String, Bytes), String> {
        let media = self
            .store
            .get(tenant, id)
            .map_err(|e| format!("media {id}: {e}"))?;
        if media.bytes.len() <= max_bytes {
            return Ok((media.media_type.content_type().to_owned(), media.bytes));
        }
        let fitted = self
            .fitter
            .fit(&media, max_bytes)
            .map_err(|e| format!("media {id} does not fit the carrier's limit: {e}"))?;
        Ok((fitted.media_type.content_type().to_owned(), fitted.bytes))
    }
}

/// The MM7 callbacks of one MMSC.
#[derive(Debug)]
pub(super) struct MmscCallbacks {
    gateway: Arc<Gateway>,
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
    pub(super) fn new(gateway: Arc<Gateway>, mmsc: Arc<Mm7Carrier>) -> MmscCallbacks {
        MmscCallbacks {
            gateway,
            carrier: mmsc.name().clone(),
            mmsc,
            recent: Mutex::default(),
        }
    }

    /// Applies a final report; `None` when its MessageID matches no part.
    async fn apply(
        &self,
        report: &DeliveryReportReq,
        state: DeliveryState,
        reason: &str,
    ) -> Option<()> {
        match self.gateway.receipts.report(
            &self.carrier,
            report.message_id.as_bytes(),
            state,
            0,
            reason,
        ) {
            Ok(publishing) => {
                self.recent
                    .lock()
                    .insert(&normalize_id(report.message_id.as_bytes()));
                if let Some(p) = publishing {
                    p.await;
                }
                Some(())
            }
            Err(_) => None,
        }
    }

    /// True when a final report with this MessageID was applied lately.
    fn is_repeat(&self, report: &DeliveryReportReq) -> bool {
        self.recent
            .lock()
            .contains(&normalize_id(report.message_id.as_bytes()))
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

fn address(a: &Address) -> String {
    match a {
        Address::Number(s) | Address::ShortCode(s) | Address::Email(s) => s.clone(),
    }
}

/// What an MMStatus means for the message; `None` when not final.
pub fn mm_status_outcome(s: &MmStatus) -> Option<(DeliveryState, &'static str)> {
    Some(match s {
        MmStatus::Retrieved => (DeliveryState::Delivered, "Retrieved"),
        MmStatus::Forwarded => (DeliveryState::Delivered, "Forwarded"),
        MmStatus::Rejected => (DeliveryState::Failed, "Rejected"),
        MmStatus::Unrecognised => (DeliveryState::Failed, "Unrecognised: recipient unknown"),
        MmStatus::DeliveryConditionNotMet => (DeliveryState::Failed, "DeliveryConditionNotMet"),
        MmStatus::Expired => (DeliveryState::Expired, "Expired: not retrieved in time"),
        MmStatus::Indeterminate => (DeliveryState::Unknown, "Indeterminate"),
        MmStatus::Deferred => return None,
        MmStatus::Other(_) => (DeliveryState::Unknown, "unrecognised MMStatus"),
    })
}

impl crate::mm7::Mm7Inbound for MmscCallbacks {
    async fn delivery_report(&self, report: DeliveryReportReq) -> Result<Status, String> {
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
        Ok(self.unmatched(&report))
    }

    async fn deliver(&self, d: DeliverReq) -> Result<(), String> {
        let mo = InboundMo {
            carrier: self.carrier.clone(),
            channel: "mms",
            from: address(&d.sender),
            to: d.recipients.first().map(address).unwrap_or_default(),
            text: d.text,
        };
        self.gateway
            .handle_inbound(mo)
            .await
            .map_err(|()| "could not store the inbound message; retry".to_owned())
    }
}
