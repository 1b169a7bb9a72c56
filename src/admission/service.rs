//! The admission service: the door every submit goes through, whatever
//! protocol it came by. For each message of a batch, in order: the
//! tenant's checks ([`validate_with_country`]: fields, numbers, sizes), the
//! sender it owns, a route, media it uploaded, the opt-outs, then
//! idempotency on `(tenant, client_ref)` (a repeat gets the original id and
//! sends nothing). What passes is registered (events claimed, ledger),
//! journaled, queued (as the write starts when the batch fits in memory:
//! nothing reaches a carrier before a later journal record is durable, see
//! `Admission::admit`; otherwise once durable) and acknowledged only once
//! durable; a journal failure turns every accepted message of the batch
//! into `unavailable` (retry), forgets it and its dedupe key.
//!
//! It also holds what it checks tenants against (tokens, senders, default
//! validity and country, MM7 service codes), replaced whole by a reload
//! ([`Admission::update_tenant`], [`Admission::add_tenant`],
//! [`Admission::remove_tenant`]); each token has a stamp no other token
//! had, so sessions can tell that the token they authenticated with was
//! replaced or removed.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::{Dedupe, OwnedSenders, Rejection, sender_not_allowed, validate_with_country};
use crate::backlog::Backlog;
use crate::compliance::Compliance;
use crate::events::EventHub;
use crate::journal::Journal;
use crate::ledger::Ledger;
use crate::links::LinkStore;
use crate::links::rewrite::{self, Planned};
use crate::links::store::LinkError;
use crate::model::DeliveryState;
use crate::model::hashing::FastMap;
use crate::model::numbering::Country;
use crate::model::submit::{Accepted, RejectReason, Submission, SubmitResult};
use crate::model::{Message, MessageId, Secret};
use crate::route::Router;
use crate::settings::Config;
use crate::uploads::Uploads;

const TARGET: &str = "sluice::admission";

/// What admission knows of a tenant.
#[derive(Debug)]
struct Tenant {
    name: Arc<str>,
    token: Secret,
    /// Bumped each time a reload changes the token: a session
    /// authenticated under another stamp is closed.
    stamp: u64,
    default_validity: Duration,
    /// The senders it may send from.
    senders: OwnedSenders,
    /// National numbers of this country are accepted (normalised to E.164).
    default_country: Option<Country>,
    /// The MM7 ServiceCodes its messages may name.
    mms_service_codes: Vec<String>,
    /// Its texts' links are shortened and tracked unless a message says.
    track_links: bool,
    /// The base of its short links (no trailing `/`).
    link_base: Arc<str>,
}

/// The parts admission consults and hands accepted messages to.
#[derive(Debug)]
pub struct Parts {
    /// Ids and the durable write.
    pub journal: Journal,
    /// Live messages.
    pub ledger: Arc<Ledger>,
    /// Where each message's events go.
    pub hub: Arc<EventHub>,
    /// Routes (a message no carrier routes is refused).
    pub router: Arc<Router>,
    /// Tenants' media (a message may only name its own).
    pub uploads: Arc<Uploads>,
    /// Opt-outs.
    pub compliance: Arc<Compliance>,
    /// Idempotency keys.
    pub dedupe: Arc<Dedupe>,
    /// Where accepted messages wait.
    pub backlog: Arc<Backlog>,
    /// Claims across the cluster's nodes (cluster mode only).
    pub claims: Option<crate::cluster::claims::Claims>,
    /// Where tracked links are stored (`None`: links are never tracked).
    pub links: Option<LinkStore>,
}

/// Admits submitted messages (see the module doc).
#[derive(Debug)]
pub struct Admission {
    /// Replaced whole by a reload ([`Admission::update_tenant`]); a batch
    /// reads it once.
    tenants: parking_lot::RwLock<Arc<FastMap<String, Arc<Tenant>>>>,
    /// Bumped after every reload that changed a token.
    credentials: tokio::sync::watch::Sender<u64>,
    /// `mms.public_url`: the base of short links of tenants without a
    /// `link_url`.
    public_url: String,
    parts: Parts,
}

impl Tenant {
    fn of(t: &crate::settings::TenantConfig, stamp: u64, public_url: &str) -> Tenant {
        Tenant {
            name: t.name.as_str().into(),
            token: t.token.clone(),
            stamp,
            default_validity: t.default_validity,
            // Checked by Config::problems before the gateway starts (and
            // before a reload applies).
            senders: OwnedSenders::new(&t.senders, &t.sender_patterns).unwrap_or_default(),
            default_country: t.default_country(),
            mms_service_codes: t.mms_service_codes.clone(),
            track_links: t.track_links,
            link_base: t
                .link_url
                .as_deref()
                .unwrap_or(public_url)
                .trim_end_matches('/')
                .into(),
        }
    }
}

impl Admission {
    /// Admission for `config`'s tenants.
    pub fn new(config: &Config, parts: Parts) -> Admission {
        let tenants = config
            .tenants
            .iter()
            .map(|t| {
                let tenant = Tenant::of(t, 0, &config.mms.public_url);
                (t.name.clone(), Arc::new(tenant))
            })
            .collect();
        Admission {
            tenants: parking_lot::RwLock::new(Arc::new(tenants)),
            credentials: tokio::sync::watch::Sender::new(0),
            public_url: config.mms.public_url.clone(),
            parts,
        }
    }

    fn tenants(&self) -> Arc<FastMap<String, Arc<Tenant>>> {
        self.tenants.read().clone()
    }

    /// Takes a reloaded tenant's token and sending rights (senders, sender
    /// patterns, default validity and country, MM7 service codes); the next
    /// batch is admitted under them. With `new_token`, sessions that
    /// authenticated with the old one are told ([`Admission::credential_changes`]).
    /// False (nothing done) for a tenant admission does not know
    /// ([`Admission::add_tenant`] adds one).
    pub fn update_tenant(&self, t: &crate::settings::TenantConfig, new_token: bool) -> bool {
        let mut tenants = self.tenants.write();
        let Some(old) = tenants.get(&t.name) else {
            return false;
        };
        let stamp = if new_token {
            self.next_stamp()
        } else {
            old.stamp
        };
        Self::put(
            &mut tenants,
            &t.name,
            Some(Tenant::of(t, stamp, &self.public_url)),
        );
        true
    }

    /// Admits tenant `t` from the next batch on (a reload added it). False
    /// (nothing done) when it is known already.
    pub fn add_tenant(&self, t: &crate::settings::TenantConfig) -> bool {
        let mut tenants = self.tenants.write();
        if tenants.contains_key(&t.name) {
            return false;
        }
        let stamp = self.next_stamp();
        Self::put(
            &mut tenants,
            &t.name,
            Some(Tenant::of(t, stamp, &self.public_url)),
        );
        true
    }

    /// Stops admitting `tenant` (a reload removed it): its token no longer
    /// authenticates, and sessions that authenticated with it are told
    /// ([`Admission::credential_changes`]). False when it was unknown.
    pub fn remove_tenant(&self, tenant: &str) -> bool {
        let mut tenants = self.tenants.write();
        if !tenants.contains_key(tenant) {
            return false;
        }
        Self::put(&mut tenants, tenant, None);
        drop(tenants);
        self.credentials.send_modify(|g| *g += 1);
        true
    }

    /// A stamp no token had before (every stamp comes from the generation
    /// of credential changes, which only grows), and tells sessions.
    fn next_stamp(&self) -> u64 {
        let mut stamp = 0;
        self.credentials.send_modify(|g| {
            *g += 1;
            stamp = *g;
        });
        stamp
    }

    /// Replaces (or removes) `name` in the map a batch reads.
    fn put(tenants: &mut Arc<FastMap<String, Arc<Tenant>>>, name: &str, tenant: Option<Tenant>) {
        let mut next = FastMap::clone(tenants);
        match tenant {
            Some(t) => next.insert(name.to_owned(), Arc::new(t)),
            None => next.remove(name),
        };
        *tenants = Arc::new(next);
    }

    /// The stamp of `tenant`'s token (changes when a reload changes the
    /// token); `None` for an unknown tenant.
    pub fn credentials_stamp(&self, tenant: &str) -> Option<u64> {
        self.tenants.read().get(tenant).map(|t| t.stamp)
    }

    /// Changes when a reload changed some tenant's token.
    pub fn credential_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.credentials.subscribe()
    }

    /// The tenant whose token this is.
    pub fn authenticate(&self, tenant: &str, token: &str) -> Option<Arc<str>> {
        let tenants = self.tenants();
        let t = tenants.get(tenant)?;
        t.token.matches(token).then(|| t.name.clone())
    }

    /// The tenant whose token this is, by the token alone (the HTTP API's
    /// bearer); every tenant's token is compared, each in constant time.
    pub fn tenant_of_token(&self, token: &str) -> Option<Arc<str>> {
        let mut found = None;
        for t in self.tenants().values() {
            if t.token.matches(token) && found.is_none() {
                found = Some(t.name.clone());
            }
        }
        found
    }

    /// Whether `m` may be sent by tenant `t`, as message `id`: the message
    /// (its links, when tracked, replaced by placeholders of their short
    /// form) and the links to store once it passes dedupe.
    ///
    /// # Errors
    /// The first check it fails.
    fn verdict_of(
        &self,
        t: &Tenant,
        tenant: &Arc<str>,
        mut m: Submission,
        id: MessageId,
        now: u64,
    ) -> Result<(Message, Option<Vec<Planned>>), Rejection> {
        // Shortened before the checks, so the length judged is the length
        // sent.
        let mut planned = None;
        // A text past the length limit in any encoding is refused below
        // without being scanned.
        if m.track_links.unwrap_or(t.track_links)
            && self.parts.links.is_some()
            && m.text.len() <= crate::model::MAX_TEXT_CHARS * 4
            && let Some(plan) = rewrite::plan(&m.text, &t.link_base)
        {
            m.text = plan.text;
            planned = Some(plan.links);
        }
        let mut msg = validate_with_country(tenant, m, t.default_validity, t.default_country, now)?;
        if !t.senders.allows(&msg.from) {
            return Err(sender_not_allowed(tenant, &msg.from));
        }
        if let Some(code) = msg.mms.as_ref().and_then(|f| f.service_code.as_ref())
            && !t.mms_service_codes.contains(code)
        {
            return Err(Rejection {
                reason: RejectReason::InvalidField,
                detail: format!(
                    "mms_service_code {} is not one of the tenant's mms_service_codes",
                    crate::model::LogSafe::new(code)
                ),
            });
        }
        if self.parts.router.sms_carrier(msg.to).is_none() {
            return Err(Rejection {
                reason: RejectReason::NoRoute,
                detail: format!("no carrier routes {}", msg.to),
            });
        }
        if let Some(id) = msg
            .media
            .iter()
            .find(|id| !self.parts.uploads.owns(tenant, id))
        {
            return Err(Rejection {
                reason: RejectReason::UnknownMedia,
                detail: format!("unknown media id {id:?} (upload it with PutMedia first)"),
            });
        }
        if let Some(scope) = self.parts.compliance.check(tenant, &msg.from, msg.to) {
            return Err(Rejection {
                reason: RejectReason::Suppressed,
                detail: format!("{} opted out ({scope})", msg.to),
            });
        }
        msg.id = id;
        Ok((msg, planned))
    }

    /// Admits a batch from `tenant` on connection `conn`: per-message
    /// results, resolved once the accepted ones are durable.
    pub fn submit(
        self: &Arc<Self>,
        tenant: &Arc<str>,
        conn: u64,
        messages: Vec<Submission>,
    ) -> Pin<Box<dyn Future<Output = Vec<SubmitResult>> + Send>> {
        let p = &self.parts;
        // Until the batch's messages are durable or refused, its keys stay
        // out of the dedupe log (held before any is taken, and the batch's
        // time read with the hold).
        let pending = p.dedupe.hold();
        let now = pending.at_ms();
        // The tenant's rights as they are now, for the whole batch.
        let Some(t) = self.tenants().get(&**tenant).cloned() else {
            return Box::pin(std::future::ready(Vec::new()));
        };
        let first = p.journal.allocate_message_ids(messages.len() as u64);
        let segment = p.journal.head_segment();
        let mut results = Vec::with_capacity(messages.len());
        let mut accepted: Vec<Arc<Message>> = Vec::with_capacity(messages.len());
        // The last of the batch's tracked links to be durable.
        let mut links_ticket = None;
        for (i, m) in messages.into_iter().enumerate() {
            let client_ref = m.client_ref.clone();
            let verdict = self.verdict_of(&t, tenant, m, MessageId(first + i as u64), now);
            let outcome = match verdict {
                Err(r) => {
                    metrics::counter!("sluice_messages_rejected_total",
                        "tenant" => tenant.to_string(), "reason" => r.reason.as_str())
                    .increment(1);
                    Err(r)
                }
                Ok((mut msg, planned)) => {
                    match p
                        .dedupe
                        .check_or_insert(tenant, &client_ref, msg.id, now, segment)
                    {
                        Err(existing) => Ok(Accepted {
                            id: existing,
                            duplicate: true,
                        }),
                        Ok(()) => {
                            if let (Some(planned), Some(links)) = (planned, &p.links) {
                                links_ticket =
                                    links_ticket.max(Some(links.shorten(&mut msg, &planned)));
                            }
                            let id = msg.id;
                            accepted.push(Arc::new(msg));
                            Ok(Accepted {
                                id,
                                duplicate: false,
                            })
                        }
                    }
                }
            };
            results.push(SubmitResult {
                client_ref,
                outcome,
            });
        }
        if accepted.is_empty() {
            return Box::pin(std::future::ready(results));
        }
        // The rest runs as a task of its own: the client_refs are taken
        // (and, below, the messages admitted, the journal write under way
        // and, when they fit in memory, the messages queued), so queueing
        // them, or undoing all that, must happen even when the caller goes
        // away — a connection cut before its BatchAck
        // drops this future, and the messages would otherwise sit in the
        // ledger, claimed by their client_refs, never sent until a restart.
        let this = self.clone();
        let tenant = tenant.clone();
        // Tracked links are durable before the messages that carry them are
        // journaled: no code is sent that the link store could lose.
        let links = links_ticket.and_then(|t| Some((p.links.clone()?, t)));
        let finish = match (p.claims.clone(), links) {
            (None, None) => {
                let admitted = this.admit(&tenant, conn, &accepted);
                tokio::spawn(async move {
                    let results = this.finish(accepted, results, admitted).await;
                    drop(pending);
                    results
                })
            }
            (None, Some((links, ticket))) => tokio::spawn(async move {
                let _pending = pending;
                if let Err(e) = links.durable(ticket).await {
                    this.refuse(&accepted, &mut results, &e);
                    return results;
                }
                let admitted = this.admit(&tenant, conn, &accepted);
                this.finish(accepted, results, admitted).await
            }),
            (Some(claims), links) => tokio::spawn(async move {
                let held = pending;
                let Some(accepted) = this
                    .claim_in_cluster(&claims, &tenant, accepted, &mut results)
                    .await
                else {
                    return results;
                };
                if let Some((links, ticket)) = links
                    && let Err(e) = links.durable(ticket).await
                {
                    this.refuse(&accepted, &mut results, &e);
                    let all: Vec<(&str, MessageId)> =
                        accepted.iter().map(|m| (&*m.client_ref, m.id)).collect();
                    claims.release(&tenant, &all).await;
                    return results;
                }
                let admitted = this.admit(&tenant, conn, &accepted);
                let kept = accepted.clone();
                let results = this.clone().finish(accepted, results, admitted).await;
                // Durable or forgotten: the keys may be logged from here
                // on (not held across the claims' release below).
                drop(held);
                // Whatever the journal refused is given back in the cluster.
                let refused: HashSet<&str> = results
                    .iter()
                    .filter(
                        |r| matches!(&r.outcome, Err(e) if e.reason == RejectReason::Unavailable),
                    )
                    .map(|r| &*r.client_ref)
                    .collect();
                let refused: Vec<(&str, MessageId)> = if refused.is_empty() {
                    Vec::new()
                } else {
                    kept.iter()
                        .filter(|m| refused.contains(&*m.client_ref))
                        .map(|m| (&*m.client_ref, m.id))
                        .collect()
                };
                claims.release(&tenant, &refused).await;
                results
            }),
        };
        Box::pin(async move {
            finish.await.unwrap_or_else(|e| {
                // Only a panic in the task above (a bug) gets here; the
                // client is told to retry rather than left waiting.
                tracing::error!(target: TARGET, error = %e, "admission task failed");
                Vec::new()
            })
        })
    }

    /// Turns the batch's accepted messages into `unavailable` (retry) before
    /// anything was registered or journaled: their tracked links could not be
    /// stored.
    fn refuse(&self, accepted: &[Arc<Message>], results: &mut [SubmitResult], e: &LinkError) {
        tracing::error!(target: TARGET, error = %e, "tracked links not stored; batch refused");
        self.unavailable(
            accepted,
            results,
            "the gateway could not store the message's links; retry",
        );
    }

    /// Forgets `accepted`'s client_refs and answers each `unavailable`
    /// (retry) with `detail`.
    fn unavailable(&self, accepted: &[Arc<Message>], results: &mut [SubmitResult], detail: &str) {
        let failed: HashSet<u64> = accepted.iter().map(|m| m.id.0).collect();
        for m in accepted {
            self.parts.dedupe.forget(&m.tenant, &m.client_ref);
        }
        // A duplicate of one of them in the same batch is not stored either.
        for r in results {
            if let Ok(a) = r.outcome
                && failed.contains(&a.id.0)
            {
                r.outcome = Err(Rejection {
                    reason: RejectReason::Unavailable,
                    detail: detail.into(),
                });
            }
        }
    }

    /// Registers accepted messages (events claimed for `conn`, ledger),
    /// starts their journal write and, in the common case, queues them
    /// without waiting for it.
    ///
    /// Queued before their `Accept` record is durable, dispatch overlaps
    /// its sync, and nothing reaches a carrier before that: a part is
    /// written to a carrier only once its `Written` record is durable (an
    /// MMS too), an early end is published only once its `Event` record
    /// is, and each of those records goes to the one ordered journal after
    /// this `Accept` record. The sync that covers them covers the `Accept`,
    /// and one that fails leaves the writer refusing everything after. So
    /// the wire waits for one group commit, not for two in a row.
    ///
    /// Only a batch that fits in memory with nothing spilled is queued
    /// early: the spill takes messages out of the ledger, and those of a
    /// batch the journal then refused would come back live. Those wait for
    /// the sync, as does everything once the journal has failed (a retry
    /// against a broken journal is not queued, so it takes no rate or cap
    /// permit). When the write fails, `finish` forgets the batch: what the
    /// dispatcher pops of it is no longer live and is dropped, though its
    /// pop may have taken rate and cap permits (only batches whose write
    /// was under way when the journal failed). Near the memory budget a
    /// batch that fits may be queued ahead of an earlier one that waits
    /// for its sync to spill.
    fn admit(&self, tenant: &Arc<str>, conn: u64, accepted: &[Arc<Message>]) -> Admitted {
        let p = &self.parts;
        // Before anything can finish them: their events go to `conn` when it
        // subscribed for its own messages only.
        p.hub.claim(tenant, conn, accepted.iter().map(|m| m.id));
        let durable = p.ledger.accept(accepted);
        let queued = !p.journal.has_failed() && p.backlog.fits_in_memory(accepted.len());
        if queued {
            p.ledger.history().accepted(accepted);
            p.backlog.enqueue(accepted);
        }
        Admitted { durable, queued }
    }

    /// Claims the batch's client_refs across the cluster: a key another
    /// node's message holds turns into a duplicate answer with that id;
    /// without Redis, the whole batch is `unavailable`. Returns what is
    /// still to admit (`None`: nothing).
    async fn claim_in_cluster(
        &self,
        claims: &crate::cluster::claims::Claims,
        tenant: &Arc<str>,
        accepted: Vec<Arc<Message>>,
        results: &mut [SubmitResult],
    ) -> Option<Vec<Arc<Message>>> {
        let p = &self.parts;
        let keys: Vec<(&str, MessageId)> =
            accepted.iter().map(|m| (&*m.client_ref, m.id)).collect();
        let answer = claims.claim(tenant, &keys).await;
        let by_id: HashMap<u64, usize> = results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r.outcome {
                Ok(a) if !a.duplicate => Some((a.id.0, i)),
                _ => None,
            })
            .collect();
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(target: TARGET, error = %crate::model::LogSafe::display(&e),
                    "cluster claims unavailable; batch refused for a retry");
                for m in &accepted {
                    p.dedupe.forget(&m.tenant, &m.client_ref);
                    if let Some(i) = by_id.get(&m.id.0) {
                        results[*i].outcome = Err(Rejection {
                            reason: RejectReason::Unavailable,
                            detail: "the cluster cannot check this client_ref now; retry".into(),
                        });
                    }
                }
                return None;
            }
        };
        let mut keep = Vec::with_capacity(accepted.len());
        for (m, taken) in accepted.into_iter().zip(answer) {
            match taken {
                None => keep.push(m),
                Some(original) => {
                    p.dedupe.forget(&m.tenant, &m.client_ref);
                    metrics::counter!("sluice_cluster_duplicates_total").increment(1);
                    if let Some(i) = by_id.get(&m.id.0) {
                        results[*i].outcome = Ok(Accepted {
                            id: original,
                            duplicate: true,
                        });
                    }
                }
            }
        }
        (!keep.is_empty()).then_some(keep)
    }

    /// Waits for the journal: queues what is durable and was not queued
    /// yet, or undoes it all and answers `unavailable`.
    async fn finish(
        self: Arc<Self>,
        accepted: Vec<Arc<Message>>,
        mut results: Vec<SubmitResult>,
        admitted: Admitted,
    ) -> Vec<SubmitResult> {
        let p = &self.parts;
        match admitted.durable.wait().await {
            Ok(()) => {
                metrics::counter!("sluice_messages_accepted_total", "tenant" => accepted[0].tenant.to_string())
                    .increment(accepted.len() as u64);
                if !admitted.queued {
                    p.ledger.history().accepted(&accepted);
                    p.backlog.enqueue_or_spill(&accepted);
                }
            }
            Err(e) => {
                tracing::error!(target: TARGET, error = %e, "journal write failed; batch refused");
                let history = p.ledger.history();
                for m in &accepted {
                    // Its history said accepted (queued early): it ends
                    // there, unless something ended it meanwhile (and
                    // wrote its final step).
                    if p.ledger.forget_one(m.id) && admitted.queued {
                        history.finished(
                            m.id,
                            DeliveryState::Rejected,
                            0,
                            None,
                            "journal write failed: refused, the client was told to retry \
                             (back after a restart if the record reached the disk)",
                        );
                    }
                }
                p.hub
                    .unclaim(&accepted[0].tenant, accepted.iter().map(|m| m.id));
                self.unavailable(
                    &accepted,
                    &mut results,
                    "the gateway could not store the message; retry",
                );
            }
        }
        results
    }
}

/// A batch registered by `Admission::admit`: its journal write under way,
/// and whether it is queued already.
struct Admitted {
    durable: crate::journal::Durable,
    queued: bool,
}

#[cfg(test)]
mod tests;
