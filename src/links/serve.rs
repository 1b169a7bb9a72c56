//! The redirect of a short link: `GET /{code}` on the public door answers
//! 302 to the original URL and records the click (durably: the click file
//! and the click event are synced before the answer goes out, with group
//! commit shared by every click meanwhile), or 404 for a code that names no
//! link, or 410 for one past its retention, each with a neutral page that
//! tells nothing about the link.
//!
//! A preview or crawler fetch ([`super::agent::is_preview`]) is redirected
//! the same way but counted apart (`sluice_link_previews_total`) and sends
//! no event. A link is answered only on its tenant's `link_url` host, or,
//! for a tenant without one, on the host of `mms.public_url`, so one
//! tenant's domain never resolves another tenant's codes. One link sends
//! at most [`MAX_CLICK_EVENTS`] click events and writes at most
//! [`super::store::MAX_RECORDED_CLICKS`] clicks (a flood of one code is
//! redirected and counted, not reported or stored click by click). Answers carry `Cache-Control: no-store` (each click must reach
//! the gateway) and `Referrer-Policy: no-referrer`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::agent;
use super::store::{Link, LinkStore, Lookup};
use crate::events::{ClickEvent, EventHub, Notice};
use crate::model::{LogSafe, now_ms};

const TARGET: &str = "sluice::links";

/// Longest user agent kept in a click event, characters.
const MAX_AGENT: usize = 256;
/// Click events per link at most (first and repeats); later clicks are
/// redirected and counted, not reported one by one.
pub const MAX_CLICK_EVENTS: u32 = 20;

/// What the redirect needs.
#[derive(Debug)]
pub struct Redirects {
    /// The links.
    pub store: LinkStore,
    /// Where click events go.
    pub hub: Arc<EventHub>,
    /// Tenants with a `link_url` of their own → its host (lowercase, with
    /// the port when it has one); replaced by a reload.
    pub hosts: parking_lot::RwLock<HashMap<String, String>>,
    /// The host of `mms.public_url`: where the links of tenants without a
    /// `link_url` are answered (`None`: any host).
    pub default_host: Option<String>,
}

impl Redirects {
    /// Whether a request with these headers may open `tenant`'s links: on
    /// the tenant's own host, or the public host for tenants without one.
    pub fn serves(&self, tenant: &str, headers: &hyper::HeaderMap) -> bool {
        match self.hosts.read().get(tenant).or(self.default_host.as_ref()) {
            Some(host) => host_is(headers, host),
            None => true,
        }
    }
}

/// The route: `/{code}`, every method (GET and HEAD are served, the rest
/// answered 405).
pub fn router(redirects: Arc<Redirects>) -> axum::Router {
    let handler = move |req: axum::extract::Request| {
        let r = redirects.clone();
        async move { serve(req, &r).await }
    };
    axum::Router::new().route("/{code}", axum::routing::any(handler))
}

/// Answers one request for a short link (see the module doc).
pub async fn serve<B>(req: Request<B>, r: &Redirects) -> Response<Full<Bytes>> {
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut resp = page(
                StatusCode::METHOD_NOT_ALLOWED,
                "This link only opens in a browser.",
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
    };
    let code = req.uri().path().trim_start_matches('/');
    let now = now_ms();
    // A link of the head segment (recent, in the page cache, its files
    // open) is two positioned reads: cheaper inline than the hand-off to a
    // blocking thread, which cost a third of the redirect rate in `cargo
    // bench --bench links`. Older links may need the disk.
    let found = match r.store.lookup_cached(code, now) {
        Some(found) => found,
        None => {
            let (store, code) = (r.store.clone(), code.to_owned());
            tokio::task::spawn_blocking(move || store.lookup(&code, now))
                .await
                .unwrap_or(Lookup::Unknown)
        }
    };
    let link = match found {
        Lookup::Unknown => return not_found(head),
        Lookup::Expired => {
            metrics::counter!("sluice_link_expired_total").increment(1);
            return strip(head, page(StatusCode::GONE, "This link has expired."));
        }
        Lookup::Found(link) => link,
    };
    if !r.serves(&link.tenant, req.headers()) {
        return not_found(head);
    }
    let preview = agent::is_preview(head, req.headers());
    let (clicked, ticket) = r.store.click(&link, preview, now);
    if preview {
        metrics::counter!("sluice_link_previews_total", "tenant" => link.tenant.clone())
            .increment(1);
    } else {
        metrics::counter!("sluice_clicks_total",
            "tenant" => link.tenant.clone(), "campaign" => link.campaign.clone())
        .increment(1);
        if clicked.first_of_message {
            metrics::counter!("sluice_link_clickers_total",
                "tenant" => link.tenant.clone(), "campaign" => link.campaign.clone())
            .increment(1);
        }
        let ip = req
            .extensions()
            .get::<crate::httpd::ConnInfo>()
            .map(|c| agent::ip_class(c.peer.ip()))
            .unwrap_or_default();
        // A flood of one code sends no flood of events upstream.
        if clicked.count <= MAX_CLICK_EVENTS {
            let notice = Notice::Click(click_event(&link, clicked.first, now, req.headers(), ip));
            let publish = r.hub.publish_notice(&link.tenant, &notice);
            let store = r.store.clone();
            let stored = async move {
                match ticket {
                    Some(t) => store.durable(t).await,
                    None => Ok(()),
                }
            };
            let (stored, published) = tokio::join!(stored, publish.wait());
            if let Err(e) = stored {
                tracing::error!(target: TARGET, error = %e, "click not recorded");
                metrics::counter!("sluice_click_record_failures_total").increment(1);
            }
            if let Err(e) = published {
                tracing::error!(target: TARGET, error = %e, "click event not stored");
                metrics::counter!("sluice_click_record_failures_total").increment(1);
            }
        } else {
            metrics::counter!("sluice_link_clicks_unreported_total").increment(1);
        }
    }
    redirect(head, &link.url)
}

fn click_event(
    link: &Link,
    first: bool,
    at_ms: u64,
    headers: &hyper::HeaderMap,
    ip_class: String,
) -> ClickEvent {
    let agent = headers
        .get(header::USER_AGENT)
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(MAX_AGENT)
                .collect()
        })
        .unwrap_or_default();
    ClickEvent {
        message_id: link.message_id.0,
        client_ref: link.client_ref.clone(),
        campaign: link.campaign.clone(),
        number: format!("+{}", link.to),
        link_index: link.index,
        url: link.url.clone(),
        first,
        at_ms,
        user_agent: agent,
        ip_class,
    }
}

/// Whether the request's `Host` is `host`.
fn host_is(headers: &hyper::HeaderMap, host: &str) -> bool {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.eq_ignore_ascii_case(host))
}

/// The host (and port) of a base URL, lowercase; `None` when it has none.
pub fn host_of(base: &str) -> Option<String> {
    let rest = base.split_once("://")?.1;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// `url` as a `Location` value: bytes outside printable ASCII
/// percent-encoded (a URL written in a text may hold any character).
pub fn location(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for &b in url.as_bytes() {
        if (0x21..0x7f).contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn redirect(head: bool, url: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::FOUND;
    match HeaderValue::from_str(&location(url)) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => {
            tracing::warn!(target: TARGET, url = %LogSafe::new(url), "stored URL is not a valid Location");
            return not_found(head);
        }
    }
    common(resp.headers_mut());
    resp
}

fn not_found(head: bool) -> Response<Full<Bytes>> {
    strip(head, page(StatusCode::NOT_FOUND, "This link is not valid."))
}

fn strip(head: bool, mut resp: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    if head {
        *resp.body_mut() = Full::new(Bytes::new());
    }
    resp
}

fn common(h: &mut hyper::HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// A neutral page: a title and nothing about the link.
fn page(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{text}</title></head>\
         <body style=\"font-family:system-ui,sans-serif;margin:2em\"><p>{text}</p></body></html>\n"
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    common(h);
    resp
}
