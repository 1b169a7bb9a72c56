//! The gateway's MMS side: media uploads from the ingest protocol, the
//! channel decision (MMS, or SMS fallback with a link or text only, or
//! failure), the media source MM7 carriers fetch fitted content from, and
//! the MM7 callbacks (delivery reports, inbound MMS).

use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;

use super::{Gateway, TARGET};
use crate::carrier::mm7::MediaSource;
use crate::config::Config;
use crate::ingest::pb;
use crate::media::store::{MediaStore, Quota, StoreConfig, UploadId};
use crate::mm7::soap::{Address, DeliverReq, DeliveryReportReq, MmStatus};
use crate::model::{ChannelPref, DeliveryState, FallbackPolicy, MAX_TEXT_CHARS, Message, Msisdn};
use crate::receipts::InboundMo;

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

    /// The MMSC for a message with media, or why it cannot go as MMS.
    pub(super) fn mms_route(&self, m: &Message) -> Result<&Arc<str>, String> {
        if m.channel == ChannelPref::Sms {
            return Err("SMS requested".into());
        }
        let Some(mmsc) = self.mmscs.first() else {
            return Err("no MMS carrier configured".into());
        };
        if !self.mms_reachable(m.to) {
            return Err(format!("{} is not reachable by MMS", m.to));
        }
        Ok(mmsc)
    }

    /// Sends `m` as SMS per its fallback policy (or fails it), saying why.
    pub(super) fn fallback(&self, m: Arc<Message>, reason: String) {
        let fail = |why: String| {
            if let Some(f) = self
                .ledger
                .finish(m.id, DeliveryState::Failed, 0, &why.into())
            {
                tokio::spawn(self.receipts.publish(vec![f]));
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
    pub gateway: Arc<Gateway>,
    pub carrier: Arc<str>,
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
    async fn delivery_report(&self, report: DeliveryReportReq) -> Result<(), String> {
        metrics::counter!("sluice_mm7_reports_total", "carrier" => self.carrier.to_string())
            .increment(1);
        let Some((state, reason)) = mm_status_outcome(&report.mm_status) else {
            return Ok(());
        };
        let reason = match &report.status_text {
            Some(t) if !t.is_empty() => format!("{reason}: {t}"),
            _ => reason.to_owned(),
        };
        match self.gateway.receipts.report(
            &self.carrier,
            report.message_id.as_bytes(),
            state,
            0,
            &reason,
        ) {
            Ok(Some(publishing)) => {
                publishing.await;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(_) => {
                let id = crate::model::LogSafe::new(&report.message_id);
                tracing::warn!(target: TARGET, carrier = %self.carrier, message_id = %id,
                    "delivery report for an unknown MessageID");
                Err(format!("unknown MessageID {id}"))
            }
        }
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
