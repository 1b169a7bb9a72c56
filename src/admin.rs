//! The HTTP admin API (JSON, bearer-token auth) on the internal door, an
//! axum [`Router`] merged beside `/metrics` by the gateway:
//!
//! | method & path | does | tenant token |
//! | --- | --- | --- |
//! | `GET /admin/optouts/{number}` | scopes the number is suppressed in, and its audit trail | its own scopes only |
//! | `POST /admin/optouts` `{"number", "scope", "note"?}` | opt a number out (source `api`) | its own scopes |
//! | `DELETE /admin/optouts/{number}?scope=S` | opt it back in | its own scopes |
//! | `GET /admin/optouts/count[?scope=S]` | how many numbers are suppressed | its own scopes, `scope` required |
//! | `POST /admin/optouts/import?scope=S` (CSV body, `x-source` header) | bulk import, all-or-nothing, bad rows by line | its own scopes |
//! | `GET /admin/optouts/export?scope=S` | CSV `number,scope` | its own scopes |
//! | `GET /admin/imports` | committed imports | its own scopes' |
//! | `POST /admin/carriers/{name}/pause`, `.../resume` | hold or release a carrier's traffic | 403 |
//! | `GET /admin/queues` | per carrier: queued, held, paused, the carrier-wide rate in force, and why messages wait; spilled per tenant | 403 |
//! | `GET /admin/messages/{id}` | where one message is (queued, spilled, dispatched) and what it waits for | its own messages (403 for another tenant's) |
//! | `GET /admin/messages/{id}/history` | the message's timeline from history ([`crate::history`]): every step with its time | its own messages (another tenant's is 404, like an unknown one) |
//! | `GET /admin/history?client_ref=T:REF` \| `?carrier_id=C:ID` \| `?to=+E164[&since=1h][&until=0s]` | `{"messages": [timeline...]}`, newest first, at most 100; `since`/`until`: how long ago (default 24h and now) | its own messages only |
//! | `GET /admin/webhooks` | webhook endpoints with the events each holds (ready, in flight, dead) | its own |
//! | `POST /admin/webhooks/{tenant}/{endpoint}/replay` | puts an endpoint's dead letters back in its queue | its own |
//! | `GET /admin/smpp` | per tenant, the `deliver_sm` its SMPP binds have yet to take (ready, in flight, dead) | its own |
//! | `POST /admin/smpp/{tenant}/replay` | puts the tenant's dead-lettered `deliver_sm` back in its queue | its own |
//! | `GET /admin/cluster` | the cluster's nodes (404 outside cluster mode) | 403 |
//! | `GET /admin/campaigns/{id}?tenant=T` | a campaign's figures and clicks | its own |
//!
//! # Who may call
//! `Authorization: Bearer <token>` (the scheme in any letter case). The
//! operator's token (`http.admin_token`) may do everything; a tenant's
//! `admin_token` sees and changes only that tenant: scopes `tenant:<name>`
//! and `program:<name>:<program>`, its own messages (and media, when routes
//! for it exist). Anything else is 403. No token: 401; an unknown token:
//! 403. With no token configured at all the API answers 404.
//!
//! # Limits
//! JSON bodies up to `http.max_body_bytes` within `http.body_timeout`;
//! imports up to `http.max_import_bytes` within `http.import_timeout`
//! (413 and 408 past them). Connection limits are the door's
//! ([`crate::httpd`]).
//!
//! Path segments are percent-decoded, and a `+` stays a `+`
//! (`/admin/optouts/+14155550100`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::compliance::{Compliance, program_scope, tenant_scope};
use crate::httpd::{self, BodyError};
use crate::journal::OptChange;
use crate::ledger::{Ledger, Stage};
use crate::links::LinkStore;
use crate::links::campaigns::Campaigns;
use crate::model::{MessageId, Msisdn, now_ms};
use crate::schedule::Scheduler;
use crate::settings::{Config, Secret};
use crate::spill::Spill;

const TARGET: &str = "sluice::admin";

/// Body caps and deadlines of the admin routes (from `[http]`).
///
/// # Defaults
/// JSON bodies 64 KiB within 30 s; imports 256 MiB within 10 min.
#[derive(Clone, Copy, Debug)]
pub struct AdminLimits {
    /// Largest JSON body.
    pub max_body_bytes: usize,
    /// Deadline for a JSON body.
    pub body_timeout: Duration,
    /// Largest import (CSV) body.
    pub max_import_bytes: usize,
    /// Deadline for receiving and applying an import.
    pub import_timeout: Duration,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            max_body_bytes: 64 << 10,
            body_timeout: Duration::from_secs(30),
            max_import_bytes: 256 << 20,
            import_timeout: Duration::from_secs(600),
        }
    }
}

impl AdminLimits {
    /// The limits `[http]` configures.
    pub fn from_config(c: &crate::settings::HttpConfig) -> AdminLimits {
        AdminLimits {
            max_body_bytes: c.max_body_bytes,
            body_timeout: c.body_timeout,
            max_import_bytes: c.max_import_bytes,
            import_timeout: c.import_timeout,
        }
    }
}

/// Who made an admin call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The operator (`http.admin_token`): everything.
    Operator,
    /// A tenant's admin token: that tenant only.
    Tenant(Arc<str>),
}

/// Which tenant owns each opt-out scope: its own and its programs' (`None`
/// for a scope two tenants claim).
fn scope_owners(config: &crate::config::Config) -> HashMap<String, Option<Arc<str>>> {
    let mut owners: HashMap<String, Option<Arc<str>>> = HashMap::new();
    let mut claim = |scope: String, tenant: &Arc<str>| {
        owners
            .entry(scope)
            .and_modify(|owner| {
                if owner.as_deref() != Some(&**tenant) {
                    *owner = None;
                }
            })
            .or_insert_with(|| Some(tenant.clone()));
    };
    for t in &config.tenants {
        let name: Arc<str> = t.name.as_str().into();
        claim(tenant_scope(&t.name), &name);
        for p in &t.programs {
            claim(program_scope(&t.name, &p.name), &name);
        }
    }
    owners
}

/// What the admin API works on.
#[derive(Debug)]
pub struct Admin {
    /// Replaced on SIGHUP ([`Admin::set_tokens`]).
    tokens: parking_lot::RwLock<Tokens>,
    /// Scope name → owning tenant (`None`: global, or claimed by two);
    /// replaced with the tokens, so a tenant added by a reload owns its
    /// scopes.
    scope_owner: parking_lot::RwLock<HashMap<String, Option<Arc<str>>>>,
    limits: AdminLimits,
    compliance: Arc<Compliance>,
    scheduler: Arc<Scheduler>,
    ledger: Arc<Ledger>,
    spill: Arc<Spill>,
    webhooks: Arc<crate::webhooks::Webhooks>,
    /// The event destinations, for the SMPP door's (`smpp`) dead letters.
    events: Option<Arc<crate::events::EventHub>>,
    cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Campaign figures, and the clicks of tracked links.
    campaigns: Option<(Arc<Campaigns>, Option<LinkStore>)>,
}

/// The bearer tokens the admin API takes.
#[derive(Debug)]
struct Tokens {
    operator: Option<Secret>,
    tenants: Vec<(Arc<str>, Secret)>,
}

impl Tokens {
    fn of(config: &crate::config::Config) -> Tokens {
        Tokens {
            operator: config.http.admin_token.clone(),
            tenants: config
                .tenants
                .iter()
                .filter_map(|t| Some((t.name.as_str().into(), t.admin_token.clone()?)))
                .collect(),
        }
    }
}

type Reply = Response;

fn reply(status: StatusCode, body: serde_json::Value) -> Reply {
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    reply(status, json!({ "error": message.into() }))
}

fn forbidden(what: &str) -> Reply {
    error(StatusCode::FORBIDDEN, format!("this token may not {what}"))
}

/// A peer-supplied string made safe for a log field: at most 120
/// characters, logged with `?` (escaped).
fn for_log(s: &str) -> &str {
    match s.char_indices().nth(120) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme in any
/// letter case).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header
        .trim()
        .split_once(|c: char| c.is_ascii_whitespace())?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[derive(Debug, Deserialize)]
struct ScopeQuery {
    scope: Option<String>,
}

impl Principal {
    /// Whether this caller may see and change `tenant`'s data.
    pub fn may_tenant(&self, tenant: &str) -> bool {
        match self {
            Principal::Operator => true,
            Principal::Tenant(t) => &**t == tenant,
        }
    }
}

impl Admin {
    /// The admin API over the gateway's parts, with the tokens and limits of
    /// `config`.
    pub fn new(
        config: &Config,
        compliance: Arc<Compliance>,
        scheduler: Arc<Scheduler>,
        ledger: Arc<Ledger>,
        spill: Arc<Spill>,
        webhooks: Arc<crate::webhooks::Webhooks>,
    ) -> Admin {
        Admin {
            tokens: parking_lot::RwLock::new(Tokens::of(config)),
            scope_owner: parking_lot::RwLock::new(scope_owners(config)),
            limits: AdminLimits::from_config(&config.http),
            compliance,
            scheduler,
            ledger,
            spill,
            webhooks,
            events: None,
            cluster: None,
            campaigns: None,
        }
    }

    /// Serves `GET /admin/smpp` and its replay from these destinations.
    #[must_use]
    pub fn with_events(mut self, events: Arc<crate::events::EventHub>) -> Admin {
        self.events = Some(events);
        self
    }

    /// The SMPP door's destinations (`smpp`) of `tenant`, or of every
    /// tenant for `None`.
    fn smpp_destinations(&self, tenant: Option<&str>) -> Vec<Arc<crate::events::Endpoint>> {
        let Some(hub) = &self.events else {
            return Vec::new();
        };
        let mut list: Vec<_> = hub
            .endpoints()
            .into_iter()
            .filter(|e| **e.name() == *crate::smpp_server::ENDPOINT)
            .filter(|e| tenant.is_none_or(|t| **e.tenant() == *t))
            .collect();
        list.sort_by(|a, b| a.tenant().cmp(b.tenant()));
        list
    }

    /// Serves `GET /admin/cluster` for this node's cluster.
    #[must_use]
    pub fn with_cluster(mut self, cluster: Option<Arc<crate::cluster::Cluster>>) -> Admin {
        self.cluster = cluster;
        self
    }

    /// Serves `GET /admin/campaigns/{id}` from these figures and clicks.
    #[must_use]
    pub fn with_campaigns(mut self, campaigns: Arc<Campaigns>, links: Option<LinkStore>) -> Admin {
        self.campaigns = Some((campaigns, links));
        self
    }

    /// Whether any token is configured (else the API is off).
    pub fn is_on(&self) -> bool {
        let t = self.tokens.read();
        t.operator.is_some() || !t.tenants.is_empty()
    }

    /// Takes `config`'s tokens (a reload): the next call is checked
    /// against them; a token no longer configured is refused from now on.
    pub fn set_tokens(&self, config: &crate::config::Config) {
        *self.tokens.write() = Tokens::of(config);
        *self.scope_owner.write() = scope_owners(config);
    }

    /// The caller a token names. Every configured token is compared, in
    /// time independent of where they differ.
    pub fn principal(&self, token: &str) -> Option<Principal> {
        let mut found = None;
        let tokens = self.tokens.read();
        if let Some(op) = &tokens.operator
            && op.matches(token)
        {
            found = Some(Principal::Operator);
        }
        for (tenant, secret) in &tokens.tenants {
            if secret.matches(token) && found.is_none() {
                found = Some(Principal::Tenant(tenant.clone()));
            }
        }
        found
    }

    /// Whether `p` may see and change `scope`.
    pub fn may_scope(&self, p: &Principal, scope: &str) -> bool {
        match p {
            Principal::Operator => true,
            Principal::Tenant(t) => self
                .scope_owner
                .read()
                .get(scope)
                .is_some_and(|owner| owner.as_deref() == Some(&**t)),
        }
    }

    /// The routes under `/admin/`, behind the bearer-token check.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/admin/optouts", post(opt_add))
            .route("/admin/optouts/count", get(count))
            .route("/admin/optouts/export", get(export))
            .route("/admin/optouts/import", post(import))
            .route("/admin/optouts/{number}", get(check).delete(opt_remove))
            .route("/admin/imports", get(imports))
            .route("/admin/queues", get(queues))
            .route("/admin/cluster", get(cluster))
            .route("/admin/campaigns/{id}", get(campaign))
            .route("/admin/messages/{id}", get(message))
            .route("/admin/messages/{id}/history", get(message_history))
            .route("/admin/history", get(history_search))
            .route("/admin/carriers/{name}/{action}", post(carrier))
            .route("/admin/webhooks", get(webhooks))
            .route("/admin/smpp", get(smpp))
            .route("/admin/smpp/{tenant}/replay", post(smpp_replay))
            .route(
                "/admin/webhooks/{tenant}/{endpoint}/replay",
                post(webhook_replay),
            )
            .route("/admin/{*rest}", any(no_route))
            .route("/admin", any(no_route))
            .route_layer(middleware::from_fn_with_state(self.clone(), authenticate))
            .with_state(self)
    }

    async fn body(&self, body: Body, max: usize, deadline: Duration) -> Result<Bytes, Reply> {
        httpd::read_body(body, max, deadline).await.map_err(|e| {
            let status = match e {
                BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::TimedOut => StatusCode::REQUEST_TIMEOUT,
                _ => StatusCode::BAD_REQUEST,
            };
            let limit = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!(" (at most {max} bytes)")
            } else {
                String::new()
            };
            error(status, format!("body: {e}{limit}"))
        })
    }

    /// Which scopes of `number` `p` may see, and their audit entries.
    fn check(&self, p: &Principal, n: Msisdn) -> serde_json::Value {
        let scopes: Vec<String> = self
            .compliance
            .scopes_of(n)
            .into_iter()
            .filter(|s| self.may_scope(p, s))
            .collect();
        let audit: Vec<_> = self
            .compliance
            .audit(n)
            .into_iter()
            .filter(|a| self.may_scope(p, &a.scope))
            .collect();
        json!({ "number": n.to_string(), "suppressed": scopes, "audit": audit })
    }

    fn queues(&self) -> serde_json::Value {
        let mut carriers = serde_json::Map::new();
        for name in self.scheduler.carriers() {
            if let Some(q) = self.scheduler.queue(&name) {
                carriers.insert(
                    name.to_string(),
                    json!({ "paused": q.is_paused(), "held_quiet_hours": q.held(), "carrier_rate": q.carrier_rate(), "waiting": q.report() }),
                );
            }
        }
        let spilled: Vec<_> = self
            .spill
            .depths()
            .into_iter()
            .map(|(tenant, priority, n)| {
                json!({ "tenant": &*tenant, "priority": priority.as_str(), "messages": n })
            })
            .collect();
        json!({
            "carriers": carriers,
            "in_memory": self.scheduler.in_memory(),
            "spilled": spilled,
            "live": self.ledger.live(),
        })
    }

    /// Where one message is and why it waits.
    fn message(&self, id: MessageId) -> serde_json::Value {
        let Some(entry) = self.ledger.get(id) else {
            return if self.spill.may_hold(id) {
                json!({ "id": id.to_string(), "stage": "spilled",
                    "why": "queued on disk: the in-memory queues are full; paged in as they drain" })
            } else {
                json!({ "id": id.to_string(), "stage": "not live",
                    "why": "finished (its event went upstream), never accepted, or spilled in a batch being paged in" })
            };
        };
        let m = &entry.message;
        match &entry.stage {
            Stage::Queued => {
                let found = self.scheduler.carriers().into_iter().find_map(|c| {
                    let q = self.scheduler.queue(&c)?;
                    q.explain(m).map(|w| (c, q.is_paused(), w))
                });
                match found {
                    Some((carrier, paused, wait)) => json!({
                        "id": id.to_string(), "stage": "queued", "tenant": &*m.tenant,
                        "priority": m.priority.as_str(), "from": m.from.to_string(),
                        "carrier": &*carrier, "paused": paused, "waiting": wait,
                        "why": if paused { "its carrier is paused" } else { "waiting its turn and its permits (see waiting)" },
                    }),
                    None => json!({
                        "id": id.to_string(), "stage": "queued", "tenant": &*m.tenant,
                        "priority": m.priority.as_str(), "from": m.from.to_string(),
                        "why": "held for quiet hours, or being dispatched right now",
                    }),
                }
            }
            Stage::Dispatched(d) => {
                let (carrier, parts) = (&d.carrier, &d.parts);
                let open = parts
                    .iter()
                    .filter(|p| !matches!(p, crate::ledger::Part::Done(_)))
                    .count();
                json!({ "id": id.to_string(), "stage": "dispatched", "carrier": &**carrier,
                    "parts": parts.len(), "parts_open": open,
                    "why": "sent; waiting for the carrier's answer or delivery receipt" })
            }
        }
    }

    async fn opt(
        &self,
        p: &Principal,
        opted_out: bool,
        number: String,
        scope: Option<String>,
        note: String,
    ) -> Reply {
        let n = match Msisdn::parse(number.trim()) {
            Ok(n) => n,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("number {number:?}: {e}")),
        };
        let Some(scope) = scope else {
            return error(
                StatusCode::BAD_REQUEST,
                "scope is required (global, tenant:T or program:T:P)",
            );
        };
        if !self.may_scope(p, &scope) {
            return forbidden("change this scope");
        }
        if !self.compliance.is_scope(&scope) {
            return error(StatusCode::BAD_REQUEST, format!("unknown scope {scope:?}"));
        }
        let change = OptChange {
            number: n.as_u64(),
            scope: scope.clone(),
            opted_out,
            source: "api".into(),
            keyword: if note.is_empty() { "api".into() } else { note },
            sender: String::new(),
            carrier: String::new(),
            at_ms: now_ms(),
            origin: String::new(),
        };
        match self.compliance.change(change).await {
            Ok(changed) => reply(
                StatusCode::OK,
                json!({ "number": n.to_string(), "scope": scope, "opted_out": opted_out, "changed": changed }),
            ),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }
}

// === handlers ===

type AdminState = State<Arc<Admin>>;
type Caller = Extension<Principal>;

/// Resolves the caller from the bearer token (see the module doc).
async fn authenticate(State(admin): AdminState, mut req: Request, next: Next) -> Response {
    if !admin.is_on() {
        return error(
            StatusCode::NOT_FOUND,
            "the admin API is off (set http.admin_token or a tenant's admin_token)",
        );
    }
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    let Some(token) = given else {
        let mut r = error(StatusCode::UNAUTHORIZED, "missing bearer token");
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Bearer"),
        );
        return r;
    };
    match admin.principal(token) {
        Some(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        None => {
            let path = req.uri().path();
            tracing::warn!(target: TARGET, path = %crate::model::LogSafe::new(path), "admin call with a wrong token");
            error(StatusCode::FORBIDDEN, "wrong token")
        }
    }
}

async fn no_route(method: Method, req: Request) -> Reply {
    let path = req.uri().path().to_owned();
    error(
        StatusCode::NOT_FOUND,
        format!("no admin route {method} {}", for_log(&path)),
    )
}

async fn count(State(a): AdminState, Extension(p): Caller, Query(q): Query<ScopeQuery>) -> Reply {
    let n = match (&q.scope, &p) {
        (Some(s), _) if !a.may_scope(&p, s) => return forbidden("read this scope"),
        (Some(s), _) => a.compliance.count_scope(s),
        (None, Principal::Operator) => a.compliance.count(),
        (None, Principal::Tenant(_)) => return forbidden("count every scope (name one of yours)"),
    };
    let memory = match p {
        Principal::Operator => Some(a.compliance.memory_bytes()),
        Principal::Tenant(_) => None,
    };
    reply(
        StatusCode::OK,
        json!({ "count": n, "memory_bytes": memory }),
    )
}

async fn export(State(a): AdminState, Extension(p): Caller, Query(q): Query<ScopeQuery>) -> Reply {
    let Some(scope) = q.scope else {
        return error(StatusCode::BAD_REQUEST, "scope is required");
    };
    if !a.may_scope(&p, &scope) {
        return forbidden("read this scope");
    }
    let mut out = Vec::new();
    match a.compliance.export(&scope, &mut out) {
        Ok(_) => (StatusCode::OK, [(CONTENT_TYPE, "text/csv")], out).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn import(
    State(a): AdminState,
    Extension(p): Caller,
    Query(q): Query<ScopeQuery>,
    headers: hyper::HeaderMap,
    body: Body,
) -> Reply {
    let Some(scope) = q.scope else {
        return error(StatusCode::BAD_REQUEST, "scope is required");
    };
    if !a.may_scope(&p, &scope) {
        return forbidden("import into this scope");
    }
    let source = headers
        .get("x-source")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("upload")
        .chars()
        .take(200)
        .collect::<String>();
    let started = tokio::time::Instant::now();
    let limits = a.limits;
    let body = match a
        .body(body, limits.max_import_bytes, limits.import_timeout)
        .await
    {
        Ok(b) => b,
        Err(r) => return r,
    };
    // What is left of the deadline bounds the import itself; an import cut
    // short commits nothing (all-or-nothing).
    let left = limits.import_timeout.saturating_sub(started.elapsed());
    let run = a.compliance.import(&scope, &body[..], &source, |_| {});
    match tokio::time::timeout(left, run).await {
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            "import not applied within http.import_timeout; nothing was committed",
        ),
        Ok(Ok(report)) => reply(
            StatusCode::OK,
            json!({
                "scope": scope,
                "lines": report.progress.lines,
                "imported": report.progress.rows,
                "bad": report.progress.bad,
                "bad_rows": report.bad.iter().map(|b| json!({
                    "line": b.line, "raw": b.raw, "reason": b.reason.to_string()
                })).collect::<Vec<_>>(),
            }),
        ),
        Ok(Err(crate::compliance::ComplianceError::UnknownScope(s))) => {
            error(StatusCode::BAD_REQUEST, format!("unknown scope {s:?}"))
        }
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn check(State(a): AdminState, Extension(p): Caller, Path(number): Path<String>) -> Reply {
    match Msisdn::parse(number.trim()) {
        Ok(n) => reply(StatusCode::OK, a.check(&p, n)),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("number: {e}")),
    }
}

async fn opt_add(State(a): AdminState, Extension(p): Caller, body: Body) -> Reply {
    let limits = a.limits;
    let body = match a
        .body(body, limits.max_body_bytes, limits.body_timeout)
        .await
    {
        Ok(b) => b,
        Err(r) => return r,
    };
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
    };
    a.opt(
        &p,
        true,
        v["number"].as_str().unwrap_or_default().to_owned(),
        v["scope"].as_str().map(str::to_owned),
        v["note"].as_str().unwrap_or("api").to_owned(),
    )
    .await
}

async fn opt_remove(
    State(a): AdminState,
    Extension(p): Caller,
    Path(number): Path<String>,
    Query(q): Query<ScopeQuery>,
) -> Reply {
    a.opt(&p, false, number, q.scope, String::new()).await
}

async fn imports(State(a): AdminState, Extension(p): Caller) -> Reply {
    let list: Vec<_> = a
        .compliance
        .imports()
        .into_iter()
        .filter(|i| a.may_scope(&p, &i.scope))
        .collect();
    reply(StatusCode::OK, json!(list))
}

/// The cluster's nodes (operator only); 404 when not in cluster mode.
async fn cluster(State(a): AdminState, Extension(p): Caller) -> Reply {
    if p != Principal::Operator {
        return forbidden("read the cluster");
    }
    match &a.cluster {
        Some(c) => reply(StatusCode::OK, c.view().await),
        None => error(
            StatusCode::NOT_FOUND,
            "not in cluster mode ([cluster] redis_url)",
        ),
    }
}

async fn queues(State(a): AdminState, Extension(p): Caller) -> Reply {
    if p != Principal::Operator {
        return forbidden("read every tenant's queues");
    }
    reply(StatusCode::OK, a.queues())
}

/// Every webhook endpoint (the caller's own, for a tenant token) with the
/// events it holds: ready, in flight, dead-lettered.
async fn webhooks(State(a): AdminState, Extension(p): Caller) -> Reply {
    let tenant = match &p {
        Principal::Operator => None,
        Principal::Tenant(t) => Some(&**t),
    };
    let list: Vec<_> = a
        .webhooks
        .view(tenant)
        .into_iter()
        .map(|v| {
            json!({
                "tenant": &*v.tenant,
                "endpoint": &*v.name,
                "addr": v.addr,
                "ready": v.counts.ready,
                "in_flight": v.counts.in_flight,
                "dead": v.counts.dead,
            })
        })
        .collect();
    reply(StatusCode::OK, json!({ "endpoints": list }))
}

/// Puts an endpoint's dead letters back in its queue.
async fn webhook_replay(
    State(a): AdminState,
    Extension(p): Caller,
    Path((tenant, endpoint)): Path<(String, String)>,
) -> Reply {
    if !p.may_tenant(&tenant) {
        return forbidden("replay another tenant's webhooks");
    }
    match a.webhooks.replay(&tenant, &endpoint) {
        Some(n) => reply(StatusCode::OK, json!({ "replayed": n })),
        None => error(StatusCode::NOT_FOUND, "no such webhook endpoint"),
    }
}

/// Every tenant's SMPP destination (the caller's own, for a tenant token):
/// the receipts and inbound messages it holds for the tenant's binds.
async fn smpp(State(a): AdminState, Extension(p): Caller) -> Reply {
    let tenant = match &p {
        Principal::Operator => None,
        Principal::Tenant(t) => Some(&**t),
    };
    let list: Vec<_> = a
        .smpp_destinations(tenant)
        .into_iter()
        .map(|e| {
            let c = e.counts();
            json!({
                "tenant": &**e.tenant(),
                "ready": c.ready,
                "in_flight": c.in_flight,
                "dead": c.dead,
            })
        })
        .collect();
    reply(StatusCode::OK, json!({ "tenants": list }))
}

/// Puts a tenant's dead-lettered `deliver_sm` (answered with a passing error
/// too often) back in its queue, for its binds to take again.
async fn smpp_replay(
    State(a): AdminState,
    Extension(p): Caller,
    Path(tenant): Path<String>,
) -> Reply {
    if !p.may_tenant(&tenant) {
        return forbidden("replay another tenant's SMPP events");
    }
    let Some(e) = a.smpp_destinations(Some(&tenant)).pop() else {
        return error(StatusCode::NOT_FOUND, "the tenant has no SMPP destination");
    };
    let n = e.replay();
    tracing::info!(target: TARGET, tenant = %crate::model::LogSafe::new(&tenant), events = n,
        "SMPP dead letters replayed");
    reply(StatusCode::OK, json!({ "replayed": n }))
}

async fn message(State(a): AdminState, Extension(p): Caller, Path(id): Path<String>) -> Reply {
    let Ok(id) = id.parse::<MessageId>() else {
        return error(StatusCode::BAD_REQUEST, "message id: 16 hex digits");
    };
    match (&p, a.ledger.get(id)) {
        (Principal::Operator, _) => reply(StatusCode::OK, a.message(id)),
        (Principal::Tenant(_), Some(e)) if p.may_tenant(&e.message.tenant) => {
            reply(StatusCode::OK, a.message(id))
        }
        (Principal::Tenant(_), Some(_)) => forbidden("read another tenant's messages"),
        // Not in memory: finished, never accepted, spilled; which one is not
        // this tenant's to learn.
        (Principal::Tenant(_), None) => reply(
            StatusCode::OK,
            json!({ "id": id.to_string(), "stage": "not live",
                "why": "not among this tenant's live messages in memory (finished, never accepted, or spilled to disk)" }),
        ),
    }
}

/// Timelines `p` may see: a tenant only those whose accepted record
/// names it (a timeline whose accepted record is gone is the operator's).
fn visible(p: &Principal, timelines: Vec<crate::history::Timeline>) -> Vec<serde_json::Value> {
    timelines
        .into_iter()
        .filter(|t| match p {
            Principal::Operator => true,
            Principal::Tenant(_) => t.tenant().is_some_and(|owner| p.may_tenant(owner)),
        })
        .map(|t| t.to_json())
        .collect()
}

async fn message_history(
    State(a): AdminState,
    Extension(p): Caller,
    Path(id): Path<String>,
) -> Reply {
    let Ok(id) = id.parse::<MessageId>() else {
        return error(StatusCode::BAD_REQUEST, "message id: 16 hex digits");
    };
    let history = a.ledger.history();
    if !history.is_on() {
        return error(StatusCode::NOT_FOUND, "history is off (history.enabled)");
    }
    match history.lookup(crate::history::Query::Message(id)).await {
        Ok(found) => match visible(&p, found).into_iter().next() {
            Some(t) => reply(StatusCode::OK, t),
            None => error(StatusCode::NOT_FOUND, "no history for this message"),
        },
        Err(e) => {
            tracing::error!(target: TARGET, error = %e, "history lookup failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "history lookup failed")
        }
    }
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    client_ref: Option<String>,
    carrier_id: Option<String>,
    to: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// The lookup a `/admin/history` query string asks for.
fn history_query(q: &HistoryQuery, now: u64) -> Result<crate::history::Query, String> {
    use crate::history::Query;
    let ago = |what: &str, v: &Option<String>, default: Duration| -> Result<u64, String> {
        let d = match v {
            Some(s) => humantime::parse_duration(s)
                .map_err(|e| format!("{what}: a duration such as 1h or 30m ({e})"))?,
            None => default,
        };
        Ok(now.saturating_sub(d.as_millis().min(u64::MAX as u128) as u64))
    };
    match (&q.client_ref, &q.carrier_id, &q.to) {
        (Some(r), None, None) => {
            let (tenant, client_ref) = r.split_once(':').ok_or("client_ref: TENANT:REF")?;
            Ok(Query::ClientRef {
                tenant: tenant.into(),
                client_ref: client_ref.into(),
            })
        }
        (None, Some(c), None) => {
            let (carrier, id) = c.split_once(':').ok_or("carrier_id: CARRIER:ID")?;
            Ok(Query::CarrierId {
                carrier: carrier.into(),
                id: crate::history::query::normalize_carrier_id(id),
            })
        }
        (None, None, Some(to)) => {
            // A `+` the caller did not percent-encode arrives as a space.
            let digits = to.trim().trim_start_matches('+');
            let n = Msisdn::parse(&format!("+{digits}")).map_err(|e| format!("to: {e}"))?;
            Ok(Query::Recipient {
                to: n.as_u64(),
                since_ms: ago("since", &q.since, Duration::from_secs(86_400))?,
                until_ms: ago("until", &q.until, Duration::ZERO)?,
            })
        }
        _ => Err("exactly one of client_ref=TENANT:REF, carrier_id=CARRIER:ID or to=+E164".into()),
    }
}

#[derive(Debug, Deserialize)]
struct CampaignQuery {
    /// The campaign's tenant (the operator must say; a tenant's token
    /// means its own).
    tenant: Option<String>,
}

/// A campaign's figures side by side: delivered, clicks, clicking
/// recipients and click-through rate, preview fetches, opt-outs and opt-out
/// rate.
async fn campaign(
    State(a): AdminState,
    Extension(p): Caller,
    Path(id): Path<String>,
    Query(q): Query<CampaignQuery>,
) -> Reply {
    let tenant = match (&p, q.tenant) {
        (Principal::Tenant(t), None) => t.to_string(),
        (Principal::Operator, None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "say whose campaign: ?tenant=<name>",
            );
        }
        (_, Some(t)) if p.may_tenant(&t) => t,
        (_, Some(_)) => return forbidden("read another tenant's campaigns"),
    };
    let Some((campaigns, links)) = &a.campaigns else {
        return error(StatusCode::NOT_FOUND, "campaign figures are off");
    };
    let f = campaigns.figures(&tenant, &id);
    let c = links
        .as_ref()
        .map(|l| l.campaign(&tenant, &id))
        .unwrap_or_default();
    let rate = |n: u64| {
        if f.delivered == 0 {
            serde_json::Value::Null
        } else {
            json!(n as f64 / f.delivered as f64)
        }
    };
    reply(
        StatusCode::OK,
        json!({
            "tenant": tenant,
            "campaign_id": id,
            "delivered": f.delivered,
            "clicks": c.clicks,
            "clickers": c.clickers,
            "click_through_rate": rate(c.clickers),
            "previews": c.previews,
            "optouts": f.optouts,
            "optout_rate": rate(f.optouts),
        }),
    )
}

async fn history_search(
    State(a): AdminState,
    Extension(p): Caller,
    Query(q): Query<HistoryQuery>,
) -> Reply {
    let query = match history_query(&q, now_ms()) {
        Ok(query) => query,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let history = a.ledger.history();
    if !history.is_on() {
        return error(StatusCode::NOT_FOUND, "history is off (history.enabled)");
    }
    match history.lookup(query).await {
        Ok(found) => {
            let messages = visible(&p, found);
            let status = if messages.is_empty() {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            };
            reply(status, json!({ "messages": messages }))
        }
        Err(e) => {
            tracing::error!(target: TARGET, error = %e, "history lookup failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "history lookup failed")
        }
    }
}

async fn carrier(
    State(a): AdminState,
    Extension(p): Caller,
    Path((name, action)): Path<(String, String)>,
) -> Reply {
    if p != Principal::Operator {
        return forbidden("pause or resume carriers");
    }
    let pause = match action.as_str() {
        "pause" => true,
        "resume" => false,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "no admin route POST /admin/carriers/{}/{}",
                    for_log(&name),
                    for_log(&action)
                ),
            );
        }
    };
    match a.scheduler.queue(&name) {
        Some(q) => {
            q.set_paused(pause);
            tracing::info!(target: TARGET, carrier = %name, action = %action, "carrier traffic");
            reply(
                StatusCode::OK,
                json!({ "carrier": name, "paused": q.is_paused() }),
            )
        }
        None => error(
            StatusCode::NOT_FOUND,
            format!("no carrier {:?}", for_log(&name)),
        ),
    }
}

/// A client for the admin API (used by `sluice optout ...`): one HTTP/1.1
/// request on a fresh connection, `http://` or `https://` (trusting `tls`'s
/// roots, or the system's; `tls` may carry a client certificate).
///
/// # Errors
/// Connection, TLS or protocol failures; HTTP error statuses are returned,
/// not errors.
pub async fn call(
    base: &str,
    token: &str,
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    method: Method,
    path: &str,
    body: Bytes,
    content_type: &str,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let (secure, rest) = match (base.strip_prefix("https://"), base.strip_prefix("http://")) {
        (Some(r), _) => (true, r),
        (None, Some(r)) => (false, r),
        _ => anyhow::bail!("the admin URL must start with http:// or https://"),
    };
    let authority = rest.trim_end_matches('/').to_owned();
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", &authority)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .body(Full::new(body))?;
    let tcp = tokio::net::TcpStream::connect(&authority).await?;
    if !secure {
        return exchange(tcp, req).await;
    }
    let config = match tls {
        Some(c) => c,
        None => Arc::new(crate::smpp::tls::client_config(None)?),
    };
    let host = match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority.as_str(),
    };
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    exchange(stream, req).await
}

async fn exchange<S>(
    stream: S,
    req: hyper::Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests;
