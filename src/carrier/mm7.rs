//! An MMS carrier reached over MM7: builds the SubmitReq of a message (its
//! text and media, the media fitted to the carrier's size limit, the whole
//! MIME body counted), submits it through the pooled HTTP client, and
//! classifies the answer as accepted, temporary or permanent.
//!
//! Retrying, adaptive slow-down and fallback to SMS are the dispatcher's
//! (`schedule::mm7`); delivery reports arrive through the MM7 receiver and
//! are correlated by `receipts`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::config::MmscConfig;
use crate::mm7::client::{ClientConfig, Mm7Client, SubmitOutcome};
use crate::mm7::soap::{Address, Expiry, MediaPart, SubmitReq};
use crate::mm7::status::Class;
use crate::mm7::{Credentials, Version};
use crate::model::{Message, Sender, now_ms};

/// Where the carrier gets a message's media, fitted to a byte budget.
pub trait MediaSource: Send + Sync + 'static {
    /// `(content_type, bytes)` of `id` for `tenant`, no larger than
    /// `max_bytes` (re-encoded or scaled if needed); `Err` with a readable
    /// reason when it is unknown or cannot fit.
    fn fetch(&self, tenant: &str, id: &str, max_bytes: usize) -> Result<(String, Bytes), String>;
}

/// What one submit attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// The MMSC accepted it under this MessageID.
    Accepted(String),
    /// Refused for now (4006, HTTP 503, a timeout...): try again later.
    Temporary(String),
    /// Refused for good (2xxx, 3xxx...), or it cannot be made to fit.
    Permanent {
        /// Readable reason.
        reason: String,
        /// MM7 status code (0 when none).
        code: u32,
    },
}

/// An MMSC and how to talk to it.
#[derive(Debug)]
pub struct Mm7Carrier {
    name: Arc<str>,
    client: Mm7Client,
    version: Version,
    vasp_id: Option<String>,
    vas_id: Option<String>,
    max_message_bytes: usize,
    media: Arc<dyn MediaSource>,
}

impl std::fmt::Debug for dyn MediaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MediaSource")
    }
}

/// MIME headers and boundaries each media part adds, generously.
const PART_OVERHEAD: usize = 256;

impl Mm7Carrier {
    /// A carrier from its configuration; `tls` is the client configuration
    /// for `https://` MMSCs (the `tls.ca_file` roots), `None` for the
    /// system's roots.
    ///
    /// # Errors
    /// An invalid URL or version.
    pub fn new(
        cfg: &MmscConfig,
        media: Arc<dyn MediaSource>,
        tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    ) -> anyhow::Result<Mm7Carrier> {
        let version: Version = cfg
            .version
            .parse()
            .map_err(|e| anyhow::anyhow!("mmsc {:?}: {e}", cfg.name))?;
        let credentials = match (&cfg.username, &cfg.password) {
            (Some(u), Some(p)) => Some(Credentials {
                username: u.clone(),
                password: p.expose().to_owned(),
            }),
            _ => None,
        };
        let client = Mm7Client::new(ClientConfig {
            url: cfg.url.clone(),
            credentials,
            request_timeout: cfg.timeout,
            max_message_size: Some(cfg.max_message_bytes),
            max_connections: cfg.connections.max(1),
            tls,
            ..ClientConfig::default()
        })?;
        Ok(Mm7Carrier {
            name: cfg.name.as_str().into(),
            client,
            version,
            vasp_id: cfg.vasp_id.clone(),
            vas_id: cfg.vas_id.clone(),
            max_message_bytes: cfg.max_message_bytes,
            media,
        })
    }

    /// Carrier name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Builds and submits `m` once.
    pub async fn submit(&self, m: &Message, attempt: u32) -> Attempt {
        let sender = match &m.from {
            Sender::ShortCode(s) => Address::ShortCode(s.to_string()),
            Sender::LongCode(n) => Address::Number(n.to_string()),
            Sender::Alphanumeric(s) => Address::ShortCode(s.to_string()),
        };
        let recipients = [Address::Number(m.to.to_string())];
        let transaction_id = format!("{}-{attempt}", m.id);
        let remaining = Duration::from_millis(m.expires_at_ms.saturating_sub(now_ms()));
        let bare = SubmitReq {
            transaction_id: &transaction_id,
            version: self.version,
            vasp_id: self.vasp_id.as_deref(),
            vas_id: self.vas_id.as_deref(),
            sender: Some(&sender),
            recipients: &recipients,
            expiry: Some(Expiry::Relative(remaining.max(Duration::from_secs(60)))),
            delivery_report: true,
            subject: m.subject.as_deref(),
            text: &m.text,
            ..SubmitReq::default()
        };
        // What the envelope and text cost; the media share the rest.
        let overhead = bare.encode().body.len() + PART_OVERHEAD * m.media.len();
        let Some(budget) = self.max_message_bytes.checked_sub(overhead) else {
            return Attempt::Permanent {
                reason: "message text alone exceeds the carrier's MMS size limit".into(),
                code: 0,
            };
        };
        let per_media = budget / m.media.len().max(1);
        // Fetching may read a file or re-encode an image (up to a second or
        // two for a photo): off the async workers.
        let (source, tenant, ids) = (self.media.clone(), m.tenant.clone(), m.media.clone());
        let fetched = tokio::task::spawn_blocking(move || {
            ids.into_iter()
                .map(|id| source.fetch(&tenant, &id, per_media).map(|x| (id, x)))
                .collect::<Result<Vec<_>, String>>()
        })
        .await;
        let fetched = match fetched {
            Ok(Ok(f)) => f,
            Ok(Err(reason)) => return Attempt::Permanent { reason, code: 0 },
            Err(e) => {
                return Attempt::Permanent {
                    reason: format!("media preparation failed: {e}"),
                    code: 0,
                };
            }
        };
        let parts: Vec<MediaPart<'_>> = fetched
            .iter()
            .map(|(id, (ct, bytes))| MediaPart {
                content_type: ct,
                content_id: id,
                bytes: bytes.clone(),
            })
            .collect();
        let req = SubmitReq {
            media: &parts,
            ..bare
        };
        let encoded = req.encode();
        if encoded.body.len() > self.max_message_bytes {
            return Attempt::Permanent {
                reason: format!(
                    "MMS of {} bytes exceeds the carrier's {} byte limit",
                    encoded.body.len(),
                    self.max_message_bytes
                ),
                code: 0,
            };
        }
        match self.client.submit_encoded(&encoded).await {
            Ok(SubmitOutcome::Accepted { message_id, .. }) => Attempt::Accepted(message_id),
            Ok(out @ SubmitOutcome::Refused { .. }) => {
                let class = out.class();
                let SubmitOutcome::Refused {
                    status,
                    http_status,
                } = out
                else {
                    unreachable!("matched above")
                };
                let reason = format!(
                    "MMSC refused: {} {} (HTTP {http_status})",
                    status.code, status.text
                );
                match class {
                    Class::Temporary => Attempt::Temporary(reason),
                    _ => Attempt::Permanent {
                        reason,
                        code: status.code,
                    },
                }
            }
            Err(e) => match e.class() {
                Class::Permanent => Attempt::Permanent {
                    reason: format!("MMSC: {e}"),
                    code: e.status_code(),
                },
                _ => Attempt::Temporary(format!("MMSC: {e}")),
            },
        }
    }
}
