//! Lookups over the history segments and the timelines they answer, as
//! JSON (the admin API) and as text (`sluice trace`).
//!
//! A lookup by message id reads every segment whose id range holds it. The
//! others first find the message ids (from accepted records, or answers
//! naming the carrier id), newest segment first, then collect every record
//! of those ids in one more pass: a message's records may be spread over
//! several segments.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde_json::{Value, json};

use super::record::{self, Record, Step};
use super::store::{self, Closed};
use crate::model::MessageId;

/// Most messages one lookup answers.
pub const MAX_MESSAGES: usize = 100;

/// What to look up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// One message.
    Message(MessageId),
    /// The messages a tenant submitted with this `client_ref`.
    ClientRef {
        /// Tenant.
        tenant: String,
        /// Its reference.
        client_ref: String,
    },
    /// The message whose part a carrier accepted under this id.
    CarrierId {
        /// Carrier name.
        carrier: String,
        /// Its message id (normalised as receipts normalise it).
        id: String,
    },
    /// Messages to a recipient accepted within a time range.
    Recipient {
        /// E.164 digits (no `+`).
        to: u64,
        /// From (unix ms, inclusive).
        since_ms: u64,
        /// Until (unix ms, inclusive).
        until_ms: u64,
    },
}

/// One message's records, in time order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    /// The message.
    pub id: MessageId,
    /// Its steps.
    pub records: Vec<Record>,
}

impl Timeline {
    /// The tenant its accepted record names (`None` when that record is
    /// no longer kept).
    pub fn tenant(&self) -> Option<&str> {
        self.records.iter().find_map(|r| match &r.step {
            Step::Accepted { tenant, .. } => Some(tenant.as_str()),
            _ => None,
        })
    }

    /// The timeline as JSON: the message's identity, then `events`, each
    /// with `at_ms`, `at` (RFC 3339), `step` and its details.
    pub fn to_json(&self) -> Value {
        let mut head = json!({ "id": self.id.to_string() });
        let mut final_state = Value::Null;
        let events: Vec<Value> = self
            .records
            .iter()
            .map(|r| {
                let mut e = step_json(&r.step);
                if let Step::Accepted {
                    tenant,
                    campaign,
                    client_ref,
                    to,
                    from,
                } = &r.step
                {
                    head["tenant"] = json!(tenant);
                    head["client_ref"] = json!(client_ref);
                    head["campaign_id"] = json!(campaign);
                    head["to"] = json!(format!("+{to}"));
                    head["from"] = json!(from);
                }
                if let Step::Final { state, .. } = &r.step {
                    final_state = json!(state.as_str());
                }
                e["at_ms"] = json!(r.at_ms);
                e["at"] = json!(rfc3339(r.at_ms));
                e
            })
            .collect();
        head["state"] = final_state;
        head["events"] = Value::Array(events);
        head
    }
}

fn rfc3339(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

fn step_json(s: &Step) -> Value {
    match s {
        Step::Accepted {
            tenant,
            campaign,
            client_ref,
            to,
            from,
        } => json!({"step": "accepted", "tenant": tenant, "campaign_id": campaign,
            "client_ref": client_ref, "to": format!("+{to}"), "from": from}),
        Step::Dispatched { carrier, parts } => {
            json!({"step": "dispatched", "carrier": carrier, "parts": parts})
        }
        Step::Wait { part, cause } => json!({"step": "wait", "part": part, "cause": cause}),
        Step::Answer {
            part,
            carrier,
            carrier_id,
        } => json!({"step": "carrier_accepted", "part": part, "carrier": carrier,
            "carrier_id": carrier_id}),
        Step::PartFailed {
            part,
            state,
            code,
            reason,
        } => json!({"step": "part_failed", "part": part, "state": state.as_str(),
            "error_code": code, "reason": reason}),
        Step::Receipt {
            part,
            state,
            code,
            stat,
        } => json!({"step": "receipt", "part": part, "state": state.as_str(),
            "error_code": code, "stat": stat}),
        Step::Requeued { reason } => json!({"step": "requeued", "reason": reason}),
        Step::Fallback { how, reason } => {
            json!({"step": "fallback", "how": how, "reason": reason})
        }
        Step::Final {
            state,
            code,
            carrier,
            reason,
        } => json!({"step": "final", "state": state.as_str(), "error_code": code,
            "carrier": carrier, "reason": reason}),
        Step::EventAcked { event_id, sink } => json!({"step": "event_acked", "event_id": event_id,
            "sink": if sink.is_empty() { "stream" } else { sink.as_str() }}),
    }
}

/// A carrier id as receipts normalise it: trimmed, leading zeros dropped,
/// lower case.
pub fn normalize_carrier_id(raw: &str) -> String {
    let t = raw.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    let z = t.trim_start_matches('0');
    if z.is_empty() && !t.is_empty() {
        return "0".into();
    }
    z.to_ascii_lowercase()
}

/// Every segment of `dir` as (closed info, or `None` for a head), newest
/// first.
fn segments(dir: &Path) -> std::io::Result<Vec<(std::path::PathBuf, Option<Closed>)>> {
    let (closed, open) = store::list(dir)?;
    let mut all: Vec<(u64, std::path::PathBuf, Option<Closed>)> = closed
        .into_iter()
        .map(|c| (c.seq, c.path.clone(), Some(c)))
        .chain(open.into_iter().map(|(seq, p)| (seq, p, None)))
        .collect();
    all.sort_by_key(|s| std::cmp::Reverse(s.0));
    Ok(all.into_iter().map(|(_, p, c)| (p, c)).collect())
}

/// Reads the records of one segment that `want` accepts by kind, id and
/// time (a segment deleted meanwhile has none).
fn read(path: &Path, want: impl FnMut(u8, MessageId, u64) -> bool, f: impl FnMut(Record)) {
    if let Ok(bytes) = std::fs::read(path) {
        record::for_each_where(&bytes, want, f);
    }
}

/// Runs `q` over the segments of `dir`: the timelines of the messages it
/// finds, newest message first.
///
/// # Errors
/// The directory cannot be read.
pub fn run(dir: &Path, q: &Query) -> std::io::Result<Vec<Timeline>> {
    let segs = segments(dir)?;
    let ids: Vec<MessageId> = match q {
        Query::Message(id) => vec![*id],
        _ => find_ids(&segs, q),
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let want: HashSet<u64> = ids.iter().map(|i| i.0).collect();
    let (lo, hi) = (
        *want.iter().min().expect("not empty"),
        *want.iter().max().expect("not empty"),
    );
    let mut by_id: BTreeMap<u64, Vec<(u64, usize, Record)>> = BTreeMap::new();
    for (seg_no, (path, closed)) in segs.iter().enumerate() {
        if let Some(c) = closed
            && (c.max_id < lo || c.min_id > hi)
        {
            continue;
        }
        read(
            path,
            |_, id, _| want.contains(&id.0),
            |r| {
                // Newest segment first: order within a time by segment
                // (older first), then by position.
                by_id
                    .entry(r.id.0)
                    .or_default()
                    .push((r.at_ms, usize::MAX - seg_no, r));
            },
        );
    }
    let mut out: Vec<Timeline> = by_id
        .into_iter()
        .map(|(id, mut rs)| {
            // Stable: records of one segment keep their written order.
            rs.sort_by_key(|(at, seg, _)| (*at, *seg));
            Timeline {
                id: MessageId(id),
                records: rs.into_iter().map(|(_, _, r)| r).collect(),
            }
        })
        .collect();
    out.sort_by_key(|t| std::cmp::Reverse(t.id.0));
    Ok(out)
}

/// The message ids `q` names, newest first, at most [`MAX_MESSAGES`].
fn find_ids(segs: &[(std::path::PathBuf, Option<Closed>)], q: &Query) -> Vec<MessageId> {
    let mut found: Vec<u64> = Vec::new();
    let mut seen = HashSet::new();
    for (path, closed) in segs {
        if found.len() >= MAX_MESSAGES {
            break;
        }
        if let (
            Query::Recipient {
                since_ms, until_ms, ..
            },
            Some(c),
        ) = (q, closed)
            && (c.max_ms < *since_ms || c.min_ms > *until_ms)
        {
            continue;
        }
        let mut here = Vec::new();
        let kind = match q {
            Query::CarrierId { .. } => record::Kind::Answer as u8,
            _ => record::Kind::Accepted as u8,
        };
        read(
            path,
            |k, _, _| k == kind,
            |r| {
                let hit = match (q, &r.step) {
                    (
                        Query::ClientRef { tenant, client_ref },
                        Step::Accepted {
                            tenant: t,
                            client_ref: c,
                            ..
                        },
                    ) => t == tenant && c == client_ref,
                    (
                        Query::CarrierId { carrier, id },
                        Step::Answer {
                            carrier: c,
                            carrier_id,
                            ..
                        },
                    ) => c == carrier && carrier_id == id,
                    (
                        Query::Recipient {
                            to,
                            since_ms,
                            until_ms,
                        },
                        Step::Accepted { to: t, .. },
                    ) => t == to && r.at_ms >= *since_ms && r.at_ms <= *until_ms,
                    _ => false,
                };
                if hit && seen.insert(r.id.0) {
                    here.push(r.id.0);
                }
            },
        );
        here.reverse();
        found.extend(here);
    }
    found.sort_by_key(|&id| std::cmp::Reverse(id));
    found.truncate(MAX_MESSAGES);
    found.into_iter().map(MessageId).collect()
}

/// The text `sluice trace` prints for the JSON of a lookup (`{"messages":
/// [timeline...]}`): per message a heading, then one line per step: time,
/// step, details.
pub fn render(v: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let messages = v["messages"].as_array().cloned().unwrap_or_default();
    if messages.is_empty() {
        out.push_str("no history found\n");
    }
    for m in &messages {
        let s = |k: &str| m[k].as_str().unwrap_or("?").to_owned();
        let _ = writeln!(
            out,
            "message {}  tenant {}  client_ref {}  to {}  from {}  state {}",
            s("id"),
            s("tenant"),
            s("client_ref"),
            s("to"),
            s("from"),
            m["state"].as_str().unwrap_or("(not final)")
        );
        for e in m["events"].as_array().into_iter().flatten() {
            let mut details = Vec::new();
            if let Some(obj) = e.as_object() {
                for (k, val) in obj {
                    if matches!(
                        k.as_str(),
                        "at" | "at_ms" | "step" | "tenant" | "client_ref" | "to" | "from"
                    ) {
                        continue;
                    }
                    let shown = match val {
                        Value::String(s) if s.is_empty() => continue,
                        Value::String(s) => format!("{s:?}"),
                        other => other.to_string(),
                    };
                    details.push(format!("{k}={shown}"));
                }
            }
            let _ = writeln!(
                out,
                "  {}  {:<16}  {}",
                e["at"].as_str().unwrap_or("?"),
                e["step"].as_str().unwrap_or("?"),
                details.join(" ")
            );
        }
        out.push('\n');
    }
    out
}
