//! The HTTP admin API (JSON, bearer-token auth), served beside `/metrics`:
//!
//! | method & path | does |
//! | --- | --- |
//! | `GET /admin/optouts/{number}` | scopes the number is suppressed in, and its audit trail |
//! | `POST /admin/optouts` `{"number", "scope", "note"?}` | opt a number out (source `api`) |
//! | `DELETE /admin/optouts/{number}?scope=S` | opt it back in |
//! | `GET /admin/optouts/count[?scope=S]` | how many numbers are suppressed |
//! | `POST /admin/optouts/import?scope=S` (CSV body, `x-source` header) | bulk import, all-or-nothing, bad rows by line |
//! | `GET /admin/optouts/export?scope=S` | CSV `number,scope` |
//! | `GET /admin/imports` | committed imports |
//! | `POST /admin/carriers/{name}/pause`, `.../resume` | hold or release a carrier's traffic |
//! | `GET /admin/queues` | per carrier: queued, held, paused, and why messages wait; spilled per tenant |
//! | `GET /admin/messages/{id}` | where one message is (queued, spilled, dispatched) and what it waits for |
//!
//! Without `Authorization: Bearer <token>` a call gets 401; with a wrong
//! token 403. Without `http.admin_token` configured the API answers 404.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::compliance::Compliance;
use crate::config::Secret;
use crate::journal::OptChange;
use crate::ledger::{Ledger, Stage};
use crate::model::{MessageId, Msisdn, now_ms};
use crate::schedule::Scheduler;
use crate::spill::Spill;

/// Largest request body (an import of tens of millions of rows fits).
pub const MAX_BODY: usize = 1 << 30;

/// What the admin API works on.
#[derive(Debug)]
pub struct Admin {
    token: Option<Secret>,
    compliance: Arc<Compliance>,
    scheduler: Arc<Scheduler>,
    ledger: Arc<Ledger>,
    spill: Arc<Spill>,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: serde_json::Value) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static parts are valid")
}

fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    reply(status, json!({ "error": message.into() }))
}

fn query_param(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Admin {
    /// An admin API; `token` `None` turns it off.
    pub fn new(
        token: Option<Secret>,
        compliance: Arc<Compliance>,
        scheduler: Arc<Scheduler>,
        ledger: Arc<Ledger>,
        spill: Arc<Spill>,
    ) -> Admin {
        Admin {
            token,
            compliance,
            scheduler,
            ledger,
            spill,
        }
    }

    /// Handles a request under `/admin/`.
    pub async fn handle(&self, req: Request<Incoming>) -> Reply {
        let Some(token) = &self.token else {
            return error(
                StatusCode::NOT_FOUND,
                "the admin API is off (set http.admin_token)",
            );
        };
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            None => return error(StatusCode::UNAUTHORIZED, "missing bearer token"),
            Some(t) if !crate::ingest::secret_eq(t, token.expose()) => {
                tracing::warn!(target: "sluice::admin", path = %crate::model::LogSafe::new(req.uri().path()), "admin call with a wrong token");
                return error(StatusCode::FORBIDDEN, "wrong token");
            }
            Some(_) => {}
        }
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let parts: Vec<&str> = path.trim_start_matches("/admin/").split('/').collect();
        match (req.method().clone(), parts.as_slice()) {
            (Method::GET, ["optouts", "count"]) => {
                let n = match query_param(&req, "scope") {
                    Some(s) => self.compliance.count_scope(&s),
                    None => self.compliance.count(),
                };
                reply(
                    StatusCode::OK,
                    json!({ "count": n, "memory_bytes": self.compliance.memory_bytes() }),
                )
            }
            (Method::GET, ["optouts", "export"]) => {
                let Some(scope) = query_param(&req, "scope") else {
                    return error(StatusCode::BAD_REQUEST, "scope is required");
                };
                let mut out = Vec::new();
                match self.compliance.export(&scope, &mut out) {
                    Ok(_) => Response::builder()
                        .status(StatusCode::OK)
                        .header("content-type", "text/csv")
                        .body(Full::new(Bytes::from(out)))
                        .expect("static parts are valid"),
                    Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
                }
            }
            (Method::POST, ["optouts", "import"]) => self.import(req).await,
            (Method::GET, ["optouts", number]) => match Msisdn::parse(&percent_decode(number)) {
                Ok(n) => reply(
                    StatusCode::OK,
                    json!({
                        "number": n.to_string(),
                        "suppressed": self.compliance.scopes_of(n),
                        "audit": self.compliance.audit(n),
                    }),
                ),
                Err(e) => error(StatusCode::BAD_REQUEST, format!("number: {e}")),
            },
            (Method::POST, ["optouts"]) => self.opt(req, true, None).await,
            (Method::DELETE, ["optouts", number]) => {
                let number = percent_decode(number);
                self.opt(req, false, Some(number)).await
            }
            (Method::GET, ["imports"]) => reply(StatusCode::OK, json!(self.compliance.imports())),
            (Method::GET, ["queues"]) => reply(StatusCode::OK, self.queues()),
            (Method::GET, ["messages", id]) => match id.parse::<MessageId>() {
                Ok(id) => reply(StatusCode::OK, self.message(id)),
                Err(_) => error(StatusCode::BAD_REQUEST, "message id: 16 hex digits"),
            },
            (Method::POST, ["carriers", name, action @ ("pause" | "resume")]) => {
                match self.scheduler.queue(name) {
                    Some(q) => {
                        q.set_paused(*action == "pause");
                        tracing::info!(target: "sluice::admin", carrier = %name, action = %action, "carrier traffic");
                        reply(
                            StatusCode::OK,
                            json!({ "carrier": name, "paused": q.is_paused() }),
                        )
                    }
                    None => error(StatusCode::NOT_FOUND, format!("no carrier {name:?}")),
                }
            }
            _ => error(
                StatusCode::NOT_FOUND,
                format!("no admin route {} {}", req.method(), path),
            ),
        }
    }

    fn queues(&self) -> serde_json::Value {
        let mut carriers = serde_json::Map::new();
        for name in self.scheduler.carriers() {
            if let Some(q) = self.scheduler.queue(&name) {
                carriers.insert(
                    name.to_string(),
                    json!({ "paused": q.is_paused(), "held_quiet_hours": q.held(), "waiting": q.report() }),
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
            Stage::Dispatched { carrier, parts } => {
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

    async fn body(req: Request<Incoming>) -> Result<Bytes, Reply> {
        match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => Ok(b.to_bytes()),
            Err(e) => Err(error(StatusCode::PAYLOAD_TOO_LARGE, format!("body: {e}"))),
        }
    }

    async fn opt(&self, req: Request<Incoming>, opted_out: bool, number: Option<String>) -> Reply {
        let scope_q = query_param(&req, "scope");
        let (number, scope, note) = if let Some(n) = number {
            (n, scope_q, String::new())
        } else {
            let body = match Admin::body(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let v: serde_json::Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
            };
            (
                v["number"].as_str().unwrap_or_default().to_owned(),
                v["scope"].as_str().map(str::to_owned),
                v["note"].as_str().unwrap_or("api").to_owned(),
            )
        };
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
        };
        match self.compliance.change(change).await {
            Ok(changed) => reply(
                StatusCode::OK,
                json!({ "number": n.to_string(), "scope": scope, "opted_out": opted_out, "changed": changed }),
            ),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }

    async fn import(&self, req: Request<Incoming>) -> Reply {
        let Some(scope) = query_param(&req, "scope") else {
            return error(StatusCode::BAD_REQUEST, "scope is required");
        };
        let source = req
            .headers()
            .get("x-source")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("upload")
            .to_owned();
        let body = match Admin::body(req).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        match self
            .compliance
            .import(&scope, &body[..], &source, |_| {})
            .await
        {
            Ok(report) => reply(
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
            Err(crate::compliance::ComplianceError::UnknownScope(s)) => {
                error(StatusCode::BAD_REQUEST, format!("unknown scope {s:?}"))
            }
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }
}

/// A client for the admin API (used by `sluice optout ...`): one HTTP/1.1
/// request on a fresh connection.
///
/// # Errors
/// Connection or protocol failures; HTTP error statuses are returned, not errors.
pub async fn call(
    base: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Bytes,
    content_type: &str,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let authority = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    if base.starts_with("https://") {
        anyhow::bail!("use http:// for the admin API (it listens on a private address)");
    }
    let tcp = tokio::net::TcpStream::connect(&authority).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", &authority)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .body(Full::new(body))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}
