//! The configuration's typed sections: plain structs with their defaults,
//! filled by serde from the TOML file ([`crate::config`] loads and validates
//! it). A low room: it imports only other low rooms' value types, so every
//! room reads its own settings from here without depending on `config`,
//! which knows the whole system to check it.
//!
//! Durations are humantime strings (`"30s"`, `"500us"`, `"48h"`). Secrets
//! (tokens, bind passwords) are wrapped in [`Secret`], whose `Debug` never
//! shows the value, so a logged config leaks nothing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

mod text;

// Settings of rooms below this one live with them; the file's sections name
// them here.
pub use crate::history::HistoryConfig;
pub use crate::journal::{JournalConfig, Recovery};
pub use crate::model::Secret;
pub use crate::smpp::session::BindMode;
pub use crate::tls::ListenerTls;

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Name of this node (events, logs, message id prefix).
    #[serde(default = "default_node_id")]
    pub node_id: String,
    /// Directory for the journal and media. Default `./sluice-data`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// How log lines are written on stderr: `text` (default) or `json`.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Ingest listener and protocol limits.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// The journal.
    #[serde(default)]
    pub journal: JournalConfig,
    /// HTTP endpoint for metrics, health and the admin API (the internal door).
    #[serde(default)]
    pub http: HttpConfig,
    /// HTTP endpoint for the public landing pages (the public door).
    #[serde(default)]
    pub public: PublicConfig,
    /// The tenants' HTTP/JSON API (the API door).
    #[serde(default)]
    pub api: ApiConfig,
    /// The tenants' gRPC service (the gRPC door).
    #[serde(default)]
    pub grpc: GrpcConfig,
    /// The SMPP server for upstream ESMEs (the SMPP door).
    #[serde(default)]
    pub smpp_server: SmppServerConfig,
    /// Receipt correlation.
    #[serde(default)]
    pub receipts: ReceiptsConfig,
    /// Every message's history (`sluice trace`).
    #[serde(default)]
    pub history: HistoryConfig,
    /// TLS for carrier binds with `tls = true` and MMSCs over `https://`,
    /// and how often listener certificates are checked for changes.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Tenants allowed to connect.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// Carriers (SMSCs) and their binds.
    #[serde(default)]
    pub carriers: Vec<CarrierConfig>,
    /// Route table: first matching prefix wins; without routes, every
    /// recipient goes to the first carrier.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Per-sender throughput limits and daily caps.
    #[serde(default)]
    pub senders: SendersConfig,
    /// MMS carriers (MMSCs over MM7).
    #[serde(default)]
    pub mmsc: Vec<MmscConfig>,
    /// MMS routing, media and landing pages.
    #[serde(default)]
    pub mms: MmsConfig,
    /// Cluster mode: several nodes sharing opt-outs, client_refs and
    /// receipts through Redis.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// Tracked links (tenants' `track_links`).
    #[serde(default)]
    pub links: LinksConfig,
}

/// Tracked links and campaign figures: how long a short link answers, and
/// how far back an opt-out is attributed to a campaign.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksConfig {
    /// A short link redirects for this long after its message was
    /// accepted, then answers 410 (and is deleted with its segment); 0
    /// keeps links forever. Default 30 days.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// A keyword opt-out is attributed to the campaign of the last message
    /// its sender program delivered to the number within this long.
    /// Default 7 days.
    #[serde(with = "humantime_serde")]
    pub attribution_window: Duration,
}

impl Default for LinksConfig {
    fn default() -> Self {
        LinksConfig {
            retention: Duration::from_secs(30 * 86_400),
            attribution_window: Duration::from_secs(7 * 86_400),
        }
    }
}

/// MMS routing, media storage and SMS-fallback landing pages.
///
/// # Defaults
/// MMS to `+1` numbers only, every MMSC for every recipient in
/// configuration order, media up to 5 MiB, landing pages under
/// `http://127.0.0.1:9702` (the default `[public] listen`); per tenant at
/// most 1 GiB and 10,000 media stored and 4 uploads in progress, 32 uploads
/// in progress in all; fallback 10 minutes before the validity ends when no
/// MMSC can take a message.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MmsConfig {
    /// E.164 prefixes reachable by MMS (US and Canada by default).
    pub reachable_prefixes: Vec<String>,
    /// MMS route table: the first route whose prefix matches names the
    /// MMSCs (`[[mmsc]]` names) in order of preference; a recipient no
    /// route matches is not reachable by MMS. Empty: every MMSC in
    /// configuration order for everyone.
    pub routes: Vec<RouteConfig>,
    /// Largest media upload, bytes.
    pub max_media_bytes: usize,
    /// Public base URL of the public door (`[public] listen`, or the
    /// reverse proxy in front of it), for fallback links (`<public_url>/p/...`).
    pub public_url: String,
    /// Bytes of media a tenant may have stored (0 = no limit); a tenant's
    /// `media_quota_bytes` overrides it.
    pub media_quota_bytes: u64,
    /// Media a tenant may have stored (0 = no limit); a tenant's
    /// `media_quota_count` overrides it.
    pub media_quota_count: u64,
    /// Uploads a tenant may have in progress at once (being stored, or
    /// chunked and unfinished); past it PutMedia is refused.
    pub max_uploads_per_tenant: usize,
    /// Uploads in progress over all tenants.
    pub max_uploads: usize,
    /// An MMS waiting for an MMSC that is paused (credentials refused) or
    /// unreachable goes to its fallback (SMS, per its policy) once its
    /// validity ends within this long; until then it waits.
    #[serde(with = "humantime_serde")]
    pub fallback_before_expiry: Duration,
    /// A landing page no fallback has linked to for this long is removed
    /// (its link then answers 404); 0 keeps them forever.
    #[serde(with = "humantime_serde")]
    pub landing_retention: Duration,
}

impl Default for MmsConfig {
    fn default() -> Self {
        MmsConfig {
            reachable_prefixes: vec!["+1".into()],
            routes: Vec::new(),
            max_media_bytes: 5 << 20,
            public_url: "http://127.0.0.1:9702".into(),
            media_quota_bytes: 1 << 30,
            media_quota_count: 10_000,
            max_uploads_per_tenant: 4,
            max_uploads: 32,
            fallback_before_expiry: Duration::from_secs(600),
            landing_retention: Duration::from_secs(30 * 86_400),
        }
    }
}

/// An MMSC reached over MM7 (3GPP TS 23.140, SOAP over HTTP).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmscConfig {
    /// Name used in events and metrics.
    pub name: String,
    /// The MMSC's MM7 URL.
    pub url: String,
    /// Basic-auth user towards the MMSC.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic-auth password towards the MMSC (never logged).
    #[serde(default)]
    pub password: Option<Secret>,
    /// VASPID.
    #[serde(default)]
    pub vasp_id: Option<String>,
    /// VASID.
    #[serde(default)]
    pub vas_id: Option<String>,
    /// Schema version the MMSC speaks (`REL-5-MM7-1-2` … `REL-6-MM7-1-4`).
    #[serde(default, deserialize_with = "text::one")]
    pub version: crate::mm7::Version,
    /// Largest MM7 request, whole MIME body, bytes (media is fitted to it).
    #[serde(default = "default_mms_size")]
    pub max_message_bytes: usize,
    /// How media parts are written: `binary` (default) or `base64`, for
    /// MMSCs and proxies that mangle binary bodies (media is then fitted
    /// to what its base64 form may take).
    #[serde(default)]
    pub media_encoding: MediaTransferEncoding,
    /// Service fields every SubmitReq to this MMSC carries (`ServiceCode`,
    /// `MessageClass`, `Priority`, `ReadReply`, `ChargedParty`,
    /// `DistributionIndicator`); each left out when unset.
    #[serde(default)]
    pub service: MmscServiceFields,
    /// How the content is laid out: `smil` (default: a SMIL presentation,
    /// a slide per media item, parts named by Content-Location) or `none`
    /// (a plain `multipart/mixed`).
    #[serde(default)]
    pub presentation: PresentationSetting,
    /// Most recipients in one SubmitReq (default 1). Above 1, queued MMS of
    /// the same content (tenant, sender, subject, text, media, service
    /// fields, validity within a minute) to different numbers go in one
    /// request; each recipient keeps its own result and delivery report.
    #[serde(default = "one_recipient")]
    pub max_recipients: usize,
    /// Submits per second; 0 = unlimited.
    #[serde(default)]
    pub rate: f64,
    /// Concurrent HTTP requests.
    #[serde(default = "default_mm7_connections")]
    pub connections: usize,
    /// Request timeout.
    #[serde(default = "default_response_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// A SubmitReq whose answer never came (timeout, connection lost after
    /// sending) may have been accepted: `unknown` (default) ends the
    /// message `unknown`, never sending it twice; `resend` sends it again.
    #[serde(default = "unanswered_unknown")]
    pub unanswered: Unanswered,
    /// Paused (credentials refused) or unreachable this long: its queued
    /// MMS move to the next MMSC of their route. Default 30 s.
    #[serde(default = "default_failover_after", with = "humantime_serde")]
    pub failover_after: Duration,
    /// First wait before a message the MMSC refused for now (4006, 3000,
    /// HTTP 503) is submitted again.
    #[serde(default = "default_retry_min", with = "humantime_serde")]
    pub retry_min: Duration,
    /// Longest wait between such submits (the wait doubles up to it).
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// When a message the MMSC refuses for now takes its fallback (SMS
    /// with a link, per its policy) instead of another try: after this many
    /// refused submits (a number), or at a refusal once it has waited this
    /// long since it was accepted (a duration, `"10m"`); 0 (default): it
    /// is retried until its validity ends.
    #[serde(default)]
    pub fallback_after: FallbackAfter,
    /// First wait before the credentials are tried again after a 401/403.
    #[serde(default = "default_auth_retry_min", with = "humantime_serde")]
    pub auth_retry_min: Duration,
    /// Longest wait between such tries (the wait doubles up to it).
    #[serde(default = "default_auth_retry_max", with = "humantime_serde")]
    pub auth_retry_max: Duration,
    /// Where the MMSC posts delivery reports and inbound MMS (`host:port`).
    pub callback_listen: Option<SocketAddr>,
    /// Basic-auth user the MMSC must use on callbacks.
    #[serde(default)]
    pub callback_username: Option<String>,
    /// Basic-auth password the MMSC must use on callbacks (never logged).
    #[serde(default)]
    pub callback_password: Option<Secret>,
    /// Source networks allowed to call back (`10.0.0.0/8`); empty = any.
    #[serde(default, deserialize_with = "text::list")]
    pub callback_allow: Vec<crate::mm7::IpNet>,
    /// TLS certificate chain (PEM) of the callback listener; with
    /// `callback_tls_key_file` the listener speaks only TLS.
    #[serde(default)]
    pub callback_tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of `callback_tls_cert_file`.
    #[serde(default)]
    pub callback_tls_key_file: Option<PathBuf>,
    /// CA bundle (PEM): the MMSC must present a client certificate it signed
    /// (mutual TLS).
    #[serde(default)]
    pub callback_tls_client_ca_file: Option<PathBuf>,
    /// Let the callback listener start on a non-loopback address with no
    /// credentials, no allow-list and no client certificates.
    #[serde(default)]
    pub callback_allow_unauthenticated: bool,
    /// Most open callback connections; past it new ones are closed at once.
    #[serde(default = "default_callback_connections")]
    pub callback_max_connections: usize,
    /// Largest callback body, bytes (a DeliverReq carries the inbound MMS).
    #[serde(default = "default_callback_body")]
    pub callback_max_body_bytes: usize,
    /// Deadline for a callback's headers (also closes idle keep-alive
    /// connections).
    #[serde(default = "default_header_timeout", with = "humantime_serde")]
    pub callback_header_timeout: Duration,
    /// Deadline for reading a callback's whole body.
    #[serde(default = "default_body_timeout", with = "humantime_serde")]
    pub callback_body_timeout: Duration,
    /// A callback connection with no byte moving either way this long is closed.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub callback_idle_timeout: Duration,
}

impl MmscConfig {
    /// An MMSC called `name` at `url` with every other key at its default
    /// (no credentials, no callback listener).
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> MmscConfig {
        MmscConfig {
            name: name.into(),
            url: url.into(),
            username: None,
            password: None,
            vasp_id: None,
            vas_id: None,
            version: crate::mm7::Version::default(),
            max_message_bytes: default_mms_size(),
            media_encoding: MediaTransferEncoding::Binary,
            presentation: PresentationSetting::Smil,
            max_recipients: one_recipient(),
            service: MmscServiceFields::default(),
            rate: 0.0,
            connections: default_mm7_connections(),
            timeout: default_response_timeout(),
            unanswered: unanswered_unknown(),
            failover_after: default_failover_after(),
            retry_min: default_retry_min(),
            retry_max: default_retry_max(),
            fallback_after: FallbackAfter::Off,
            auth_retry_min: default_auth_retry_min(),
            auth_retry_max: default_auth_retry_max(),
            callback_listen: None,
            callback_username: None,
            callback_password: None,
            callback_allow: Vec::new(),
            callback_tls_cert_file: None,
            callback_tls_key_file: None,
            callback_tls_client_ca_file: None,
            callback_allow_unauthenticated: false,
            callback_max_connections: default_callback_connections(),
            callback_max_body_bytes: default_callback_body(),
            callback_header_timeout: default_header_timeout(),
            callback_body_timeout: default_body_timeout(),
            callback_idle_timeout: default_idle_timeout(),
        }
    }

    /// TLS of the callback listener, when configured.
    pub fn callback_tls(&self) -> Option<ListenerTls> {
        ListenerTls::from_parts(
            self.callback_tls_cert_file.as_deref(),
            self.callback_tls_key_file.as_deref(),
            self.callback_tls_client_ca_file.as_deref(),
        )
    }
}

fn default_callback_connections() -> usize {
    32
}
fn default_callback_body() -> usize {
    4 << 20
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}

fn unanswered_unknown() -> Unanswered {
    Unanswered::Unknown
}
fn default_retry_min() -> Duration {
    Duration::from_millis(250)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(30)
}
/// Most recipients `mmsc.max_recipients` may allow in one SubmitReq.
pub const MAX_MM7_RECIPIENTS: usize = 100;

fn one_recipient() -> usize {
    1
}

fn default_auth_retry_min() -> Duration {
    Duration::from_secs(30)
}
fn default_auth_retry_max() -> Duration {
    Duration::from_secs(600)
}
fn default_mms_size() -> usize {
    600 * 1024
}
fn default_mm7_connections() -> usize {
    16
}

/// Per-sender limits: defaults by sender class, and overrides.
///
/// Carriers cap each sender number (a US 10DLC long code about 1 msg/s
/// unless vetted higher, toll-free 3-20, short codes 100-1,000) and some cap
/// brands per day. All rates default to 0 (unlimited): set them to what your
/// carriers grant.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SendersConfig {
    /// Messages per second for each long code (10DLC).
    pub long_code_rate: f64,
    /// Messages per second for each toll-free number (NANP 8XX).
    pub toll_free_rate: f64,
    /// Messages per second for each short code.
    pub short_code_rate: f64,
    /// Messages per second for each alphanumeric sender id.
    pub alphanumeric_rate: f64,
    /// Messages per UTC day for each sender; 0 = no cap.
    pub daily_cap: u64,
    /// Limits for particular senders.
    pub overrides: Vec<SenderOverride>,
    /// Daily caps shared by a brand's senders.
    pub brands: Vec<BrandConfig>,
}

/// Limits for one sender.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SenderOverride {
    /// The sender as messages give it (`12345`, `+14155550100`, `ACME`).
    pub sender: String,
    /// Messages per second (replaces the class default).
    pub rate: Option<f64>,
    /// Messages per UTC day (replaces the default cap).
    pub daily_cap: Option<u64>,
    /// Brand whose daily cap this sender shares.
    pub brand: Option<String>,
}

/// A brand's daily cap over all its senders.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BrandConfig {
    /// Brand name (referenced by sender overrides).
    pub name: String,
    /// Messages per UTC day over the brand's senders.
    pub daily_cap: u64,
}

/// How log lines are written on stderr (`log_format`); the filter is
/// `RUST_LOG` either way.
///
/// # Defaults
/// `text`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human-readable line per event (time, level, target, message,
    /// fields), coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, the
    /// event's fields (`message` among them) at the top level, and `span`
    /// when inside one; for log pipelines (Loki, Elasticsearch, Cloud
    /// Logging).
    Json,
}

fn default_node_id() -> String {
    "sluice-1".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("sluice-data")
}

/// Ingest listener settings.
///
/// # Defaults
/// listen `127.0.0.1:7700`, max frame 4 MiB, max batch 1,000 messages,
/// initial credits 50,000, dedupe window 24 h, event window 20,000; Hello
/// within 2 s; 1,024 connections, 64 per address, 128 waiting for Hello;
/// failed Hellos answered after 200 ms doubling to 5 s, at most 10 per
/// address per minute.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest frame accepted after Hello, bytes.
    pub max_frame_bytes: u32,
    /// Most messages per SubmitBatch.
    pub max_batch_messages: u32,
    /// Credits granted at Hello (messages a client may have unacknowledged).
    pub initial_credits: u32,
    /// How long a `(tenant, client_ref)` is remembered for deduplication.
    #[serde(with = "humantime_serde")]
    pub dedupe_window: Duration,
    /// Most `(tenant, client_ref)` keys remembered (~33 bytes each); past it
    /// the oldest are forgotten before the window ends.
    pub dedupe_max_keys: usize,
    /// Most events in flight (sent, not acknowledged) per subscribed connection.
    pub event_window: u32,
    /// How long a new connection has to say Hello (the pre-auth deadline).
    #[serde(with = "humantime_serde")]
    pub hello_timeout: Duration,
    /// Most connections in all.
    pub max_connections: usize,
    /// Most connections from one address (IPv4) or /64 (IPv6).
    pub max_connections_per_ip: usize,
    /// Most connections waiting for Hello; past it the oldest is closed.
    pub max_unauthenticated: usize,
    /// Delay before answering an address's first failed Hello of the last
    /// minute; it doubles with each further failure.
    #[serde(with = "humantime_serde")]
    pub auth_failure_delay: Duration,
    /// Longest delay before answering a failed Hello.
    #[serde(with = "humantime_serde")]
    pub auth_failure_delay_max: Duration,
    /// Failed Hellos from one address per minute; past them its Hellos are
    /// refused unchecked until the oldest failure is a minute old.
    pub auth_failures_per_minute: u32,
    /// TLS certificate chain (PEM); with `tls_key_file` the listener speaks
    /// only TLS.
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// CA bundle (PEM): clients must present a certificate it signed
    /// (mutual TLS); the certificate's name (CN, else first DNS name) must
    /// then be the tenant of the connection's Hello.
    pub tls_client_ca_file: Option<PathBuf>,
}

impl IngestConfig {
    /// TLS of the ingest listener, when configured.
    pub fn tls(&self) -> Option<ListenerTls> {
        ListenerTls::from_parts(
            self.tls_cert_file.as_deref(),
            self.tls_key_file.as_deref(),
            self.tls_client_ca_file.as_deref(),
        )
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            listen: "127.0.0.1:7700".parse().expect("valid literal"),
            max_frame_bytes: 4 << 20,
            max_batch_messages: 1000,
            initial_credits: 50_000,
            dedupe_window: Duration::from_secs(24 * 3600),
            dedupe_max_keys: 10_000_000,
            event_window: 20_000,
            hello_timeout: Duration::from_secs(2),
            max_connections: 1024,
            max_connections_per_ip: 64,
            max_unauthenticated: 128,
            auth_failure_delay: Duration::from_millis(200),
            auth_failure_delay_max: Duration::from_secs(5),
            auth_failures_per_minute: 10,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
        }
    }
}

/// The internal HTTP door: `/metrics`, `/healthz`, `/readyz` and the admin
/// API.
///
/// # Defaults
/// listen `127.0.0.1:9700`, no admin token, plaintext, 256 connections,
/// headers within 10 s, bodies within 30 s, idle connections closed after
/// 60 s, admin JSON bodies up to 64 KiB, opt-out imports up to 256 MiB
/// within 10 min.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on; `None` disables the endpoint.
    pub listen: Option<SocketAddr>,
    /// The operator's bearer token for `/admin/...` (every tenant, every
    /// route). Tenants' own admin tokens are `admin_token` in `[[tenants]]`;
    /// without any token the admin API is off.
    pub admin_token: Option<Secret>,
    /// Let the door start on a non-loopback address with no admin token and
    /// no client certificates (`/metrics` names tenants).
    pub allow_unauthenticated: bool,
    /// TLS certificate chain (PEM); with `tls_key_file` the door speaks only TLS.
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// CA bundle (PEM): clients must present a certificate it signed.
    pub tls_client_ca_file: Option<PathBuf>,
    /// Most open connections; past it new ones are closed at once.
    pub max_connections: usize,
    /// Deadline for a request's headers, from the connection's start or the
    /// end of the previous answer (so it closes idle keep-alive connections).
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Deadline for receiving a request's body and answering it.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// A connection with no byte moving either way this long (and no request
    /// being answered) is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Largest admin request body (JSON), bytes.
    pub max_body_bytes: usize,
    /// Largest opt-out import (CSV), bytes.
    pub max_import_bytes: usize,
    /// Deadline for receiving and applying an opt-out import.
    #[serde(with = "humantime_serde")]
    pub import_timeout: Duration,
    /// Which SMS carriers must have a bind up for `/readyz` to say ready.
    pub ready_carriers: ReadyCarriers,
}

impl HttpConfig {
    /// TLS of the door, when configured.
    pub fn tls(&self) -> Option<ListenerTls> {
        ListenerTls::from_parts(
            self.tls_cert_file.as_deref(),
            self.tls_key_file.as_deref(),
            self.tls_client_ca_file.as_deref(),
        )
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: Some("127.0.0.1:9700".parse().expect("valid literal")),
            admin_token: None,
            allow_unauthenticated: false,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            max_connections: 256,
            header_timeout: default_header_timeout(),
            body_timeout: default_body_timeout(),
            idle_timeout: default_idle_timeout(),
            max_body_bytes: 64 << 10,
            max_import_bytes: 256 << 20,
            import_timeout: Duration::from_secs(600),
            ready_carriers: ReadyCarriers::Every,
        }
    }
}

/// Which SMS carriers must have a bind up for the node to be ready
/// (`/readyz`, see `readiness`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReadyCarriers {
    /// Every carrier has at least one bind up (default).
    #[default]
    Every,
    /// At least one carrier has a bind up.
    Any,
}

/// The public HTTP door: landing pages of SMS-fallback links (`/m/...`),
/// and nothing else.
///
/// # Defaults
/// listen `127.0.0.1:9702`, plaintext, 1,024 connections, headers within
/// 10 s, idle connections closed after 60 s.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublicConfig {
    /// Address to listen on; `None` disables the landing pages.
    pub listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM); with `tls_key_file` the door speaks only TLS.
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// CA bundle (PEM): clients must present a certificate it signed (for a
    /// reverse proxy in front of the door).
    pub tls_client_ca_file: Option<PathBuf>,
    /// Most open connections; past it new ones are closed at once.
    pub max_connections: usize,
    /// Deadline for a request's headers (see [`HttpConfig::header_timeout`]).
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Deadline for answering a request.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// A connection with no byte moving either way this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl PublicConfig {
    /// TLS of the door, when configured.
    pub fn tls(&self) -> Option<ListenerTls> {
        ListenerTls::from_parts(
            self.tls_cert_file.as_deref(),
            self.tls_key_file.as_deref(),
            self.tls_client_ca_file.as_deref(),
        )
    }
}

impl Default for PublicConfig {
    fn default() -> Self {
        PublicConfig {
            listen: Some("127.0.0.1:9702".parse().expect("valid literal")),
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            max_connections: 1024,
            header_timeout: default_header_timeout(),
            body_timeout: default_body_timeout(),
            idle_timeout: default_idle_timeout(),
        }
    }
}

/// The tenants' HTTP/JSON API: submit messages, look one up, upload
/// media (`crate::api`), with a tenant's token as bearer.
///
/// # Defaults
/// off (no `listen`), plaintext, 1,024 connections, headers within 10 s,
/// bodies within 30 s, idle connections closed after 60 s; JSON bodies up
/// to 4 MiB, media up to 16 MiB.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on; `None` (the default) disables the API.
    pub listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM); with `tls_key_file` the door speaks only TLS.
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// CA bundle (PEM): clients must present a certificate it signed.
    pub tls_client_ca_file: Option<PathBuf>,
    /// Most open connections; past it new ones are closed at once.
    pub max_connections: usize,
    /// Most open connections from one address (an IPv4 address or an IPv6
    /// /64); past it new ones from there are closed at once; 0 = no such cap.
    pub max_connections_per_ip: usize,
    /// Deadline for a request's headers (see [`HttpConfig::header_timeout`]).
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Deadline for receiving a request's body and answering it.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// A connection with no byte moving either way this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Largest JSON body (a batch of messages), bytes.
    pub max_body_bytes: usize,
    /// Largest media upload, bytes (the media store's own limits apply too).
    pub max_media_bytes: usize,
}

impl ApiConfig {
    /// TLS of the door, when configured.
    pub fn tls(&self) -> Option<ListenerTls> {
        ListenerTls::from_parts(
            self.tls_cert_file.as_deref(),
            self.tls_key_file.as_deref(),
            self.tls_client_ca_file.as_deref(),
        )
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            max_connections: 1024,
            max_connections_per_ip: 64,
            header_timeout: default_header_timeout(),
            body_timeout: default_body_timeout(),
            idle_timeout: default_idle_timeout(),
            max_body_bytes: 4 << 20,
            max_media_bytes: 16 << 20,
        }
    }
}

/// The tenants' gRPC service `sluice.v1.Gateway`
/// (`proto/sluice/v1/gateway.proto`, `crate::grpc`), with standard health
/// checking and server reflection, a tenant's token as bearer.
///
/// # Defaults
/// off (no `listen`), plaintext, 1,024 connections, TLS handshakes within
/// 10 s, messages up to 4 MiB either way, 128 concurrent calls per
/// connection, an Events call's Subscribe within 10 s, connections without a
/// call closed after 5 minutes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// Address to listen on; `None` (the default) disables the gRPC door.
    pub listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM); with `tls_key_file` the door speaks only
    /// TLS (ALPN `h2`).
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// CA bundle (PEM): clients must present a certificate it signed, whose
    /// name (CN, else first DNS name) is the tenant of the call's token.
    pub tls_client_ca_file: Option<PathBuf>,
    /// Most open connections; past it new ones are closed at once.
    pub max_connections: usize,
    /// Most open connections from one address (an IPv4 address or an IPv6
    /// /64); past it new ones from there are closed at once; 0 = no such cap.
    pub max_connections_per_ip: usize,
    /// Deadline for a connection's TLS handshake.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Largest message either way (a batch, a media chunk, an event batch),
    /// bytes; a larger request is refused `RESOURCE_EXHAUSTED`.
    pub max_message_bytes: usize,
    /// Most calls in progress at once on one connection (HTTP/2
    /// `MAX_CONCURRENT_STREAMS`).
    pub max_concurrent_streams: u32,
    /// Deadline for an Events call's first message (its Subscribe).
    #[serde(with = "humantime_serde")]
    pub subscribe_timeout: Duration,
    /// A connection without a call in progress this long is closed (a
    /// client that connects and never calls must not hold a slot).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl GrpcConfig {
    /// TLS of the door, when configured.
    pub fn tls(&self) -> Option<ListenerTls> {
        ListenerTls::from_parts(
            self.tls_cert_file.as_deref(),
            self.tls_key_file.as_deref(),
            self.tls_client_ca_file.as_deref(),
        )
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            listen: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            max_connections: 1024,
            max_connections_per_ip: 64,
            handshake_timeout: default_header_timeout(),
            max_message_bytes: 4 << 20,
            max_concurrent_streams: 128,
            subscribe_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// The SMPP server for upstream ESMEs (`crate::smpp_server`): binds
/// authenticated by each tenant's `smpp_system_id` and `smpp_password`.
///
/// # Defaults
/// off (no `listen`), plaintext, 256 connections, TLS handshakes and the
/// first bind within 10 s, `enquire_link` after 30 s of silence, answers
/// within 30 s, 10 `deliver_sm` in flight per bind, 1,000 submits
/// unanswered per bind, parts of a long text wait 60 s for the rest, PDUs
/// up to 64 KiB, `system_id` "sluice".
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmppServerConfig {
    /// Address to listen on; `None` (the default) disables the SMPP door.
    pub listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM); with `tls_key_file` the door speaks only
    /// TLS.
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// CA bundle (PEM): clients must present a certificate it signed, whose
    /// name (CN, else first DNS name) is the tenant they bind as.
    pub tls_client_ca_file: Option<PathBuf>,
    /// Most open connections; past it new ones are closed at once.
    pub max_connections: usize,
    /// Most open connections from one address (an IPv4 address or an IPv6
    /// /64); past it new ones from there are closed at once; 0 = no such cap.
    pub max_connections_per_ip: usize,
    /// Deadline for a connection's TLS handshake.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Deadline for a connection's first bind.
    #[serde(with = "humantime_serde")]
    pub bind_timeout: Duration,
    /// Silence after which sluice sends `enquire_link`.
    #[serde(with = "humantime_serde")]
    pub enquire_link_interval: Duration,
    /// Deadline for an upstream's answer to a `deliver_sm` or `enquire_link`.
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,
    /// Most `deliver_sm` (receipts, inbound messages) unanswered per bind.
    pub window: usize,
    /// Most submits unanswered per bind; past it submits are answered
    /// `ESME_RTHROTTLED`.
    pub max_pending_submits: usize,
    /// How long the parts of a concatenated text wait for the rest before
    /// they are refused.
    #[serde(with = "humantime_serde")]
    pub reassembly_timeout: Duration,
    /// Largest PDU, octets.
    pub max_pdu_bytes: usize,
    /// The `system_id` bind responses carry.
    pub system_id: String,
}

impl SmppServerConfig {
    /// TLS of the door, when configured.
    pub fn tls(&self) -> Option<ListenerTls> {
        ListenerTls::from_parts(
            self.tls_cert_file.as_deref(),
            self.tls_key_file.as_deref(),
            self.tls_client_ca_file.as_deref(),
        )
    }
}

impl Default for SmppServerConfig {
    fn default() -> Self {
        SmppServerConfig {
            listen: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            max_connections: 256,
            max_connections_per_ip: 64,
            handshake_timeout: Duration::from_secs(10),
            bind_timeout: Duration::from_secs(10),
            enquire_link_interval: Duration::from_secs(30),
            response_timeout: Duration::from_secs(30),
            window: 10,
            max_pending_submits: 1000,
            reassembly_timeout: Duration::from_secs(60),
            max_pdu_bytes: 64 << 10,
            system_id: "sluice".into(),
        }
    }
}

/// Receipt correlation settings.
///
/// # Defaults
/// early receipts kept 60 s, at most 100,000 of them; receipt grace 60 s;
/// multi-part grace 30 s.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiptsConfig {
    /// How long a receipt that names an unknown carrier id is kept, waiting for
    /// the submit_sm_resp that introduces that id.
    #[serde(with = "humantime_serde")]
    pub early_receipt_ttl: Duration,
    /// Most early receipts kept.
    pub max_early_receipts: usize,
    /// After validity ends, how long a receipt may still come before the
    /// message is reported `expired`.
    #[serde(with = "humantime_serde")]
    pub receipt_grace: Duration,
    /// When one part of a multi-part message has its receipt, how long to
    /// wait for the other parts' before settling on the reported outcome
    /// (some SMSCs report only the first or the last part).
    #[serde(with = "humantime_serde")]
    pub multipart_grace: Duration,
}

impl Default for ReceiptsConfig {
    fn default() -> Self {
        ReceiptsConfig {
            early_receipt_ttl: Duration::from_secs(60),
            max_early_receipts: 100_000,
            receipt_grace: Duration::from_secs(60),
            multipart_grace: Duration::from_secs(30),
        }
    }
}

/// TLS client settings for carrier connections (SMPP binds, MMSCs), and
/// the certificate reload period of every listener.
///
/// # Defaults
/// The system's roots; listener certificates checked every 5 s.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file of CA certificates to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// How often listeners look for changed certificate, key and client CA
    /// files (SIGHUP reloads at once).
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca_file: None,
            reload_interval: Duration::from_secs(5),
        }
    }
}

/// `mmsc.fallback_after`: a number of refused submits, or a time since
/// acceptance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FallbackAfter {
    /// Retried until validity ends.
    #[default]
    Off,
    /// After this many submits refused for now.
    Tries(u32),
    /// At a refusal, once the message was accepted this long ago.
    Waited(Duration),
}

impl FallbackAfter {
    /// Whether a message refused for now on its `tries`-th submit,
    /// accepted `waited` ago, takes its fallback.
    pub fn due(self, tries: u32, waited: Duration) -> bool {
        match self {
            FallbackAfter::Off => false,
            FallbackAfter::Tries(n) => tries >= n,
            FallbackAfter::Waited(d) => waited >= d,
        }
    }
}

impl<'de> Deserialize<'de> for FallbackAfter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Tries(u32),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Tries(0) => Ok(FallbackAfter::Off),
            Raw::Tries(n) => Ok(FallbackAfter::Tries(n)),
            Raw::Text(t) => match humantime::parse_duration(t.trim()) {
                Ok(d) if d.is_zero() => Ok(FallbackAfter::Off),
                Ok(d) => Ok(FallbackAfter::Waited(d)),
                Err(e) => Err(serde::de::Error::custom(format!(
                    "fallback_after {t:?} is neither a number of tries nor a duration: {e}"
                ))),
            },
        }
    }
}

/// An MMSC's SubmitReq service fields (`[mmsc.service]`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MmscServiceFields {
    /// `ServiceCode` (billing / service identification).
    #[serde(default)]
    pub service_code: Option<String>,
    /// `MessageClass`: `personal`, `informational`, `advertisement`, `auto`.
    #[serde(default)]
    pub message_class: Option<MmsMessageClass>,
    /// `Priority`: `normal`, `high`, `low`.
    #[serde(default)]
    pub priority: Option<MmsPriority>,
    /// `ReadReply`: ask for read reports.
    #[serde(default)]
    pub read_reply: Option<bool>,
    /// `ChargedParty`: `sender`, `recipient`, `both`, `neither`.
    #[serde(default)]
    pub charged_party: Option<MmsChargedParty>,
    /// `DistributionIndicator`: whether recipients may forward the MMS.
    #[serde(default)]
    pub distribution_indicator: Option<bool>,
    /// `ReplyCharging` `replyChargingSize`: the VASP pays for each
    /// recipient's reply up to this many bytes (above 0). With
    /// `reply_deadline`, either one asks for reply charging.
    #[serde(default)]
    pub reply_charging_size: Option<u64>,
    /// `ReplyCharging` `replyDeadline`: a reply is paid for this long after
    /// the submit (`"3d"`).
    #[serde(default, with = "humantime_serde")]
    pub reply_deadline: Option<Duration>,
}

impl MmscServiceFields {
    /// The `ReplyCharging` these fields ask for, if any.
    pub fn reply_charging(&self) -> Option<crate::mm7::ReplyCharging> {
        (self.reply_charging_size.is_some() || self.reply_deadline.is_some()).then(|| {
            crate::mm7::ReplyCharging {
                size: self.reply_charging_size,
                deadline: self.reply_deadline.map(crate::mm7::Expiry::Relative),
            }
        })
    }
}

pub use crate::model::{MmsMessageClass, MmsPriority};

/// `ChargedParty` of a SubmitReq.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum MmsChargedParty {
    Sender,
    Recipient,
    Both,
    Neither,
}

impl From<MmsMessageClass> for crate::mm7::MessageClass {
    fn from(c: MmsMessageClass) -> Self {
        match c {
            MmsMessageClass::Personal => crate::mm7::MessageClass::Personal,
            MmsMessageClass::Informational => crate::mm7::MessageClass::Informational,
            MmsMessageClass::Advertisement => crate::mm7::MessageClass::Advertisement,
            MmsMessageClass::Auto => crate::mm7::MessageClass::Auto,
        }
    }
}

impl From<MmsPriority> for crate::mm7::Priority {
    fn from(p: MmsPriority) -> Self {
        match p {
            MmsPriority::Normal => crate::mm7::Priority::Normal,
            MmsPriority::High => crate::mm7::Priority::High,
            MmsPriority::Low => crate::mm7::Priority::Low,
        }
    }
}

impl From<MmsChargedParty> for crate::mm7::ChargedParty {
    fn from(p: MmsChargedParty) -> Self {
        match p {
            MmsChargedParty::Sender => crate::mm7::ChargedParty::Sender,
            MmsChargedParty::Recipient => crate::mm7::ChargedParty::Recipient,
            MmsChargedParty::Both => crate::mm7::ChargedParty::Both,
            MmsChargedParty::Neither => crate::mm7::ChargedParty::Neither,
        }
    }
}

/// How an MMSC wants the content laid out.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PresentationSetting {
    /// A SMIL presentation part.
    #[default]
    Smil,
    /// None: `multipart/mixed`.
    None,
}

impl From<PresentationSetting> for crate::mm7::Presentation {
    fn from(p: PresentationSetting) -> Self {
        match p {
            PresentationSetting::Smil => crate::mm7::Presentation::Smil,
            PresentationSetting::None => crate::mm7::Presentation::None,
        }
    }
}

/// How an MMSC wants media parts written.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum MediaTransferEncoding {
    /// As they are.
    #[default]
    Binary,
    /// Base64 in 76-character lines.
    Base64,
}

impl From<MediaTransferEncoding> for crate::mm7::MediaEncoding {
    fn from(e: MediaTransferEncoding) -> Self {
        match e {
            MediaTransferEncoding::Binary => crate::mm7::MediaEncoding::Binary,
            MediaTransferEncoding::Base64 => crate::mm7::MediaEncoding::Base64,
        }
    }
}

/// One tenant (an upstream campaign system).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Name used in Hello.
    pub name: String,
    /// Secret token used in Hello.
    pub token: Secret,
    /// Bearer token of this tenant's admin API access: its own messages,
    /// opt-outs (`tenant:<name>`, `program:<name>:*`) and media only.
    #[serde(default)]
    pub admin_token: Option<Secret>,
    /// Sender addresses (short codes, numbers, alphanumeric ids) this tenant
    /// owns: the only ones it may send from, and inbound messages to them go
    /// to this tenant. A sender belongs to one tenant.
    #[serde(default)]
    pub senders: Vec<String>,
    /// Alphanumeric sender ids the tenant may send from by prefix
    /// (`"ACME*"`), besides `senders`.
    #[serde(default)]
    pub sender_patterns: Vec<String>,
    /// Validity when a message gives none. Default 48 h.
    #[serde(default = "default_validity", with = "humantime_serde")]
    pub default_validity: Duration,
    /// Share of dispatch turns relative to other tenants (weighted fair
    /// queuing). Default 1.
    #[serde(default = "one")]
    pub weight: u32,
    /// Most messages (segments where the carrier counts them) per second for
    /// this tenant; 0 = unlimited (default).
    #[serde(default)]
    pub rate: f64,
    /// Sender programs: the senders a STOP applies to, and their texts.
    #[serde(default)]
    pub programs: Vec<ProgramConfig>,
    /// Hold marketing messages while it is night at the recipient
    /// (`"21:00-08:00"`, local time from the NANP area code); off when absent.
    #[serde(default, deserialize_with = "text::opt")]
    pub quiet_hours: Option<crate::model::quiet::QuietHours>,
    /// Bytes of media this tenant may have stored (0 = no limit); default
    /// `mms.media_quota_bytes`.
    #[serde(default)]
    pub media_quota_bytes: Option<u64>,
    /// Media this tenant may have stored (0 = no limit); default
    /// `mms.media_quota_count`.
    #[serde(default)]
    pub media_quota_count: Option<u64>,
    /// Country (ISO 3166 alpha-2, e.g. `"US"`) whose national numbers this
    /// tenant may submit (normalised to E.164); absent: recipients must be
    /// E.164.
    #[serde(default)]
    pub default_country: Option<String>,
    /// Events go to the tenant's event stream (framed `Subscribe` with
    /// tenant scope) and stay journaled until it acknowledges them. A tenant
    /// that takes its events by webhook only sets `false`: then only
    /// connection-scoped subscribers (`sluice send --wait`) get stream
    /// events, for their own messages. Default `true`.
    #[serde(default = "yes")]
    pub stream_events: bool,
    /// Callback URLs that receive this tenant's events, signed
    /// (`[[tenants.webhooks]]`).
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// `system_id` this tenant's ESMEs bind to the SMPP server with (at most
    /// 15 characters, unique); with `smpp_password`. Absent: no SMPP binds.
    #[serde(default)]
    pub smpp_system_id: Option<String>,
    /// Password of those binds (at most 8 characters, as SMPP 3.4 allows).
    #[serde(default)]
    pub smpp_password: Option<Secret>,
    /// MM7 `ServiceCode`s this tenant's messages may name
    /// (`mms_service_code`); empty: none (the MMSC's own applies).
    #[serde(default)]
    pub mms_service_codes: Vec<String>,
    /// The brand name a recipient sees at the top of an SMS fallback's
    /// landing page (at most 64 characters); absent: none shown.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Replace the http(s) links in this tenant's texts with short tracked
    /// links (a message's own `track_links` overrides). Default off.
    #[serde(default)]
    pub track_links: bool,
    /// Base URL of this tenant's short links (`https://acme.link`), served
    /// by the public door under that host only; absent: `mms.public_url`.
    #[serde(default)]
    pub link_url: Option<String>,
}

/// The kinds of event a webhook endpoint can take.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEvent {
    /// A message's terminal state.
    Delivery,
    /// An inbound message (MO) that is not a compliance keyword.
    Inbound,
    /// An opt-out or opt-in.
    OptOut,
    /// A click on a tracked link.
    Click,
}

/// One webhook endpoint of a tenant: its events are POSTed as JSON, signed
/// with HMAC-SHA256, retried until a 2xx and journaled until then.
///
/// # Defaults
/// Every kind of event, 4 requests in flight, no rate limit, up to 100
/// events per request, 10 s per request, retries from 1 s doubling to 5 min
/// with jitter, dead-lettered after 24 h without a 2xx.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Name (unique within the tenant; in metrics and the admin API).
    pub name: String,
    /// `http://` or `https://` URL the events are POSTed to.
    pub url: String,
    /// Key of the `Sluice-Signature` HMAC (at least 16 characters).
    pub secret: Secret,
    /// Kinds of event sent here. Default all.
    #[serde(default = "all_webhook_events")]
    pub events: Vec<WebhookEvent>,
    /// Requests in flight at once.
    #[serde(default = "four")]
    pub concurrency: u32,
    /// Most requests per second (0 = no limit).
    #[serde(default)]
    pub rate: f64,
    /// Most events in one request.
    #[serde(default = "hundred")]
    pub batch: u32,
    /// Deadline of one request (connect, send, answer).
    #[serde(default = "ten_seconds", with = "humantime_serde")]
    pub timeout: Duration,
    /// First wait before a retry (doubles, with jitter).
    #[serde(default = "one_second", with = "humantime_serde")]
    pub retry_min: Duration,
    /// Longest wait between retries.
    #[serde(default = "five_minutes", with = "humantime_serde")]
    pub retry_max: Duration,
    /// Events without a 2xx this long after they were created stop being
    /// retried and wait in the dead-letter list (admin replay).
    #[serde(default = "one_day", with = "humantime_serde")]
    pub dead_letter_after: Duration,
    /// PEM CA certificates trusted for an `https` URL instead of the
    /// system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn all_webhook_events() -> Vec<WebhookEvent> {
    vec![
        WebhookEvent::Delivery,
        WebhookEvent::Inbound,
        WebhookEvent::OptOut,
        WebhookEvent::Click,
    ]
}
fn four() -> u32 {
    4
}
fn hundred() -> u32 {
    100
}
fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}
fn one_second() -> Duration {
    Duration::from_secs(1)
}
fn five_minutes() -> Duration {
    Duration::from_secs(300)
}
fn one_day() -> Duration {
    Duration::from_secs(24 * 3600)
}

impl Default for TenantConfig {
    /// A tenant with no name, token or senders and every default (for
    /// building configurations in code: `..TenantConfig::default()`).
    fn default() -> Self {
        TenantConfig {
            name: String::new(),
            token: Secret::new(""),
            admin_token: None,
            senders: Vec::new(),
            sender_patterns: Vec::new(),
            default_validity: default_validity(),
            weight: one(),
            rate: 0.0,
            programs: Vec::new(),
            quiet_hours: None,
            media_quota_bytes: None,
            media_quota_count: None,
            default_country: None,
            stream_events: true,
            webhooks: Vec::new(),
            smpp_system_id: None,
            smpp_password: None,
            mms_service_codes: Vec::new(),
            display_name: None,
            track_links: false,
            link_url: None,
        }
    }
}

impl TenantConfig {
    /// The parsed `default_country` (`None` when absent or invalid; an
    /// invalid one is reported by [`Config::problems`]).
    pub fn default_country(&self) -> Option<crate::model::numbering::Country> {
        self.default_country.as_deref().and_then(|c| c.parse().ok())
    }

    /// The base of this tenant's short links, without a trailing `/`.
    pub fn link_base<'a>(&'a self, mms: &'a MmsConfig) -> &'a str {
        self.link_url
            .as_deref()
            .unwrap_or(&mms.public_url)
            .trim_end_matches('/')
    }
}

/// What a STOP to one of a program's senders covers.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StopCovers {
    /// This program's senders (default).
    #[default]
    Program,
    /// Every program of the tenant.
    Tenant,
}

/// A sender program (a short code, or a brand's set of numbers): the scope
/// of opt-outs, with its compliance texts and extra keywords.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramConfig {
    /// Program name (unique within the tenant).
    pub name: String,
    /// Its sender addresses.
    pub senders: Vec<String>,
    /// Reply to HELP / INFO.
    #[serde(default = "default_help_text")]
    pub help_text: String,
    /// Confirmation of an opt-out.
    #[serde(default = "default_opt_out_text")]
    pub opt_out_text: String,
    /// Confirmation of an opt-in.
    #[serde(default = "default_opt_in_text")]
    pub opt_in_text: String,
    /// What a plain STOP covers (STOPALL always covers the tenant).
    #[serde(default)]
    pub stop_covers: StopCovers,
    /// Extra keywords, e.g. `{ ARRET = "opt-out", AIDE = "help", "STOP PLEASE" = "opt-out" }`.
    #[serde(default)]
    pub keywords: std::collections::BTreeMap<String, String>,
}

/// Default compliance text (see [`ProgramConfig`]).
pub fn default_help_text() -> String {
    "Reply STOP to unsubscribe. Msg&data rates may apply.".into()
}
/// Default compliance text (see [`ProgramConfig`]).
pub fn default_opt_out_text() -> String {
    "You are unsubscribed and will receive no further messages. Reply START to resubscribe.".into()
}
/// Default compliance text (see [`ProgramConfig`]).
pub fn default_opt_in_text() -> String {
    "You are subscribed again. Reply STOP to unsubscribe, HELP for help.".into()
}

fn default_validity() -> Duration {
    Duration::from_secs(48 * 3600)
}

/// How long texts are split, per carrier.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConcatMode {
    /// UDH with an 8-bit reference (default).
    #[default]
    Udh8,
    /// UDH with a 16-bit reference.
    Udh16,
    /// SAR TLVs.
    Sar,
    /// One submit_sm with the whole text in message_payload.
    Payload,
}

/// A carrier reachable over SMPP.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierConfig {
    /// Name used in routes, metrics and events.
    pub name: String,
    /// How long texts are split.
    #[serde(default)]
    pub concat: ConcatMode,
    /// Pack GSM-7 septets (most SMSCs expect unpacked with data_coding 0).
    #[serde(default)]
    pub gsm7_packed: bool,
    /// What to do with a submit whose answer never came.
    #[serde(default)]
    pub unanswered: Unanswered,
    /// Carrier-wide messages (or segments) per second over all binds; 0 =
    /// unlimited (default).
    #[serde(default)]
    pub rate: f64,
    /// Whether limits count SMS segments (true, default) or messages.
    #[serde(default = "yes")]
    pub count_segments: bool,
    /// With no bind up this long, queued traffic fails over to the next
    /// carrier of its route (if there is one). Default 30 s.
    #[serde(default = "default_failover_after", with = "humantime_serde")]
    pub failover_after: Duration,
    /// When a reload removes the carrier, how long its binds stay bound
    /// once every part they sent is answered, for the receipts still to
    /// come (they take nothing new meanwhile); receipts later than that
    /// are not received. Default 60 s.
    #[serde(default = "default_removal_linger", with = "humantime_serde")]
    pub removal_linger: Duration,
    /// Binds to this carrier's SMSC.
    pub binds: Vec<BindConfig>,
}

/// What a carrier does with a submit whose answer never came (response
/// timeout, or the link dropped with it outstanding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unanswered {
    /// Send it again (the default of SMPP carriers: SMSCs answer in order
    /// and drop unread PDUs with the link, so this rarely duplicates).
    #[default]
    Resend,
    /// Report the part `unknown` (never a duplicate; the default of MMSCs).
    Unknown,
}

/// One SMPP bind (one TCP connection, or `count` identical ones).
///
/// # Defaults
/// transceiver, window 64, unlimited rate, response timeout 10 s,
/// enquire_link every 30 s, reconnect backoff 500 ms doubling to 30 s,
/// 5 min after a refused authentication.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindConfig {
    /// SMSC address, `host:port`.
    pub address: String,
    /// system_id.
    pub system_id: String,
    /// password (never logged).
    pub password: Secret,
    /// system_type.
    #[serde(default)]
    pub system_type: String,
    /// Bind type.
    #[serde(default)]
    pub mode: BindMode,
    /// Identical connections to open.
    #[serde(default = "one")]
    pub count: u32,
    /// Most submit_sm outstanding (sent, unanswered).
    #[serde(default = "default_window")]
    pub window: u32,
    /// Submits per second on this bind; 0 = unlimited.
    #[serde(default)]
    pub rate: u32,
    /// Connect over TLS (rustls).
    #[serde(default)]
    pub tls: bool,
    /// How long to wait for a response PDU.
    #[serde(default = "default_response_timeout", with = "humantime_serde")]
    pub response_timeout: Duration,
    /// Idle time before an enquire_link.
    #[serde(default = "default_enquire_link", with = "humantime_serde")]
    pub enquire_link_interval: Duration,
    /// First reconnect delay.
    #[serde(default = "default_reconnect_min", with = "humantime_serde")]
    pub reconnect_min: Duration,
    /// Largest reconnect delay.
    #[serde(default = "default_reconnect_max", with = "humantime_serde")]
    pub reconnect_max: Duration,
    /// Wait before binding again after the SMSC refused the credentials
    /// (ESME_RINVPASWD, ESME_RINVSYSID, ESME_RBINDFAIL): carriers lock
    /// accounts that keep retrying. Default 5 min.
    #[serde(default = "default_auth_failure_backoff", with = "humantime_serde")]
    pub auth_failure_backoff: Duration,
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn default_failover_after() -> Duration {
    Duration::from_secs(30)
}
fn default_removal_linger() -> Duration {
    Duration::from_secs(60)
}
fn default_window() -> u32 {
    64
}
fn default_response_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_enquire_link() -> Duration {
    Duration::from_secs(30)
}
fn default_reconnect_min() -> Duration {
    Duration::from_millis(500)
}
fn default_reconnect_max() -> Duration {
    Duration::from_secs(30)
}
fn default_auth_failure_backoff() -> Duration {
    Duration::from_secs(300)
}

/// A route: recipients whose E.164 number starts with `prefix` go to
/// `carriers` (first available wins).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// E.164 prefix with `+` (e.g. `"+1"`); `""` matches everything.
    pub prefix: String,
    /// Carrier names in order of preference.
    pub carriers: Vec<String>,
}

/// `[cluster]`: Redis and what the nodes share through it.
///
/// # Defaults
/// Off (no `redis_url`); key prefix `sluice`; heartbeat every second, a
/// node counted gone after 5 s without one; the opt-out change stream
/// keeps about 1,000,000 changes and the orphan-receipt stream about
/// 100,000 batches.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`); absent:
    /// no cluster. A secret (it may hold a password): never logged, and
    /// may be written `env:NAME` or `file:PATH`.
    pub redis_url: Option<Secret>,
    /// Prefix of every key, so several clusters can share one Redis.
    pub key_prefix: String,
    /// How often a node refreshes its registration.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// A node whose heartbeat is older than this is listed as gone.
    #[serde(with = "humantime_serde")]
    pub node_timeout: Duration,
    /// About how many opt-out changes the change stream keeps; a node
    /// that falls further behind (down for longer) reloads the whole
    /// opt-out state instead.
    pub optout_stream_len: u64,
    /// About how many batches of orphan receipts the receipt stream keeps
    /// for nodes that are down.
    pub receipt_stream_len: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: None,
            key_prefix: "sluice".into(),
            heartbeat: Duration::from_secs(1),
            node_timeout: Duration::from_secs(5),
            optout_stream_len: 1_000_000,
            receipt_stream_len: 100_000,
        }
    }
}

impl ClusterConfig {
    /// Problems with the values (for `Config::problems`).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Some(url) = &self.redis_url
            && !(url.expose().starts_with("redis://") || url.expose().starts_with("rediss://"))
        {
            p.push("cluster.redis_url must start with redis:// or rediss://".into());
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}', ' ']) {
            p.push("cluster.key_prefix must be non-empty, without braces or spaces".into());
        }
        if self.heartbeat < Duration::from_millis(100) {
            p.push("cluster.heartbeat must be at least 100ms".into());
        }
        if self.node_timeout <= self.heartbeat {
            p.push("cluster.node_timeout must be longer than cluster.heartbeat".into());
        }
        if self.optout_stream_len < 1000 || self.receipt_stream_len < 1000 {
            p.push("cluster.optout_stream_len and receipt_stream_len must be at least 1000".into());
        }
        p
    }
}
