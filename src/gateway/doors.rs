//! The gateway's HTTP doors, and the TLS of every listener:
//!
//! - the **internal door** (`[http]`): `/metrics`, `/healthz`, `/readyz`
//!   and the admin API, for operators and scrapers;
//! - the **public door** (`[public]`): the landing pages of SMS-fallback
//!   links and the redirects of tracked links ([`crate::links::serve`]),
//!   and nothing else;
//! - the **API door** (`[api]`, off by default): the tenants' HTTP/JSON API
//!   ([`crate::api`]);
//! - the **gRPC door** (`[grpc]`, off by default): the tenants' gRPC
//!   service ([`crate::grpc`]), on tonic rather than [`crate::httpd`], with
//!   the same [`Door`] and TLS;
//!
//! each an axum router on [`crate::httpd`] with the section's connection
//! cap, header, body and idle timeouts, and its TLS (reloaded on SIGHUP and
//! on file change).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::StatusCode;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

use crate::config::{Config, ListenerTls, MmscConfig};
use crate::door::Door;
use crate::httpd::{self, HttpLimits};
use crate::tls::ServerTls;

/// ALPN of the HTTP doors.
const HTTP_ALPN: &[&[u8]] = &[b"http/1.1"];

/// Loads a listener's TLS (when configured) and starts its reload watch.
///
/// # Errors
/// A certificate, key or client CA file is unusable.
pub(super) fn server_tls(
    name: &str,
    files: Option<ListenerTls>,
    http: bool,
    config: &Config,
) -> anyhow::Result<Option<Arc<ServerTls>>> {
    let Some(files) = files else { return Ok(None) };
    let alpn = if http { HTTP_ALPN } else { &[] };
    let tls =
        ServerTls::load(name, &files, alpn).map_err(|e| anyhow::anyhow!("{name} TLS: {e}"))?;
    tls.watch(config.tls.reload_interval);
    Ok(Some(tls))
}

/// Binds and serves the internal door (`[http]`); its address, if enabled.
///
/// # Errors
/// TLS files unusable, or the address cannot be bound.
pub(super) async fn internal(
    config: &Config,
    health: Arc<crate::telemetry::Health>,
    admin: Arc<crate::admin::Admin>,
    stop: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<Option<SocketAddr>> {
    let h = &config.http;
    let Some(addr) = h.listen else {
        return Ok(None);
    };
    let tls = server_tls("http", h.tls(), true, config)?;
    let router = crate::telemetry::router(health)
        .layer(deadline(h.body_timeout))
        // The admin routes carry their own body deadlines (imports are long).
        .merge(admin.router());
    let door = Door::bind("http", addr, tls, h.max_connections).await?;
    let local = door.local_addr()?;
    let limits = HttpLimits {
        header_timeout: h.header_timeout,
        idle_timeout: h.idle_timeout,
    };
    tasks.spawn(httpd::serve_router(door, limits, router, stop.clone()));
    Ok(Some(local))
}

/// Binds and serves the public door (`[public]`); its address, if enabled.
///
/// # Errors
/// TLS files unusable, or the address cannot be bound.
pub(super) async fn public(
    config: &Config,
    media: Arc<crate::media::store::MediaStore>,
    links: Arc<crate::media::link::LinkSigner>,
    redirects: Option<Arc<crate::links::serve::Redirects>>,
    stop: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<Option<SocketAddr>> {
    let p = &config.public;
    let Some(addr) = p.listen else {
        return Ok(None);
    };
    let tls = server_tls("public", p.tls(), true, config)?;
    let mut router: Router = crate::media::page::router(media, links);
    if let Some(r) = redirects {
        router = router.merge(crate::links::serve::router(r));
    }
    let router = router.layer(deadline(p.body_timeout));
    let door = Door::bind("public", addr, tls, p.max_connections).await?;
    let local = door.local_addr()?;
    let limits = HttpLimits {
        header_timeout: p.header_timeout,
        idle_timeout: p.idle_timeout,
    };
    tasks.spawn(httpd::serve_router(door, limits, router, stop.clone()));
    Ok(Some(local))
}

/// Binds and serves the tenants' HTTP/JSON API (`[api]`); its address, if
/// enabled.
///
/// # Errors
/// TLS files unusable, or the address cannot be bound.
pub(super) async fn api(
    config: &Config,
    backend: Arc<dyn crate::api::ApiBackend>,
    stop: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<Option<SocketAddr>> {
    let a = &config.api;
    let Some(addr) = a.listen else {
        return Ok(None);
    };
    let tls = server_tls("api", a.tls(), true, config)?;
    let limits = crate::api::ApiLimits {
        max_body_bytes: a.max_body_bytes,
        max_media_bytes: a.max_media_bytes,
        body_timeout: a.body_timeout,
        max_batch: config.ingest.max_batch_messages as usize,
        auth: crate::ingest::door::DoorConfig::from_config(&config.ingest).throttle(),
    };
    // The body deadline answers 408 itself; this one bounds the answer.
    let router: Router =
        crate::api::router(backend, limits).layer(deadline(a.body_timeout + a.body_timeout));
    let door = Door::bind("api", addr, tls, a.max_connections)
        .await?
        .per_address(a.max_connections_per_ip);
    let local = door.local_addr()?;
    let limits = HttpLimits {
        header_timeout: a.header_timeout,
        idle_timeout: a.idle_timeout,
    };
    tasks.spawn(httpd::serve_router(door, limits, router, stop.clone()));
    Ok(Some(local))
}

/// ALPN of the gRPC door.
const GRPC_ALPN: &[&[u8]] = &[b"h2"];

/// Binds and serves the tenants' gRPC service (`[grpc]`) as a task of
/// `tasks` that stops with `shutdown`; its address, if enabled.
///
/// # Errors
/// TLS files unusable, or the address cannot be bound.
pub(super) async fn grpc(
    config: &Config,
    backend: Arc<super::Gateway>,
    shutdown: &tokio::sync::watch::Receiver<bool>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<Option<SocketAddr>> {
    let g = &config.grpc;
    let Some(addr) = g.listen else {
        return Ok(None);
    };
    let tls = match g.tls() {
        Some(files) => {
            let tls = ServerTls::load("grpc", &files, GRPC_ALPN)
                .map_err(|e| anyhow::anyhow!("grpc TLS: {e}"))?;
            tls.watch(config.tls.reload_interval);
            Some(tls)
        }
        None => None,
    };
    let cert_required = tls.as_ref().is_some_and(|t| t.requires_client_cert());
    let limits = crate::grpc::GrpcLimits {
        max_batch: config.ingest.max_batch_messages as usize,
        event_window: config.ingest.event_window,
        subscribe_timeout: g.subscribe_timeout,
        max_message_bytes: g.max_message_bytes,
        max_concurrent_streams: g.max_concurrent_streams,
        handshake_timeout: g.handshake_timeout,
        idle_timeout: g.idle_timeout,
        auth: crate::ingest::door::DoorConfig::from_config(&config.ingest).throttle(),
    };
    let door = Door::bind("grpc", addr, tls, g.max_connections)
        .await?
        .per_address(g.max_connections_per_ip);
    let local = door.local_addr()?;
    tasks.spawn(crate::grpc::serve(
        door,
        backend,
        limits,
        cert_required,
        shutdown.clone(),
    ));
    Ok(Some(local))
}

/// Binds and serves the SMPP server door (`[smpp_server]`); its address,
/// if enabled, with its accounts (replaced on reload).
///
/// # Errors
/// TLS files unusable, or the address cannot be bound.
pub(super) async fn smpp_server(
    config: &Config,
    backend: Arc<super::Gateway>,
    shutdown: &tokio::sync::watch::Receiver<bool>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<Option<(SocketAddr, Arc<crate::smpp_server::Accounts>)>> {
    let c = &config.smpp_server;
    let Some(addr) = c.listen else {
        return Ok(None);
    };
    let tls = server_tls("smpp_server", c.tls(), false, config)?;
    let accounts = Arc::new(crate::smpp_server::Accounts::new(smpp_accounts(config)));
    let limits = crate::smpp_server::SmppServerLimits {
        system_id: c.system_id.clone(),
        handshake_timeout: c.handshake_timeout,
        bind_timeout: c.bind_timeout,
        enquire_link_interval: c.enquire_link_interval,
        response_timeout: c.response_timeout,
        window: c.window,
        max_pending_submits: c.max_pending_submits,
        max_batch: config.ingest.max_batch_messages as usize,
        reassembly_timeout: c.reassembly_timeout,
        max_pdu_bytes: c.max_pdu_bytes,
        auth: crate::ingest::door::DoorConfig::from_config(&config.ingest).throttle(),
        cert_required: tls.as_ref().is_some_and(|t| t.requires_client_cert()),
    };
    let door = Door::bind("smpp_server", addr, tls, c.max_connections)
        .await?
        .per_address(c.max_connections_per_ip);
    let local = door.local_addr()?;
    tasks.spawn(crate::smpp_server::serve(
        door,
        backend,
        accounts.clone(),
        limits,
        shutdown.clone(),
    ));
    Ok(Some((local, accounts)))
}

/// The SMPP server's accounts: the tenants with `smpp_system_id` and
/// `smpp_password`.
pub(super) fn smpp_accounts(config: &Config) -> Vec<crate::smpp_server::Account> {
    config
        .tenants
        .iter()
        .filter_map(|t| {
            Some(crate::smpp_server::Account {
                tenant: Arc::from(t.name.as_str()),
                system_id: t.smpp_system_id.clone()?,
                password: t.smpp_password.clone()?,
            })
        })
        .collect()
}

/// A request not answered within `d` gets 408.
fn deadline(d: Duration) -> TimeoutLayer {
    TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, d)
}

/// Binds and serves an MMSC's callback receiver (`callback_listen`), if
/// configured: its credentials, allowed networks, limits and TLS.
///
/// # Errors
/// TLS files are unusable, or the address cannot be bound.
pub(super) fn mm7_callbacks(
    m: &MmscConfig,
    callbacks: crate::inbound::mmsc::MmscCallbacks,
    config: &Config,
) -> anyhow::Result<Option<crate::mm7::Mm7Server>> {
    let Some(listen) = m.callback_listen else {
        return Ok(None);
    };
    let tls = server_tls(
        &format!("mmsc {} callbacks", m.name),
        m.callback_tls(),
        true,
        config,
    )?;
    let server = crate::mm7::serve_now(
        crate::mm7::ServerConfig {
            listen,
            tls,
            ..callback_checks(m)
        },
        Arc::new(callbacks),
    )?;
    Ok(Some(server))
}

/// What MMSC `m`'s callback receiver checks each request against (its
/// credentials, allowed networks, body limits, version) and its other
/// limits (no address or TLS: those of the listener as started).
pub(super) fn callback_checks(m: &MmscConfig) -> crate::mm7::ServerConfig {
    let credentials = match (&m.callback_username, &m.callback_password) {
        (Some(u), Some(p)) => Some(crate::mm7::Credentials {
            username: u.clone(),
            password: p.expose().to_owned(),
        }),
        _ => None,
    };
    crate::mm7::ServerConfig {
        credentials,
        allow: m.callback_allow.clone(),
        max_body: m.callback_max_body_bytes,
        version: m.version,
        header_read_timeout: m.callback_header_timeout,
        body_timeout: m.callback_body_timeout,
        idle_timeout: m.callback_idle_timeout,
        max_connections: m.callback_max_connections,
        ..crate::mm7::ServerConfig::default()
    }
}
