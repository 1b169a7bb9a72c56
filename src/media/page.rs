//! The landing pages of SMS fallback links, a hyper handler for `GET|HEAD`
//! of:
//!
//! - `/p/{code}`: a fallback's landing page, the whole message
//!   ([`super::landing::LandingPage`], HTML in [`render`]), and
//!   `/p/{code}/{n}`, its `n`-th media item (from 1);
//! - for links sent by earlier versions: `/m/{message_id}/{token}` (every
//!   media item a message recorded, [`MediaStore::page`]),
//!   `/m/{message_id}/{media_id}/{token}` (one media item) and
//!   `…/{media_id}/{token}/raw` (the media itself).
//!
//! The code or the signed path is the authority ([`LinkSigner::verify`]),
//! so the store lookup is not tenant-scoped. A bad code or token, a
//! malformed path and unknown media all answer the same 404, so the
//! endpoint tells nothing about which ids exist.
//!
//! Headers: the page is `text/html; charset=utf-8`, `Cache-Control: private,
//! max-age=86400`; the raw bytes carry their sniffed type, `Cache-Control:
//! public, max-age=31536000, immutable` (content-addressed, so it never
//! changes) and `ETag: "<media id>"`, honour `If-None-Match` (304) and single
//! byte ranges (206; iOS Safari will not play a `<video>` from a server
//! without them). Every answer has `X-Content-Type-Options: nosniff` and
//! `Referrer-Policy: no-referrer`; the page has a Content-Security-Policy
//! allowing only its own media and inline style.
//!
//! A page points at the raw bytes with relative URLs (`{code}/{n}`,
//! `{token}/raw`), so it works behind a reverse proxy that mounts it under a
//! prefix.
//!
//! [`router`] is what the public door serves besides the short links of
//! [`crate::links::serve`] (single-segment paths): `/p/...`, `/m/...` and a
//! 404 for anything else (so neither `/metrics` nor `/admin` is reachable
//! there).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::link::{LinkSigner, is_landing_code};
use super::sniff::MediaType;
use super::store::{Media, MediaId, MediaStore};

mod render;

const TARGET: &str = "sluice::media::page";

const PAGE_CACHE: &str = "private, max-age=86400";
const RAW_CACHE: &str = "public, max-age=31536000, immutable";
const CSP: &str = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The public door's routes: every method on `/m/...` goes to [`serve`]
/// (which allows GET and HEAD); any other path is a plain-text 404.
pub fn router(store: Arc<MediaStore>, signer: Arc<LinkSigner>) -> axum::Router {
    let page = move |req: axum::extract::Request| {
        let (store, signer) = (store.clone(), signer.clone());
        async move { serve(req, &store, &signer).await }
    };
    axum::Router::new()
        .route("/m/{*link}", axum::routing::any(page.clone()))
        .route("/p/{*link}", axum::routing::any(page))
        .fallback(|| async { plain(StatusCode::NOT_FOUND, "not found\n") })
}

/// Answers one landing-page request (see the module doc). Never fails: every
/// problem is an HTTP status. Cache misses read the store on
/// `spawn_blocking`.
pub async fn serve<B>(
    req: Request<B>,
    store: &Arc<MediaStore>,
    signer: &LinkSigner,
) -> Response<Full<Bytes>> {
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
    };
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix("/p/") {
        let mut resp = landing(req.headers(), store, rest).await;
        if head {
            *resp.body_mut() = Full::new(Bytes::new());
        }
        return resp;
    }
    let (link, raw) = match path.strip_suffix("/raw") {
        Some(link) => (link, true),
        None => (path, false),
    };
    if let Some(message_id) = signer.verify_page(link) {
        if raw {
            return not_found();
        }
        let Some(mut resp) = message_page(store, signer, message_id).await else {
            return not_found();
        };
        if head {
            *resp.body_mut() = Full::new(Bytes::new());
        }
        return resp;
    }
    let Some((_message_id, media_id)) = signer.verify(link) else {
        return not_found();
    };
    let Some(media) = lookup(store, &media_id).await else {
        return not_found();
    };
    let mut resp = if raw {
        raw_response(req.headers(), &media)
    } else {
        page_response(&media, link)
    };
    if head {
        *resp.body_mut() = Full::new(Bytes::new());
    }
    resp
}

async fn lookup(store: &Arc<MediaStore>, media_id: &str) -> Option<Media> {
    let id = MediaId::parse(media_id).ok()?;
    if let Some(media) = store.get_cached(id) {
        return Some(media);
    }
    let store = Arc::clone(store);
    let id = id.to_hex();
    match tokio::task::spawn_blocking(move || store.get_unscoped(&id)).await {
        Ok(Ok(media)) => Some(media),
        Ok(Err(e)) => {
            tracing::debug!(target: TARGET, error = %e, "landing-page media lookup failed");
            None
        }
        Err(e) => {
            tracing::error!(target: TARGET, error = %e, "landing-page lookup task failed");
            None
        }
    }
}

// === responses ===

fn base(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let len = body.len();
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut resp = base(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(text.as_bytes()),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn not_found() -> Response<Full<Bytes>> {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

fn page_response(media: &Media, link: &str) -> Response<Full<Bytes>> {
    let token = link.rsplit('/').next().unwrap_or("");
    html_response(render::media_only(&[(
        media.clone(),
        format!("{token}/raw"),
    )]))
}

fn html_response(html: String) -> Response<Full<Bytes>> {
    let mut resp = base(
        StatusCode::OK,
        "text/html; charset=utf-8",
        Bytes::from(html),
    );
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(PAGE_CACHE));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// A landing page (`/p/{code}`) or its `n`-th media item from 1
/// (`/p/{code}/{n}`, linked from the page relatively).
async fn landing(
    headers: &header::HeaderMap,
    store: &Arc<MediaStore>,
    rest: &str,
) -> Response<Full<Bytes>> {
    let (code, item) = match rest.split_once('/') {
        // One spelling per item: digits, no leading zero.
        Some((code, n)) if n.bytes().all(|c| c.is_ascii_digit()) && !n.starts_with('0') => {
            match n.parse::<usize>() {
                Ok(n) => (code, Some(n)),
                Err(_) => return not_found(),
            }
        }
        Some(_) => return not_found(),
        None => (rest, None),
    };
    if !is_landing_code(code) {
        return not_found();
    }
    let page = {
        let (store, code) = (Arc::clone(store), code.to_owned());
        match tokio::task::spawn_blocking(move || store.landing(&code)).await {
            Ok(Some(page)) => page,
            _ => return not_found(),
        }
    };
    let ids: Vec<String> = page.media_ids().map(|id| id.to_hex()).collect();
    if let Some(n) = item {
        let Some(id) = ids.get(n - 1) else {
            return not_found();
        };
        return match lookup(store, id).await {
            Some(media) => raw_response(headers, &media),
            None => not_found(),
        };
    }
    match items(store, &ids, |i, _| format!("{code}/{}", i + 1)).await {
        Some(items) => html_response(render::landing(&page, &items)),
        None => not_found(),
    }
}

/// The media `ids` (hex), each with the URL `url(index, id)` names its
/// bytes by; `None` when one is not in the store.
async fn items(
    store: &Arc<MediaStore>,
    ids: &[String],
    url: impl Fn(usize, &str) -> String,
) -> Option<Vec<(Media, String)>> {
    let mut items = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        items.push((lookup(store, id).await?, url(i, id)));
    }
    Some(items)
}

/// The page of a whole message (`/m/{message_id}/{token}`): every media
/// item it recorded, in order, each from its own signed raw path (relative
/// to the page, so the page works under a proxy's prefix).
async fn message_page(
    store: &Arc<MediaStore>,
    signer: &LinkSigner,
    message_id: u64,
) -> Option<Response<Full<Bytes>>> {
    let ids = {
        let store = Arc::clone(store);
        tokio::task::spawn_blocking(move || store.page(message_id))
            .await
            .ok()??
    };
    let ids: Vec<String> = ids.iter().map(MediaId::to_hex).collect();
    let items = items(store, &ids, |_, hex| {
        format!("{hex}/{}/raw", signer.token(message_id, hex))
    })
    .await?;
    Some(html_response(render::media_only(&items)))
}

fn raw_response(headers: &header::HeaderMap, media: &Media) -> Response<Full<Bytes>> {
    let etag = format!("\"{}\"", media.id);
    let total = media.bytes.len();
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, &etag));
    let mut resp = if not_modified {
        let mut r = base(
            StatusCode::NOT_MODIFIED,
            media.media_type.content_type_header(),
            Bytes::new(),
        );
        // A 304 describes the representation; no length of its own.
        r.headers_mut().remove(header::CONTENT_LENGTH);
        r
    } else {
        // If-Range with another validator: the whole content.
        let if_range_ok = headers
            .get(header::IF_RANGE)
            .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == etag));
        let range = if if_range_ok {
            headers
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .map(|v| parse_range(v, total))
        } else {
            None
        };
        match range {
            Some(RangeAnswer::Part(start, end)) => {
                let mut r = base(
                    StatusCode::PARTIAL_CONTENT,
                    media.media_type.content_type_header(),
                    media.bytes.slice(start..=end),
                );
                if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{total}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                r
            }
            Some(RangeAnswer::Unsatisfiable) => {
                let mut r = plain(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable\n");
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return r;
            }
            Some(RangeAnswer::Whole) | None => base(
                StatusCode::OK,
                media.media_type.content_type_header(),
                media.bytes.clone(),
            ),
        }
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(RAW_CACHE));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    resp
}

/// `If-None-Match`: `*` or a list of entity tags, compared weakly.
fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

#[derive(Debug, PartialEq, Eq)]
enum RangeAnswer {
    /// Serve the whole content (no usable range: malformed or several).
    Whole,
    /// Serve bytes `start..=end`.
    Part(usize, usize),
    /// 416.
    Unsatisfiable,
}

/// Parses a `Range` header for content of `total` bytes: one range
/// (`a-b`, `a-`, `-n`); anything else is served whole, as RFC 9110 allows.
fn parse_range(value: &str, total: usize) -> RangeAnswer {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<usize> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        // Saturate: a huge number is just "past the end".
        Some(s.parse::<usize>().unwrap_or(usize::MAX))
    };
    let (start, end) = if a.is_empty() {
        // Suffix: the last n bytes.
        let Some(n) = num(b) else {
            return RangeAnswer::Whole;
        };
        if n == 0 || total == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        (total.saturating_sub(n), total - 1)
    } else {
        let Some(start) = num(a) else {
            return RangeAnswer::Whole;
        };
        let end = if b.is_empty() {
            usize::MAX
        } else {
            match num(b) {
                Some(end) if end >= start => end,
                _ => return RangeAnswer::Whole,
            }
        };
        if start >= total {
            return RangeAnswer::Unsatisfiable;
        }
        (start, end.min(total - 1))
    };
    // A range covering everything is still answered 206: some players
    // (Safari's first `bytes=0-1`, then `bytes=0-`) expect it.
    RangeAnswer::Part(start, end)
}

#[cfg(test)]
mod tests;
