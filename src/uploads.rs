//! Media uploads from tenants: whole files in one frame, or chunked
//! uploads tracked per connection (a connection that closes drops what it
//! left unfinished), stored in the media store within the tenant's quota;
//! and whether a tenant owns a media id (admission's check).

use std::sync::Arc;

use dashmap::DashMap;

use crate::media::MediaError;
use crate::media::store::{MediaStore, Quota, StoreConfig, UploadId};
use crate::model::submit::{MediaChunk, MediaStored};
use crate::settings::Config;

const TARGET: &str = "sluice::uploads";

/// The media store's settings: size limit, quotas (`[mms]` defaults and
/// per-tenant overrides) and limits on uploads in progress.
pub fn store_config(config: &Config) -> StoreConfig {
    let mut c = StoreConfig::new(config.data_dir.join("media"));
    c.max_size = config.mms.max_media_bytes as u64;
    c.max_uploads_per_tenant = config.mms.max_uploads_per_tenant;
    c.max_uploads = config.mms.max_uploads;
    c.quota = Quota {
        bytes: config.mms.media_quota_bytes,
        count: config.mms.media_quota_count,
    };
    c.tenant_quotas = tenant_quotas(config);
    c
}

/// The quotas of tenants that set their own (the `[mms]` default for what
/// they leave out).
pub fn tenant_quotas(config: &Config) -> std::collections::HashMap<String, Quota> {
    config
        .tenants
        .iter()
        .filter(|t| t.media_quota_bytes.is_some() || t.media_quota_count.is_some())
        .map(|t| {
            let q = Quota {
                bytes: t.media_quota_bytes.unwrap_or(config.mms.media_quota_bytes),
                count: t.media_quota_count.unwrap_or(config.mms.media_quota_count),
            };
            (t.name.clone(), q)
        })
        .collect()
}

/// Tenants' media and the chunked uploads in progress.
#[derive(Debug)]
pub struct Uploads {
    media: Arc<MediaStore>,
    /// Chunked uploads in progress: (connection, client upload id) → upload.
    pending: Arc<DashMap<(u64, String), UploadId>>,
}

/// Why an upload (or one of its chunks) was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The media store refused it (size, type, quota...).
    #[error(transparent)]
    Refused(#[from] MediaError),
    /// A chunk of an upload this connection never began (its id, escaped
    /// and capped).
    #[error("unknown upload {0} (begin it at offset 0)")]
    UnknownUpload(String),
    /// The store's task failed; nothing was kept.
    #[error("media store failed; retry")]
    StoreFailed(#[source] tokio::task::JoinError),
}

impl Uploads {
    /// Uploads into `media`.
    pub fn new(media: Arc<MediaStore>) -> Uploads {
        Uploads {
            media,
            pending: Arc::default(),
        }
    }

    /// Stores uploaded media (one frame, or a chunk of an upload).
    ///
    /// # Errors
    /// [`UploadError`]: the upload is refused (size, type, quota, unknown
    /// upload) or could not be stored.
    pub async fn store(
        &self,
        tenant: Arc<str>,
        conn: u64,
        req: MediaChunk,
    ) -> Result<MediaStored, UploadError> {
        let store = self.media.clone();
        let uploads = self.pending.clone();
        let label = tenant.to_string();
        let stored = tokio::task::spawn_blocking(move || {
            let ok = |info: crate::media::store::MediaInfo| MediaStored {
                media_id: info.id.to_hex(),
                size: info.len,
                content_type: info.media_type.content_type().to_owned(),
            };
            let refused = |e: MediaError| {
                metrics::counter!("sluice_media_refused_total",
                    "tenant" => tenant.to_string(), "reason" => e.kind())
                .increment(1);
                UploadError::Refused(e)
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
                    return Err(UploadError::UnknownUpload(
                        crate::model::LogSafe::new(&req.upload_id).to_string(),
                    ));
                }
            };
            if let Err(e) = store.put_chunk(&tenant, upload, req.offset, &req.data) {
                uploads.remove(&key);
                store.abort(&tenant, upload);
                return Err(refused(e));
            }
            if !req.last {
                return Ok(MediaStored::default());
            }
            uploads.remove(&key);
            store.finish(&tenant, upload).map(stored).map_err(refused)
        })
        .await;
        stored.map_err(|e| {
            tracing::error!(target: TARGET, tenant = %label, error = %e, "media store task failed");
            UploadError::StoreFailed(e)
        })?
    }

    /// Drops the chunked uploads connection `conn` left unfinished, so they
    /// stop holding the tenant's uploads in progress.
    pub fn drop_connection(&self, tenant: &str, conn: u64) {
        let mut gone = Vec::new();
        self.pending.retain(|(c, _), u| {
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
    pub fn owns(&self, tenant: &str, id: &str) -> bool {
        self.media.get(tenant, id).is_ok()
    }
}
