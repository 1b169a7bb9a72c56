//! The gateway: wiring only. Opens the journal and builds the rooms —
//! ledger, events, receipts, routes, backlog, admission, inbound, recovery
//! — restores what the journal holds, then starts the carriers, their
//! dispatchers, the periodic chores, the HTTP doors and ingest, and
//! implements the ingest [`Backend`] by handing each call to its room.
//!
//! Start-up order matters: the journal is replayed and every recovered
//! message and event restored *before* the ingest listener accepts anything.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admission::{self, Admission, Dedupe};
use crate::backlog::Backlog;
use crate::carrier::mm7::{Mm7Carrier, StoreSource};
use crate::carrier::smpp::SmppCarrier;
use crate::compliance::Compliance;
use crate::config::{Config, TenantConfig};
use crate::events::EventHub;
use crate::inbound::Inbound;
use crate::ingest::{self, Backend};
use crate::journal::Journal;
use crate::journal::dedupe_log::{self, DedupeLog};
use crate::ledger::Ledger;
use crate::model::submit::{MediaChunk, MediaStored, Submission, SubmitResult};
use crate::receipts::{InboundSink, Receipts};
use crate::recovery::JournalKeeper;
use crate::route::Router;
use crate::schedule::{self, Scheduler, SuppressionCheck};
use crate::spill::Spill;
use crate::telemetry::{self, Health};
use crate::uploads::{self, Uploads};

pub mod carriers;
mod doors;
pub mod reload;

const TARGET: &str = "sluice::gateway";

/// The wired pipeline; implements the ingest [`Backend`].
#[derive(Debug)]
pub struct Gateway {
    journal: Journal,
    ledger: Arc<Ledger>,
    hub: Arc<EventHub>,
    receipts: Arc<Receipts>,
    scheduler: Arc<Scheduler>,
    compliance: Arc<Compliance>,
    backlog: Arc<Backlog>,
    admission: Arc<Admission>,
    uploads: Arc<Uploads>,
    keeper: Arc<JournalKeeper>,
    /// Inbound handling: the receipts hold it only weakly, it lives here.
    _inbound: Arc<Inbound>,
    max_live: u64,
}

impl Gateway {
    /// The ledger of live messages.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Queued messages waiting on disk.
    pub fn spill(&self) -> &Arc<Spill> {
        self.backlog.spill()
    }

    /// The carrier queues.
    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.scheduler
    }

    /// Opt-outs and keywords.
    pub fn compliance(&self) -> &Arc<Compliance> {
        &self.compliance
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }
}

/// The connection id of requests through the HTTP API: never a
/// connection-scoped subscriber (ingest numbers its connections from 1).
const API_CONN: u64 = 0;

/// The HTTP API's view: the same admission, uploads and headroom as ingest.
impl crate::api::ApiBackend for Gateway {
    fn tenant_of(&self, token: &str) -> Option<Arc<str>> {
        self.admission.tenant_of_token(token)
    }

    fn submit(
        &self,
        tenant: &Arc<str>,
        messages: Vec<Submission>,
    ) -> Pin<Box<dyn Future<Output = Vec<SubmitResult>> + Send>> {
        self.admission.submit(tenant, API_CONN, messages)
    }

    fn put_media(
        &self,
        tenant: &Arc<str>,
        media: MediaChunk,
    ) -> Pin<Box<dyn Future<Output = Result<MediaStored, crate::api::MediaRefused>> + Send>> {
        let uploads = self.uploads.clone();
        let tenant = tenant.clone();
        Box::pin(async move { Ok(uploads.store(tenant, API_CONN, media).await?) })
    }

    fn headroom(&self) -> u64 {
        Backend::headroom(self)
    }

    fn message(&self, tenant: &str, id: crate::model::MessageId) -> Option<serde_json::Value> {
        let e = self
            .ledger
            .get(id)
            .filter(|e| &*e.message.tenant == tenant)?;
        let m = &e.message;
        let mut v = serde_json::json!({
            "id": id.to_string(),
            "client_ref": m.client_ref,
            "to": m.to.to_string(),
            "from": m.from.to_string(),
            "campaign_id": m.campaign_id,
            "accepted_at_ms": m.accepted_at_ms,
            "expires_at_ms": m.expires_at_ms,
            "state": "queued",
        });
        if let crate::ledger::Stage::Dispatched(d) = &e.stage {
            v["state"] = "dispatched".into();
            v["carrier"] = d.carrier.to_string().into();
            v["parts"] = d.parts.len().into();
        }
        Some(v)
    }
}

/// The gRPC door's view: ingest's [`Backend`] plus tokens alone and the
/// live-message view, as the HTTP API has them.
impl crate::grpc::GrpcBackend for Gateway {
    fn tenant_of(&self, token: &str) -> Option<Arc<str>> {
        self.admission.tenant_of_token(token)
    }

    fn message(
        &self,
        tenant: &str,
        id: crate::model::MessageId,
    ) -> Option<crate::grpc::LiveMessage> {
        let e = self
            .ledger
            .get(id)
            .filter(|e| &*e.message.tenant == tenant)?;
        let m = &e.message;
        Some(crate::grpc::LiveMessage {
            id,
            client_ref: String::from(&*m.client_ref),
            to: m.to.to_string(),
            from: m.from.to_string(),
            campaign_id: String::from(&*m.campaign_id),
            accepted_at_ms: m.accepted_at_ms,
            expires_at_ms: m.expires_at_ms,
            dispatched: match &e.stage {
                crate::ledger::Stage::Dispatched(d) => {
                    Some((d.carrier.clone(), d.parts.len() as u32))
                }
                _ => None,
            },
        })
    }
}

impl Backend for Gateway {
    fn authenticate(&self, tenant: &str, token: &str) -> Option<Arc<str>> {
        self.admission.authenticate(tenant, token)
    }

    fn credentials_stamp(&self, tenant: &str) -> Option<u64> {
        self.admission.credentials_stamp(tenant)
    }

    fn credential_changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.admission.credential_changes())
    }

    fn submit(
        self: &Arc<Self>,
        tenant: &Arc<str>,
        conn: u64,
        messages: Vec<Submission>,
    ) -> Pin<Box<dyn Future<Output = Vec<SubmitResult>> + Send>> {
        self.admission.submit(tenant, conn, messages)
    }

    fn put_media(
        self: &Arc<Self>,
        tenant: &Arc<str>,
        conn: u64,
        req: MediaChunk,
    ) -> Pin<Box<dyn Future<Output = Result<MediaStored, ingest::MediaRefusal>> + Send>> {
        let uploads = self.uploads.clone();
        let tenant = tenant.clone();
        Box::pin(async move { Ok(uploads.store(tenant, conn, req).await?) })
    }

    fn closed(&self, tenant: &Arc<str>, conn: u64) {
        self.uploads.drop_connection(tenant, conn);
    }

    fn headroom(&self) -> u64 {
        self.max_live
            .saturating_sub(self.ledger.live() + self.backlog.spill().len())
    }

    fn events(&self) -> &Arc<EventHub> {
        &self.hub
    }
}

/// A running gateway: its addresses and the handle to stop it.
#[derive(Debug)]
pub struct Running {
    /// Where ingest listens.
    pub ingest_addr: SocketAddr,
    /// Where `/metrics`, health and the admin API are served, if enabled.
    pub http_addr: Option<SocketAddr>,
    /// Where the landing pages are served, if enabled.
    pub public_addr: Option<SocketAddr>,
    /// Where the tenants' HTTP/JSON API is served, if enabled.
    pub api_addr: Option<SocketAddr>,
    /// Where the tenants' gRPC service is served, if enabled.
    pub grpc_addr: Option<SocketAddr>,
    /// Where the SMPP server for upstream ESMEs listens, if enabled.
    pub smpp_server_addr: Option<SocketAddr>,
    /// Stops the HTTP doors.
    stop: tokio_util::sync::CancellationToken,
    /// The pipeline.
    pub gateway: Arc<Gateway>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// Held while this gateway owns its data directory.
    _lock: crate::journal::lock::DataDirLock,
    health: Arc<Health>,
    /// The HTTP doors' tasks: stopped last, so `/readyz` answers "draining"
    /// (and `/metrics` is scraped) until the end.
    door_tasks: JoinSet<()>,
    /// The configuration in force (the start's, with reloaded limits).
    config: Config,
    /// The admin API (its tokens are reloaded).
    admin: Arc<crate::admin::Admin>,
    /// The SMPP server's accounts (reloaded), when it runs.
    smpp_accounts: Option<Arc<crate::smpp_server::Accounts>>,
    /// What tenants added or removed by a reload reach.
    tenancy: TenancyParts,
    /// What starts an SMS carrier a reload adds (and replaces binds,
    /// removes carriers).
    sms: carriers::CarrierParts,
    /// What starts an MMSC a reload adds.
    mmscs: carriers::Mmscs,
    /// Each MMSC's lane (a reload retunes it) and callback listener.
    mmscs_running: carriers::MmscsRunning,
}

/// The parts of [`Running`] that only a reload adding or removing a tenant
/// needs.
#[derive(Debug)]
struct TenancyParts {
    webhooks: Arc<crate::webhooks::Webhooks>,
    media: Arc<crate::media::store::MediaStore>,
    redirects: Option<Arc<crate::links::serve::Redirects>>,
    cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Tenants removed since the start ([`reload::Tenancy::retired`]).
    retired: Vec<TenantConfig>,
}

impl Running {
    /// Takes a reloaded configuration file (SIGHUP): its limits, tenants'
    /// credentials, sending rights and destinations, tenants added or
    /// removed, carriers' binds, SMS carriers added or removed and the
    /// routes apply now, the rest at the next restart ([`reload`]).
    pub fn reload(&mut self, new: &Config) -> reload::Reloaded {
        let carriers = self.config.carriers.clone();
        let parts = &mut self.tenancy;
        let cluster = parts.cluster.as_deref().map(crate::cluster::Cluster::link);
        let mut live = reload::Live {
            scheduler: &self.gateway.scheduler,
            admission: Some(&self.gateway.admission),
            admin: Some(&self.admin),
            compliance: Some(&self.gateway.compliance),
            smpp_accounts: self.smpp_accounts.as_deref(),
            carriers: Some(carriers::CarriersReload {
                carriers: &self.sms,
                mmscs: &self.mmscs,
                running: &mut self.mmscs_running,
                shutdown: self.shutdown.subscribe(),
                cluster,
            }),
            tenancy: Some(reload::Tenancy {
                hub: &self.gateway.hub,
                webhooks: &parts.webhooks,
                backlog: &self.gateway.backlog,
                media: &parts.media,
                redirects: parts.redirects.as_deref(),
                tasks: &mut self.tasks,
                shutdown: self.shutdown.subscribe(),
                cluster,
                carriers: &carriers,
                retired: &mut parts.retired,
            }),
        };
        let (now, r) = reload::apply(&self.config, new, &mut live);
        self.config = now;
        r
    }

    /// Where each MMSC's callbacks are received (those of MMSCs a reload
    /// added too, and of those it removed, until the restart).
    pub fn mm7_callbacks(&self) -> Vec<SocketAddr> {
        self.mmscs_running
            .servers
            .iter()
            .map(|(_, s)| s.local_addr())
            .collect()
    }

    /// Readiness (what `/readyz` answers).
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Marks the node draining: `/readyz` answers 503 from now on, so load
    /// balancers move new traffic elsewhere. [`Running::shutdown`] starts
    /// with this.
    pub fn begin_drain(&self) {
        self.health.drain();
    }

    /// Drains (`/readyz` 503), stops accepting, says GoAway to clients,
    /// unbinds, waits (bounded) for tasks to finish, and stops the HTTP
    /// endpoint last.
    pub async fn shutdown(mut self) {
        self.begin_drain();
        let _ = self.shutdown.send(true);
        for (_, s) in &self.mmscs_running.servers {
            s.shutdown();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
        // What the last steps recorded goes to disk, the head segment closed.
        self.gateway.ledger.history().close().await;
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while self.door_tasks.join_next().await.is_some() {}
        })
        .await;
        self.door_tasks.abort_all();
    }

    /// Resolves when a task the gateway cannot live without ends.
    pub async fn wait(&mut self) {
        self.tasks.join_next().await;
    }
}

/// What this node tells the cluster about itself each heartbeat.
struct NodeStatusOf {
    /// Its SMS carriers are those of the routes in force.
    router: Arc<Router>,
    ledger: Arc<Ledger>,
}

impl crate::cluster::NodeStatus for NodeStatusOf {
    fn binds(&self) -> Vec<(String, usize)> {
        let mut b: Vec<(String, usize)> = self
            .router
            .sms()
            .carriers()
            .iter()
            .map(|(n, c)| (n.to_string(), c.binds_up()))
            .collect();
        b.sort();
        b
    }

    fn live(&self) -> u64 {
        self.ledger.live()
    }
}

/// Whose rate [`RateSharing::share`] shares.
#[derive(Debug, Clone)]
pub(crate) enum RateOf {
    /// A carrier's, over all its traffic.
    Carrier(String),
    /// A tenant's, on each SMS carrier.
    Tenant(String),
}

/// Shares carriers' and tenants' rates with the cluster's other nodes
/// (cluster mode): each is a lease on one schedule in Redis
/// ([`crate::cluster::budgets::LeasedRate`]) kept by a task of its own.
pub(crate) struct RateSharing<'a> {
    pub(crate) link: &'a crate::cluster::Link,
    pub(crate) scheduler: &'a Scheduler,
    /// The SMS carriers.
    pub(crate) carriers: &'a [crate::config::CarrierConfig],
    pub(crate) tasks: &'a mut JoinSet<()>,
    pub(crate) shutdown: &'a watch::Receiver<bool>,
}

impl RateSharing<'_> {
    /// Takes `of`'s permits from the cluster's schedule at `rate` too.
    pub(crate) fn share(&mut self, of: &RateOf, rate: f64) {
        use crate::cluster::budgets::LeasedRate;
        for carrier in self.carriers {
            let Some(q) = self.scheduler.queue(&carrier.name) else {
                continue;
            };
            let leased = match of {
                RateOf::Carrier(name) if *name == carrier.name => {
                    let leased = LeasedRate::carrier(self.link.clone(), name, rate);
                    q.share_rate(leased.clone());
                    leased
                }
                RateOf::Carrier(_) => continue,
                RateOf::Tenant(tenant) => {
                    let leased = LeasedRate::tenant(self.link.clone(), &carrier.name, tenant, rate);
                    q.share_tenant_rate(tenant, leased.clone());
                    leased
                }
            };
            leased.start(self.tasks, self.shutdown);
        }
    }
}

/// The host of each tenant's own `link_url`, where its short links are
/// answered.
fn redirect_hosts(config: &Config) -> HashMap<String, String> {
    config
        .tenants
        .iter()
        .filter_map(|t| {
            let host = crate::links::serve::host_of(t.link_url.as_deref()?)?;
            Some((t.name.clone(), host))
        })
        .collect()
}

/// Where `t`'s events go: its stream (unless it turned it off), its webhook
/// endpoints, and, for a tenant with SMPP credentials, the SMPP server's
/// binds (receipts and inbound messages, journaled until answered).
pub(crate) fn tenant_events(t: &TenantConfig) -> crate::events::TenantSettings {
    let mut events = crate::webhooks::destinations(t);
    if t.smpp_system_id.is_some() {
        events.endpoints.push(smpp_destination());
    }
    events
}

/// The SMPP server as a destination of a tenant's events: the receipts
/// and inbound messages its bound sessions take.
pub(crate) fn smpp_destination() -> crate::events::Destination {
    crate::events::Destination {
        name: Arc::from(crate::smpp_server::ENDPOINT),
        kinds: crate::events::EventKinds {
            delivery: true,
            inbound: true,
            opt: false,
            click: false,
        },
        encoder: Arc::new(crate::smpp_server::SmppEvents),
    }
}

/// Opens the journal, restores state, starts every task and listener.
///
/// # Errors
/// The journal cannot be opened or a listener cannot be bound.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let problems = config.door_problems();
    if !problems.is_empty() {
        anyhow::bail!("refusing to start:\n  - {}", problems.join("\n  - "));
    }
    let running_config = config.clone();
    telemetry::metrics_handle();
    let lock = crate::journal::lock::DataDirLock::acquire(&config.data_dir)?;
    crate::model::numbering::warm();
    let (journal, recovered) = Journal::open(&config.journal_dir(), &config.journal)?;
    let cluster =
        crate::cluster::Cluster::join(&config.cluster, &config.node_id, &config.data_dir).await?;
    if let Some(c) = &cluster {
        journal.raise_message_ids(c.first_message_id());
    }
    let (shutdown_tx, shutdown) = watch::channel(false);
    let compliance = Arc::new(Compliance::open(&config)?);
    let opt_sync = match &cluster {
        Some(c) => Some(crate::cluster::optouts::OptSync::new(
            c.link().clone(),
            compliance.clone(),
            &crate::cluster::dir(&config.data_dir),
            &config.node_id,
            &config.cluster,
        )?),
        None => {
            // Changes made now stay here: the next run in cluster mode
            // sends this node's opt-outs again.
            crate::cluster::optouts::forget_seed(&config.data_dir);
            None
        }
    };
    let last_check = SuppressionCheck::over(compliance.clone());
    let history = crate::history::History::open(config.history_dir(), &config.history)
        .map_err(|e| anyhow::anyhow!("history in {}: {e}", config.history_dir().display()))?;
    let ledger = Arc::new(Ledger::new(journal.clone()).with_history(history.clone()));
    let hub = EventHub::new(
        journal.clone(),
        Vec::<Arc<str>>::new(),
        Arc::new(ingest::event_wire::WireEvents),
    )
    .with_history(history)
    .with_mms_carriers(config.mmsc.iter().map(|m| Arc::from(m.name.as_str())));
    for t in &config.tenants {
        hub.add_tenant(&t.name, tenant_events(t));
    }
    let hub = Arc::new(hub);
    let webhooks = Arc::new(crate::webhooks::Webhooks::new(&hub, &config.tenants)?);
    let media = Arc::new(crate::media::store::MediaStore::open(
        uploads::store_config(&config),
    )?);
    let tls = carrier_tls(&config)?;
    let mm7_media: Arc<dyn crate::carrier::mm7::MediaSource> = Arc::new(StoreSource {
        store: media.clone(),
        fitter: Arc::new(crate::media::fit::Fitter::new()),
    });
    let mmscs = config
        .mmsc
        .iter()
        .map(|m| Mm7Carrier::new(m, mm7_media.clone(), tls.clone()).map(Arc::new))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let link_secret = crate::media::link::load_or_create_secret(&config.data_dir)?;
    let links = Arc::new(crate::media::link::LinkSigner::new(&link_secret));
    // Short links are only made when the public door can redirect them.
    // In cluster mode each node numbers its own links: its codes are keyed
    // with its node id too, so another node's store never reads them as its
    // own links (they answer 404 there).
    let mut link_key = link_secret.clone();
    if cluster.is_some() {
        link_key.extend_from_slice(config.node_id.as_bytes());
    }
    let link_store = match config.public.listen {
        Some(_) => Some(crate::links::LinkStore::open(
            &config.data_dir.join("links"),
            &link_key,
            config.links.retention,
        )?),
        None => None,
    };
    let receipts = Arc::new(Receipts::new(ledger.clone(), hub.clone(), &config.receipts));
    let receipt_sync = match &cluster {
        Some(c) => Some(crate::cluster::receipts::ReceiptSync::new(
            c.link().clone(),
            receipts.clone(),
            &config.node_id,
            &crate::cluster::dir(&config.data_dir),
            &config.cluster,
        )?),
        None => None,
    };
    let carriers: crate::model::hashing::FastMap<Arc<str>, Arc<SmppCarrier>> = config
        .carriers
        .iter()
        .map(|c| {
            let carrier = SmppCarrier::new(c, receipts.clone(), Some(last_check.clone()));
            (carrier.name().clone(), carrier)
        })
        .collect();
    let health = Arc::new(Health::default());
    let scheduler = Arc::new(Scheduler::new(&config));
    let router = Arc::new(Router::new(&config, carriers.clone(), mmscs.clone()));
    let spill = Spill::open(
        &config.data_dir.join("spill"),
        config.journal.spill_file_bytes,
    )?
    .with_max_batch((config.journal.max_queued_in_memory / 8) as usize);
    let backlog = Arc::new(
        Backlog::new(
            &config,
            router.clone(),
            scheduler.clone(),
            ledger.clone(),
            receipts.clone(),
            Arc::new(spill),
            links.clone(),
        )
        .with_media(media.clone())
        .with_short_links(link_store.clone(), &config),
    );
    let dedupe = Arc::new(
        Dedupe::new(
            config.ingest.dedupe_window,
            dedupe_log::load_or_create_key(&config.journal_dir().join("dedupe.key"))?,
        )
        .with_max_keys(config.ingest.dedupe_max_keys),
    );
    let keeper = Arc::new(JournalKeeper::new(
        journal.clone(),
        ledger.clone(),
        hub.clone(),
        receipts.clone(),
        backlog.clone(),
        dedupe.clone(),
        DedupeLog::open(&config.journal_dir().join("dedupe"))?,
    ));
    let uploads = Arc::new(Uploads::new(media.clone()));
    let admission = Arc::new(Admission::new(
        &config,
        admission::service::Parts {
            journal: journal.clone(),
            ledger: ledger.clone(),
            hub: hub.clone(),
            router: router.clone(),
            uploads: uploads.clone(),
            compliance: compliance.clone(),
            claims: cluster
                .as_ref()
                .map(|c| crate::cluster::claims::Claims::new(c.link().clone(), dedupe.window_ms())),
            dedupe,
            backlog: backlog.clone(),
            links: link_store.clone(),
        },
    ));
    let inbound = Arc::new(Inbound::new(
        compliance.clone(),
        hub.clone(),
        journal.clone(),
        ledger.clone(),
        backlog.clone(),
    ));
    receipts.set_inbound(&(inbound.clone() as Arc<dyn InboundSink>));
    let links_dir = config.data_dir.join("links");
    std::fs::create_dir_all(&links_dir)?;
    let campaigns = Arc::new(crate::links::campaigns::Campaigns::open(
        &links_dir,
        config.links.attribution_window,
        crate::model::now_ms() / 1000,
        compliance.clone(),
    ));
    receipts.set_campaigns(campaigns.clone());
    inbound.attribute_to(campaigns.clone());
    keeper.restore(recovered, config.journal.recovery);
    let gateway = Arc::new(Gateway {
        journal: journal.clone(),
        ledger: ledger.clone(),
        hub,
        receipts: receipts.clone(),
        scheduler: scheduler.clone(),
        compliance: compliance.clone(),
        backlog: backlog.clone(),
        admission,
        uploads,
        keeper,
        _inbound: inbound.clone(),
        max_live: config.journal.max_live_messages,
    });

    let sms = carriers::CarrierParts {
        receipts: receipts.clone(),
        ledger: ledger.clone(),
        scheduler: scheduler.clone(),
        router: router.clone(),
        backlog: backlog.clone(),
        health: health.clone(),
        last_check: last_check.clone(),
    };
    let mut tasks = JoinSet::new();
    if let Some(c) = &cluster {
        // Carrier, tenant and sender rates and daily caps hold for the
        // cluster as a whole.
        use crate::cluster::budgets::LeasedRates;
        let caps = crate::cluster::caps::LeasedCaps::new(c.link().clone());
        scheduler.share_caps(caps.clone());
        caps.start(&mut tasks, &shutdown);
        let sender_rates = LeasedRates::new(c.link().clone());
        scheduler.share_sender_rates(sender_rates.clone());
        sender_rates.start(&mut tasks, &shutdown);
        let mut sharing = RateSharing {
            link: c.link(),
            scheduler: &scheduler,
            carriers: &config.carriers,
            tasks: &mut tasks,
            shutdown: &shutdown,
        };
        for carrier in config.carriers.iter().filter(|c| c.rate > 0.0) {
            sharing.share(&RateOf::Carrier(carrier.name.clone()), carrier.rate);
        }
        for t in config.tenants.iter().filter(|t| t.rate > 0.0) {
            sharing.share(&RateOf::Tenant(t.name.clone()), t.rate);
        }
    }
    for c in &config.carriers {
        sms.start(
            c,
            &carriers[c.name.as_str()],
            queue_of(&scheduler, &c.name),
            tls.clone(),
            &mut tasks,
            &shutdown,
        );
    }
    let mm7 = carriers::Mmscs {
        media: mm7_media,
        inbound: inbound.clone(),
        hub: gateway.hub.clone(),
    };
    let mut mmscs_running = carriers::MmscsRunning::default();
    for (m, carrier) in config.mmsc.iter().zip(&mmscs) {
        let (lane, server) = sms.start_mmsc(&mm7, m, carrier, &config, &mut tasks, &shutdown)?;
        mmscs_running.lanes.push(lane);
        mmscs_running
            .servers
            .extend(server.map(|s| (carrier.name().clone(), s)));
    }
    tasks.spawn(chores(
        gateway.clone(),
        config.journal.max_segments.into(),
        shutdown.clone(),
    ));
    tasks.spawn(page_in(backlog.clone(), shutdown.clone()));
    tasks.spawn(keep_campaigns(campaigns.clone(), shutdown.clone()));
    tasks.spawn(sweep_landing_pages(
        media.clone(),
        config.mms.landing_retention,
        link_store.clone(),
        shutdown.clone(),
    ));
    webhooks.start(&mut tasks, &shutdown);
    if let Some(s) = &opt_sync {
        s.start(&mut tasks, &shutdown);
    }
    if let Some(s) = &receipt_sync {
        s.start(&mut tasks, &shutdown);
    }
    if let Some(c) = &cluster {
        c.start(
            Arc::new(NodeStatusOf {
                router: router.clone(),
                ledger: ledger.clone(),
            }),
            &mut tasks,
            &shutdown,
        );
    }

    sms.watch_readiness(config.http.ready_carriers);
    // The HTTP doors outlive the other tasks at shutdown, so `/readyz`
    // answers "draining" (and `/metrics` is scraped) until the end.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut door_tasks = JoinSet::new();
    let tenancy = TenancyParts {
        webhooks: webhooks.clone(),
        media: media.clone(),
        redirects: None,
        cluster: cluster.clone(),
        retired: Vec::new(),
    };
    let admin = Arc::new(
        crate::admin::Admin::new(
            &config,
            compliance,
            scheduler,
            ledger,
            backlog.spill().clone(),
            webhooks,
        )
        .with_events(gateway.hub.clone())
        .with_cluster(cluster.clone())
        .with_campaigns(campaigns.clone(), link_store.clone()),
    );
    let http_addr = doors::internal(
        &config,
        health.clone(),
        admin.clone(),
        &stop,
        &mut door_tasks,
    )
    .await?;
    let redirects = link_store.map(|store| {
        Arc::new(crate::links::serve::Redirects {
            store,
            hub: gateway.hub.clone(),
            hosts: redirect_hosts(&config).into(),
            default_host: crate::links::serve::host_of(&config.mms.public_url),
        })
    });
    let public_addr = doors::public(
        &config,
        media,
        links,
        redirects.clone(),
        &stop,
        &mut door_tasks,
    )
    .await?;
    let api_addr = doors::api(&config, gateway.clone(), &stop, &mut door_tasks).await?;
    let grpc_addr = doors::grpc(&config, gateway.clone(), &shutdown, &mut tasks).await?;
    let smpp_server = doors::smpp_server(&config, gateway.clone(), &shutdown, &mut tasks).await?;
    let smpp_server_addr = smpp_server.as_ref().map(|(addr, _)| *addr);
    let ingest_tls = doors::server_tls("ingest", config.ingest.tls(), false, &config)?;
    let listener = TcpListener::bind(config.ingest.listen).await?;
    let ingest_addr = listener.local_addr()?;
    tasks.spawn(ingest::server::serve(
        listener,
        gateway.clone(),
        ingest::session::Limits::from_config(&config.ingest, &config.node_id),
        ingest_tls,
        shutdown.clone(),
    ));
    health.watch_journal("messages", gateway.journal().failure());
    health.watch_journal("optouts", gateway.compliance().journal_failure());
    health.set_ready(true);
    tracing::info!(target: TARGET, %ingest_addr, ?http_addr, ?public_addr, ?api_addr, ?grpc_addr, ?smpp_server_addr, node = %config.node_id, "gateway started");
    Ok(Running {
        ingest_addr,
        http_addr,
        public_addr,
        api_addr,
        grpc_addr,
        smpp_server_addr,
        stop,
        gateway,
        mmscs: mm7,
        mmscs_running,
        shutdown: shutdown_tx,
        tasks,
        _lock: lock,
        health,
        door_tasks,
        config: running_config,
        admin,
        smpp_accounts: smpp_server.map(|(_, accounts)| accounts),
        tenancy: TenancyParts {
            redirects,
            ..tenancy
        },
        sms,
    })
}

/// How MMSC `m`'s lane submits (`fallback_before_expiry` from `[mms]`).
pub(crate) fn lane_settings(
    m: &crate::config::MmscConfig,
    fallback_before_expiry: std::time::Duration,
) -> schedule::mm7::LaneSettings {
    schedule::mm7::LaneSettings {
        concurrency: m.connections,
        rate: m.rate,
        unanswered: m.unanswered,
        retry: schedule::mm7::Backoff {
            first: m.retry_min,
            longest: m.retry_max,
        },
        fallback_after: m.fallback_after,
        fallback_before_expiry,
        max_recipients: m.max_recipients,
    }
}

/// The client TLS of carrier binds and MMSC requests, when any uses TLS.
fn carrier_tls(config: &Config) -> anyhow::Result<Option<Arc<tokio_rustls::rustls::ClientConfig>>> {
    let any = config
        .carriers
        .iter()
        .any(|c| c.binds.iter().any(|b| b.tls))
        || config.mmsc.iter().any(|m| m.url.starts_with("https://"));
    if !any {
        return Ok(None);
    }
    let tls = crate::smpp::tls::client_config(config.tls.ca_file.as_deref())?;
    Ok(Some(Arc::new(tls)))
}

/// The queue of carrier `name` (the scheduler has one per carrier).
fn queue_of(scheduler: &Scheduler, name: &str) -> Arc<schedule::CarrierQueue> {
    scheduler
        .queue(name)
        .expect("the scheduler has a queue per configured carrier")
        .clone()
}

/// Pages spilled messages in as the queues drain (every 20 ms).
async fn page_in(backlog: Arc<Backlog>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        backlog.page_in().await;
    }
}

/// Saves the campaign figures every five minutes (and drops attribution
/// entries past their window), and once more at shutdown.
async fn keep_campaigns(
    campaigns: Arc<crate::links::campaigns::Campaigns>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.changed() => true,
        };
        let c = campaigns.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let now_s = crate::model::now_ms() / 1000;
            c.sweep(now_s);
            c.save(now_s)
        })
        .await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(target: TARGET, error = %e, "campaign figures not saved"),
            Err(e) => tracing::error!(target: TARGET, error = %e, "campaign save task failed"),
        }
        if last {
            return;
        }
    }
}

/// Removes landing pages unlinked for `retention`, and short-link segments
/// past `links.retention`, a minute after start and then hourly, off the
/// runtime's threads; with `retention` 0, no landing pages (it still waits
/// for shutdown: a gateway task that returns stops the gateway).
async fn sweep_landing_pages(
    store: Arc<crate::media::store::MediaStore>,
    retention: Duration,
    links: Option<crate::links::LinkStore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let start = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut tick = tokio::time::interval_at(start, Duration::from_secs(3600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Some(links) = links.clone() {
            let now = std::time::SystemTime::now();
            if let Err(e) = tokio::task::spawn_blocking(move || links.sweep(now)).await {
                tracing::error!(target: TARGET, error = %e, "link sweep task failed");
            }
        }
        if retention.is_zero() {
            continue;
        }
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.sweep_landing(retention)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => {
                tracing::info!(target: TARGET, removed = n, "expired landing pages removed");
            }
            Ok(Err(e)) => {
                tracing::warn!(target: TARGET, error = %e, "landing pages not swept");
            }
            Err(e) => tracing::error!(target: TARGET, error = %e, "landing sweep task failed"),
        }
    }
}

/// Periodic work, every second: expiry sweep, failover, the stall alarm,
/// the dedupe trickle, gauges; compaction every fifth.
async fn chores(gw: Arc<Gateway>, max_segments: u64, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    let mut stalled = HashSet::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        n += 1;
        tokio::spawn(gw.receipts.sweep());
        gw.backlog.failover();
        gw.backlog.watch_stalls(&mut stalled);
        // Before anything that waits on the disk.
        for (journal, failed) in [
            ("messages", gw.journal.has_failed()),
            ("optouts", gw.compliance.journal_failure().is_set()),
        ] {
            metrics::gauge!("sluice_journal_failed", "journal" => journal)
                .set(f64::from(u8::from(failed)));
        }
        gw.keeper.trickle_dedupe().await;
        // Histogram samples wait in the recorder until upkeep folds them
        // into buckets; without a scrape they would pile up (~1 MB/s at
        // 50k msgs/s).
        telemetry::metrics_handle().run_upkeep();
        metrics::gauge!("sluice_live_messages").set(gw.ledger.live() as f64);
        metrics::gauge!("sluice_events_pending").set(gw.hub.pending() as f64);
        for ep in gw.hub.endpoints() {
            let c = ep.counts();
            if **ep.name() == *crate::smpp_server::ENDPOINT {
                metrics::gauge!("sluice_smpp_server_events_pending", "tenant" => ep.tenant().to_string())
                    .set((c.ready + c.in_flight) as f64);
                metrics::gauge!("sluice_smpp_server_dead_letters", "tenant" => ep.tenant().to_string())
                    .set(c.dead as f64);
                continue;
            }
            let labels = [
                ("tenant", ep.tenant().to_string()),
                ("endpoint", ep.name().to_string()),
            ];
            metrics::gauge!("sluice_webhook_pending", &labels).set((c.ready + c.in_flight) as f64);
            metrics::gauge!("sluice_webhook_dead_letters", &labels).set(c.dead as f64);
        }
        metrics::gauge!("sluice_journal_bytes").set(gw.journal.bytes() as f64);
        metrics::gauge!("sluice_journal_segments").set(gw.journal.segments() as f64);
        if n.is_multiple_of(5)
            && let Err(e) = gw.keeper.compact(max_segments).await
        {
            tracing::error!(target: TARGET, error = %e, "journal compaction failed");
        }
    }
}
