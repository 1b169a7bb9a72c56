//! Compliance: who must not be messaged, durably, with proof.
//!
//! Owns the suppression set ([`crate::suppression`]) behind its own journal
//! (`<data_dir>/optouts`, separate from the message journal so that tens of
//! millions of imported numbers are not rewritten by message compaction),
//! the sender programs and their scopes, inbound keyword handling
//! (STOP/START/HELP → change, confirmation text, upstream event), the audit
//! trail per number, bulk import/export, and the checks at admission and
//! dispatch.
//!
//! Scopes: `global`, `tenant:<tenant>` (STOPALL, API), and
//! `program:<tenant>:<program>` (a STOP to one of the program's senders). A
//! message is suppressed if its recipient is in the global scope, its
//! tenant's scope, or the scope of the program its sender belongs to.
//!
//! Every change is journaled and synced *before* it is applied and before
//! any confirmation goes out; replay on start rebuilds the set and the audit.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::Serialize;

use crate::journal::{Journal, JournalError, OptBulk, OptChange, OptCommit, OptRecord};
use crate::model::hashing::FastMap;
use crate::model::{Msisdn, Sender, now_ms};
use crate::settings::{Config, JournalConfig, StopCovers};
use crate::suppression::import::{self, ImportOptions};
use crate::suppression::{Keyword, Keywords, ScopeId, SuppressionSet};

const TARGET: &str = "sluice::compliance";

/// Name of the global block-list scope.
pub const GLOBAL: &str = "global";

/// Numbers per bulk record.
const BULK_CHUNK: usize = 65_536;

/// The scope name of a tenant.
pub fn tenant_scope(tenant: &str) -> String {
    format!("tenant:{tenant}")
}

/// The scope name of a program.
pub fn program_scope(tenant: &str, program: &str) -> String {
    format!("program:{tenant}:{program}")
}

/// One entry of a number's audit trail.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEntry {
    /// Scope changed.
    pub scope: String,
    /// True for an opt-out.
    pub opted_out: bool,
    /// `sms`, `mms`, `api` or `import`.
    pub source: String,
    /// Keyword or note.
    pub keyword: String,
    /// Sender number it came through.
    pub sender: String,
    /// Carrier it came through.
    pub carrier: String,
    /// Wall-clock ms.
    pub at_ms: u64,
    /// The cluster node it was made on (absent: this node).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
}

/// Where this node's own opt-out changes go besides its journal: the
/// cluster's outbox ([`crate::cluster::optouts`]). `record` runs before the
/// change is journaled here, and must be durable when it returns, so a
/// change made here is never applied locally without also reaching the
/// other nodes.
pub trait OptPublisher: Send + Sync + std::fmt::Debug + 'static {
    /// Queues one change for the cluster.
    ///
    /// # Errors
    /// It could not be stored; the change is refused.
    fn record(&self, change: &OptChange) -> std::io::Result<()>;
    /// Queues numbers added to `scope` in bulk (a committed import).
    ///
    /// # Errors
    /// It could not be stored.
    fn record_bulk(&self, scope: &str, numbers: &[u64], at_ms: u64) -> std::io::Result<()>;
}

/// A committed import.
#[derive(Debug, Clone, Serialize)]
pub struct ImportInfo {
    /// Import id.
    pub id: u64,
    /// Scope the numbers went into.
    pub scope: String,
    /// Source file name.
    pub source: String,
    /// Numbers imported.
    pub count: u64,
    /// Wall-clock ms.
    pub at_ms: u64,
}

#[derive(Debug)]
struct Program {
    tenant: Arc<str>,
    scope: ScopeId,
    scope_name: String,
    help_text: String,
    opt_out_text: String,
    opt_in_text: String,
    stop_covers: StopCovers,
    keywords: Keywords,
}

/// What an inbound message means.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// An opt-out was recorded (durably); `reply` goes back to the handset
    /// unless it was opted out already (one confirmation only).
    OptedOut {
        /// Tenant the sender belongs to.
        tenant: Arc<str>,
        /// Scope now suppressed.
        scope: String,
        /// The keyword.
        keyword: String,
        /// Confirmation to send, if this changed anything.
        reply: Option<String>,
    },
    /// An opt-in was recorded.
    OptedIn {
        /// Tenant.
        tenant: Arc<str>,
        /// Scope no longer suppressed.
        scope: String,
        /// The keyword.
        keyword: String,
        /// Confirmation to send, if this changed anything.
        reply: Option<String>,
    },
    /// HELP: send the program's help text; nothing changes.
    Help {
        /// Tenant.
        tenant: Arc<str>,
        /// The help text.
        reply: String,
    },
    /// Not a keyword: forward to the tenant as an inbound message.
    Forward {
        /// Tenant.
        tenant: Arc<str>,
    },
    /// No tenant owns the number it was sent to.
    NoTenant,
}

/// Each tenant's opt-out scope and programs.
#[derive(Debug, Default, Clone)]
struct Directory {
    tenants: FastMap<String, ScopeId>,
    /// Sender address (without `+`) → its programs, one per tenant: the
    /// owner's, and a removed tenant's while its queued messages still go
    /// (a reload moved the sender to another tenant).
    programs: FastMap<String, Vec<Arc<Program>>>,
}

impl Directory {
    /// `tenant`'s program on `sender` (without `+`), if it has one.
    fn program(&self, sender: &str, tenant: &str) -> Option<&Arc<Program>> {
        self.programs
            .get(sender)?
            .iter()
            .find(|p| &*p.tenant == tenant)
    }

    /// Enters tenant `t`: its scope, its programs and, in `senders`, its
    /// sender addresses.
    fn enter(
        &mut self,
        set: &SuppressionSet,
        senders: &mut HashMap<String, Arc<str>>,
        t: &crate::settings::TenantConfig,
    ) -> Result<(), ComplianceError> {
        let name: Arc<str> = t.name.as_str().into();
        let scope = set
            .try_scope(&tenant_scope(&t.name))
            .map_err(|_| ComplianceError::TooManyScopes)?;
        self.tenants.insert(t.name.clone(), scope);
        for s in &t.senders {
            senders.insert(s.trim_start_matches('+').to_owned(), name.clone());
        }
        for p in &t.programs {
            let mut keywords = Keywords::new();
            for (word, kind) in &p.keywords {
                let k: Keyword = kind.parse().map_err(|e| ComplianceError::Keyword {
                    program: p.name.clone(),
                    reason: format!("{e}"),
                })?;
                keywords
                    .add(word, k)
                    .map_err(|e| ComplianceError::Keyword {
                        program: p.name.clone(),
                        reason: e.to_string(),
                    })?;
            }
            let scope_name = program_scope(&t.name, &p.name);
            let program = Arc::new(Program {
                tenant: name.clone(),
                scope: set
                    .try_scope(&scope_name)
                    .map_err(|_| ComplianceError::TooManyScopes)?,
                scope_name,
                help_text: p.help_text.clone(),
                opt_out_text: p.opt_out_text.clone(),
                opt_in_text: p.opt_in_text.clone(),
                stop_covers: p.stop_covers,
                keywords,
            });
            for s in &p.senders {
                let key = s.trim_start_matches('+').to_owned();
                senders.insert(key.clone(), name.clone());
                let of_sender = self.programs.entry(key).or_default();
                of_sender.retain(|p| p.tenant != name);
                of_sender.push(program.clone());
            }
        }
        Ok(())
    }
}

/// The compliance service (see the module doc).
#[derive(Debug)]
pub struct Compliance {
    set: SuppressionSet,
    journal: Journal,
    global: ScopeId,
    /// The tenants' scopes and programs; replaced whole when a reload adds
    /// a tenant ([`Compliance::add_tenants`]).
    directory: parking_lot::RwLock<Arc<Directory>>,
    /// Sender (without `+`) → its tenant; replaced when a reload changes
    /// tenants' senders ([`Compliance::set_tenant_senders`]).
    tenant_senders: parking_lot::RwLock<HashMap<String, Arc<str>>>,
    default_keywords: Keywords,
    audit: Mutex<HashMap<u64, Vec<AuditEntry>>>,
    imports: Mutex<Vec<ImportInfo>>,
    next_import: AtomicU64,
    /// Serialises changes so the journal order is the apply order.
    write: tokio::sync::Mutex<()>,
    /// Grows after every opt-out reaches the set (see [`Compliance::epoch`]).
    optout_epoch: AtomicU64,
    /// The cluster's outbox and this node's id, in cluster mode.
    publisher: std::sync::OnceLock<(Arc<dyn OptPublisher>, String)>,
}

/// Compliance failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComplianceError {
    /// The opt-out journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A keyword in the configuration is invalid.
    #[error("program {program:?}: {reason}")]
    Keyword {
        /// Program.
        program: String,
        /// Why.
        reason: String,
    },
    /// Reading an import failed.
    #[error("import: {0}")]
    Import(#[from] std::io::Error),
    /// An unknown scope was named.
    #[error("unknown scope {0:?}")]
    UnknownScope(String),
    /// The suppression set holds as many scopes as it can.
    #[error("too many opt-out scopes")]
    TooManyScopes,
}

impl Compliance {
    /// Opens the opt-out journal under `<data_dir>/optouts` and replays it.
    ///
    /// # Errors
    /// The journal cannot be opened or a program's keywords are invalid.
    pub fn open(config: &Config) -> Result<Compliance, ComplianceError> {
        let dir = config.data_dir.join("optouts");
        Compliance::open_in(&dir, config)
    }

    /// Opens the opt-out journal in `dir`.
    ///
    /// # Errors
    /// See [`Compliance::open`].
    pub fn open_in(dir: &Path, config: &Config) -> Result<Compliance, ComplianceError> {
        let jcfg = JournalConfig {
            segment_bytes: 64 << 20,
            prezero_segments: config.journal.prezero_segments,
            ..JournalConfig::default()
        };
        let (journal, recovered) = Journal::open(dir, &jcfg)?;
        let set = SuppressionSet::new();
        let global = set.scope(GLOBAL);
        let mut directory = Directory::default();
        let mut tenant_senders = HashMap::new();
        for t in &config.tenants {
            directory.enter(&set, &mut tenant_senders, t)?;
        }
        let c = Compliance {
            set,
            journal,
            global,
            directory: parking_lot::RwLock::new(Arc::new(directory)),
            tenant_senders: parking_lot::RwLock::new(tenant_senders),
            default_keywords: Keywords::new(),
            audit: Mutex::default(),
            imports: Mutex::default(),
            next_import: AtomicU64::new(1),
            write: tokio::sync::Mutex::new(()),
            optout_epoch: AtomicU64::new(0),
            publisher: std::sync::OnceLock::new(),
        };
        c.replay(recovered.opt);
        Ok(c)
    }

    fn replay(&self, records: Vec<OptRecord>) {
        let mut pending: HashMap<u64, Vec<OptBulk>> = HashMap::new();
        let (mut changes, mut bulk) = (0u64, 0u64);
        for r in records {
            match r {
                OptRecord::Change(c) => {
                    self.apply_change(&c);
                    changes += 1;
                }
                OptRecord::Bulk(b) if b.import_id == 0 => {
                    bulk += self.apply_bulk(&b);
                }
                OptRecord::Bulk(b) => {
                    self.next_import
                        .fetch_max(b.import_id + 1, Ordering::Relaxed);
                    pending.entry(b.import_id).or_default().push(b);
                }
                OptRecord::Commit(c) => {
                    let mut scope = String::new();
                    for b in pending.remove(&c.import_id).unwrap_or_default() {
                        scope = b.scope.clone();
                        bulk += self.apply_bulk(&b);
                    }
                    self.next_import
                        .fetch_max(c.import_id + 1, Ordering::Relaxed);
                    self.imports.lock().push(ImportInfo {
                        id: c.import_id,
                        scope,
                        source: c.source,
                        count: c.count,
                        at_ms: c.at_ms,
                    });
                }
            }
        }
        if !pending.is_empty() {
            tracing::warn!(target: TARGET, imports = pending.len(),
                "discarded imports that never committed (interrupted); run them again");
        }
        tracing::info!(target: TARGET, changes, bulk, suppressed = self.set.len(), "opt-outs recovered");
    }

    fn apply_change(&self, c: &OptChange) {
        let Ok(n) = Msisdn::from_u64(c.number) else {
            return;
        };
        let scope = self.set.scope(&c.scope);
        if c.opted_out {
            self.set.insert(scope, n);
            self.optout_epoch.fetch_add(1, Ordering::Release);
        } else {
            self.set.remove(scope, n);
        }
        self.audit
            .lock()
            .entry(c.number)
            .or_default()
            .push(AuditEntry {
                scope: c.scope.clone(),
                opted_out: c.opted_out,
                source: c.source.clone(),
                keyword: c.keyword.clone(),
                sender: c.sender.clone(),
                carrier: c.carrier.clone(),
                at_ms: c.at_ms,
                node: c.origin.clone(),
            });
    }

    fn apply_bulk(&self, b: &OptBulk) -> u64 {
        let scope = self.set.scope(&b.scope);
        let added = self.set.bulk_insert(
            scope,
            b.numbers.iter().filter_map(|n| Msisdn::from_u64(*n).ok()),
        );
        self.optout_epoch.fetch_add(1, Ordering::Release);
        added
    }

    /// Whether the opt-outs' journal has failed (nothing more can be stored
    /// until a restart), for readiness and metrics.
    pub fn journal_failure(&self) -> crate::journal::Failure {
        self.journal.failure()
    }

    /// A number that grows after every opt-out reaches the suppression set
    /// (single or bulk). A message checked at epoch `e` needs no new look
    /// while the epoch is still `e`; read it before checking.
    pub fn epoch(&self) -> u64 {
        self.optout_epoch.load(Ordering::Acquire)
    }

    /// The scopes that apply to a message from `from` in `tenant`.
    fn scopes_for(&self, tenant: &str, from: &Sender) -> ([ScopeId; 3], usize) {
        let mut scopes = [self.global; 3];
        let mut n = 1;
        let directory = self.directory.read();
        if let Some(t) = directory.tenants.get(tenant) {
            scopes[n] = *t;
            n += 1;
        }
        if let Some(p) = directory.program(&from.address(), tenant)
            && &*p.tenant == tenant
        {
            scopes[n] = p.scope;
            n += 1;
        }
        (scopes, n)
    }

    /// The narrowest opt-out scope a message from `from` in `tenant` falls
    /// in: its sender program's, else its tenant's (campaign attribution:
    /// a STOP to that sender opts out of this scope).
    pub fn sender_scope(&self, tenant: &str, from: &Sender) -> Option<Arc<str>> {
        let (scopes, n) = self.scopes_for(tenant, from);
        (n > 1)
            .then(|| self.set.scope_name(scopes[n - 1]))
            .flatten()
    }

    /// The scope a message's recipient opted out of, if any (admission and
    /// dispatch).
    pub fn check(&self, tenant: &str, from: &Sender, to: Msisdn) -> Option<Arc<str>> {
        let (scopes, n) = self.scopes_for(tenant, from);
        let hit = self.set.is_suppressed(&scopes[..n], to)?;
        self.set.scope_name(hit)
    }

    /// The tenant owning sender address `to`.
    pub fn owner(&self, to: &str) -> Option<Arc<str>> {
        self.tenant_senders
            .read()
            .get(to.trim().trim_start_matches('+'))
            .cloned()
    }

    /// Takes the tenants' senders of a reloaded `config`, theirs and their
    /// programs' (a later tenant in `config` wins a sender two name): a
    /// STOP sent to a sender a tenant just got is that tenant's, and one
    /// sent to a sender it lost is no longer.
    pub fn set_tenant_senders(&self, config: &Config) {
        let mut map = HashMap::new();
        for t in &config.tenants {
            let name: Arc<str> = t.name.as_str().into();
            let program_senders = t.programs.iter().flat_map(|p| &p.senders);
            for s in t.senders.iter().chain(program_senders) {
                map.insert(s.trim_start_matches('+').to_owned(), name.clone());
            }
        }
        *self.tenant_senders.write() = map;
    }

    /// Enters tenants a reload added: each one's opt-out scope, programs
    /// and senders apply from now on (tenants known already are left as
    /// they are).
    ///
    /// # Errors
    /// A program's keywords are invalid or the set has no room for the
    /// scopes; nothing changed.
    pub fn add_tenants(
        &self,
        tenants: &[crate::settings::TenantConfig],
    ) -> Result<(), ComplianceError> {
        let mut directory = self.directory.write();
        let mut next = Directory::clone(&directory);
        let mut senders = self.tenant_senders.read().clone();
        for t in tenants
            .iter()
            .filter(|t| !directory.tenants.contains_key(&t.name))
        {
            next.enter(&self.set, &mut senders, t)?;
        }
        *directory = Arc::new(next);
        *self.tenant_senders.write() = senders;
        Ok(())
    }

    /// True when `number` is suppressed in `scope`.
    pub fn check_scope(&self, scope: &str, number: Msisdn) -> bool {
        self.set
            .find_scope(scope)
            .is_some_and(|s| self.set.contains(s, number))
    }

    /// Numbers suppressed in all scopes.
    pub fn count(&self) -> u64 {
        self.set.len()
    }

    /// Numbers suppressed in `scope`.
    pub fn count_scope(&self, scope: &str) -> u64 {
        self.set
            .find_scope(scope)
            .map_or(0, |s| self.set.len_scope(s))
    }

    /// Scopes `number` is suppressed in.
    pub fn scopes_of(&self, number: Msisdn) -> Vec<String> {
        let directory = self.directory.read().clone();
        let mut names: Vec<String> = directory
            .tenants
            .values()
            .copied()
            .chain(std::iter::once(self.global))
            .chain(directory.programs.values().flatten().map(|p| p.scope))
            .filter(|s| self.set.contains(*s, number))
            .filter_map(|s| self.set.scope_name(s).map(|n| n.to_string()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The audit trail of `number` (imports are listed by [`Compliance::imports`]).
    pub fn audit(&self, number: Msisdn) -> Vec<AuditEntry> {
        self.audit
            .lock()
            .get(&number.as_u64())
            .cloned()
            .unwrap_or_default()
    }

    /// Committed imports.
    pub fn imports(&self) -> Vec<ImportInfo> {
        self.imports.lock().clone()
    }

    /// Sends this node's own changes to the cluster too (once, at start).
    pub fn set_publisher(&self, publisher: Arc<dyn OptPublisher>, node_id: &str) {
        let _ = self.publisher.set((publisher, node_id.to_owned()));
    }

    /// Records an opt-out or opt-in (journaled and synced first; in
    /// cluster mode queued for the other nodes before that); returns
    /// whether it changed anything.
    ///
    /// # Errors
    /// The journal (or the cluster outbox) failed; nothing changed.
    pub async fn change(&self, mut change: OptChange) -> Result<bool, ComplianceError> {
        let _w = self.write.lock().await;
        if let Some((publisher, node)) = self.publisher.get() {
            change.origin.clone_from(node);
            publisher.record(&change)?;
        }
        self.commit(change).await
    }

    /// Applies a change another cluster node made (journaled here, not
    /// sent back): last writer wins, so a change older than this node's
    /// latest for the same number and scope is ignored. Returns whether it
    /// changed anything.
    ///
    /// # Errors
    /// The journal failed; nothing changed.
    pub async fn apply_remote(&self, change: OptChange) -> Result<bool, ComplianceError> {
        let _w = self.write.lock().await;
        let Ok(n) = Msisdn::from_u64(change.number) else {
            return Ok(false);
        };
        if self.newer_here(change.number, &change.scope, change.at_ms) {
            return Ok(false);
        }
        let now = self
            .set
            .find_scope(&change.scope)
            .is_some_and(|s| self.set.contains(s, n));
        if now == change.opted_out {
            return Ok(false);
        }
        self.commit(change).await
    }

    /// Applies numbers another node added to `scope` in bulk at `at_ms`;
    /// returns how many were new here.
    ///
    /// # Errors
    /// The journal failed; nothing changed.
    pub async fn apply_remote_bulk(
        &self,
        scope: &str,
        numbers: &[u64],
        at_ms: u64,
    ) -> Result<u64, ComplianceError> {
        let timed: Vec<(u64, u64)> = numbers.iter().map(|n| (*n, at_ms)).collect();
        self.apply_remote_timed(scope, &timed).await
    }

    /// Applies opt-outs another node holds in `scope`, each `(number,
    /// at_ms)` unless this node changed that number later; returns how
    /// many were new here.
    ///
    /// # Errors
    /// The journal failed; nothing changed.
    pub async fn apply_remote_timed(
        &self,
        scope: &str,
        numbers: &[(u64, u64)],
    ) -> Result<u64, ComplianceError> {
        let _w = self.write.lock().await;
        let sc = self.set.scope(scope);
        let fresh: Vec<u64> = {
            // One look at the audit for the whole chunk (a full load sends
            // thousands of numbers at once).
            let audit = self.audit.lock();
            numbers
                .iter()
                .filter(|(n, at)| {
                    Msisdn::from_u64(*n).is_ok_and(|m| !self.set.contains(sc, m))
                        && !newer_in(&audit, *n, scope, *at)
                })
                .map(|(n, _)| *n)
                .collect()
        };
        if fresh.is_empty() {
            return Ok(0);
        }
        for chunk in fresh.chunks(BULK_CHUNK) {
            self.journal
                .opt_bulk(&OptBulk {
                    import_id: 0,
                    scope: scope.to_owned(),
                    numbers: chunk.to_vec(),
                })
                .wait()
                .await?;
        }
        let added = self
            .set
            .bulk_insert(sc, fresh.iter().filter_map(|n| Msisdn::from_u64(*n).ok()));
        self.optout_epoch.fetch_add(1, Ordering::Release);
        metrics::counter!("sluice_optouts_total", "direction" => "out", "source" => "cluster")
            .increment(added);
        Ok(added)
    }

    /// True when this node has a change for `number` in `scope` later than
    /// `at_ms`.
    fn newer_here(&self, number: u64, scope: &str, at_ms: u64) -> bool {
        newer_in(&self.audit.lock(), number, scope, at_ms)
    }

    /// Whether `number` is suppressed in `scope` here, and when this node
    /// last changed that (0: never by a single change).
    pub fn state_of(&self, number: u64, scope: &str) -> (bool, u64) {
        let on = Msisdn::from_u64(number).is_ok_and(|n| self.check_scope(scope, n));
        let at = self.audit.lock().get(&number).map_or(0, |trail| {
            trail
                .iter()
                .rev()
                .find(|e| e.scope == scope)
                .map_or(0, |e| e.at_ms)
        });
        (on, at)
    }

    async fn commit(&self, change: OptChange) -> Result<bool, ComplianceError> {
        let n = Msisdn::from_u64(change.number)
            .map_err(|_| ComplianceError::UnknownScope(change.scope.clone()))?;
        let scope = self.set.scope(&change.scope);
        let already = self.set.contains(scope, n);
        let changes = already != change.opted_out;
        // An opt-out suppresses at once, even before it is durable: a
        // message held back for an opt-out that a crash then loses is the
        // safe mistake; one sent after the STOP is not.
        if change.opted_out && !already {
            self.set.insert(scope, n);
            self.optout_epoch.fetch_add(1, Ordering::Release);
        }
        if let Err(e) = self.journal.opt_change(&change).wait().await {
            if change.opted_out && !already {
                self.set.remove(scope, n);
            }
            return Err(e.into());
        }
        self.apply_change(&change);
        let source = if change.origin.is_empty() || self.is_own(&change.origin) {
            change.source.clone()
        } else {
            "cluster".to_owned()
        };
        metrics::counter!("sluice_optouts_total",
            "direction" => if change.opted_out { "out" } else { "in" },
            "source" => source)
        .increment(1);
        Ok(changes)
    }

    fn is_own(&self, origin: &str) -> bool {
        self.publisher.get().is_some_and(|(_, node)| node == origin)
    }

    /// Classifies and applies an inbound message sent by `from` to `to`
    /// (a sender address) through `carrier` over `channel` (`sms`/`mms`).
    ///
    /// # Errors
    /// The journal failed: nothing was applied and no reply may go out.
    pub async fn inbound(
        &self,
        from: Msisdn,
        to: &str,
        text: &str,
        carrier: &str,
        channel: &str,
    ) -> Result<Inbound, ComplianceError> {
        let key = to.trim_start_matches('+');
        let Some(tenant) = self.tenant_senders.read().get(key).cloned() else {
            return Ok(Inbound::NoTenant);
        };
        let program = self.directory.read().program(key, &tenant).cloned();
        let keywords = program
            .as_ref()
            .map_or(&self.default_keywords, |p| &p.keywords);
        let Some(m) = keywords.matched(text) else {
            return Ok(Inbound::Forward { tenant });
        };
        let keyword = m.word.to_ascii_uppercase();
        let tenant_wide = tenant_scope(&tenant);
        let scope = match (m.keyword, &program) {
            (Keyword::OptOut { all: true }, _) | (_, None) => tenant_wide,
            (_, Some(p)) if p.stop_covers == StopCovers::Tenant => tenant_wide,
            (_, Some(p)) => p.scope_name.clone(),
        };
        let change = |opted_out| OptChange {
            number: from.as_u64(),
            scope: scope.clone(),
            opted_out,
            source: channel.to_owned(),
            keyword: keyword.clone(),
            sender: to.to_owned(),
            carrier: carrier.to_owned(),
            at_ms: now_ms(),
            origin: String::new(),
        };
        match m.keyword {
            Keyword::OptOut { .. } => {
                let changed = self.change(change(true)).await?;
                let text = program
                    .as_ref()
                    .map_or_else(crate::settings::default_opt_out_text, |p| {
                        p.opt_out_text.clone()
                    });
                Ok(Inbound::OptedOut {
                    tenant,
                    scope,
                    keyword,
                    reply: changed.then_some(text),
                })
            }
            Keyword::OptIn => {
                // An opt-in lifts the tenant-wide scope too when that is
                // where the number was (STOPALL earlier).
                let mut changed = self.change(change(false)).await?;
                let tw = tenant_scope(&tenant);
                let tenant_wide = self.directory.read().tenants.get(&*tenant).copied();
                if scope != tw && tenant_wide.is_some_and(|s| self.set.contains(s, from)) {
                    let mut c = change(false);
                    c.scope = tw;
                    changed |= self.change(c).await?;
                }
                let text = program
                    .as_ref()
                    .map_or_else(crate::settings::default_opt_in_text, |p| {
                        p.opt_in_text.clone()
                    });
                Ok(Inbound::OptedIn {
                    tenant,
                    scope,
                    keyword,
                    reply: changed.then_some(text),
                })
            }
            Keyword::Help => Ok(Inbound::Help {
                tenant,
                reply: program
                    .map_or_else(crate::settings::default_help_text, |p| p.help_text.clone()),
            }),
        }
    }

    /// Imports a CSV of numbers into `scope` all-or-nothing: bad rows are
    /// reported by line number and skipped; the good rows take effect
    /// together when the import commits (an interrupted import applies
    /// nothing). `progress` is called every 100,000 rows.
    ///
    /// # Errors
    /// Reading failed, the scope is unknown, or the journal failed.
    pub async fn import<R: BufRead>(
        &self,
        scope: &str,
        reader: R,
        source: &str,
        progress: impl FnMut(import::Progress),
    ) -> Result<import::ImportReport, ComplianceError> {
        if !self.is_scope(scope) {
            return Err(ComplianceError::UnknownScope(scope.to_owned()));
        }
        let report = import::read_all(reader, ImportOptions::default(), progress)?;
        let _w = self.write.lock().await;
        let id = self.next_import.fetch_add(1, Ordering::Relaxed);
        let mut numbers: Vec<u64> = report.unscoped.iter().map(|n| n.as_u64()).collect();
        // Rows naming a scope of their own are imported into it.
        let mut extra: Vec<(String, Vec<u64>)> = Vec::new();
        for (s, ns) in &report.scoped {
            if s == scope {
                numbers.extend(ns.iter().map(|n| n.as_u64()));
            } else if self.is_scope(s) {
                extra.push((s.clone(), ns.iter().map(|n| n.as_u64()).collect()));
            }
        }
        let mut total = 0u64;
        let mut pending = Vec::new();
        for (s, ns) in std::iter::once((scope.to_owned(), numbers)).chain(extra) {
            for chunk in ns.chunks(BULK_CHUNK) {
                total += chunk.len() as u64;
                pending.push(self.journal.opt_bulk(&OptBulk {
                    import_id: id,
                    scope: s.clone(),
                    numbers: chunk.to_vec(),
                }));
            }
        }
        for d in pending {
            d.wait().await?;
        }
        let commit = OptCommit {
            import_id: id,
            source: source.to_owned(),
            count: total,
            at_ms: now_ms(),
        };
        self.journal.opt_commit(&commit).wait().await?;
        // Durable: apply.
        let apply = |s: &str, ns: &[Msisdn]| {
            let sc = self.set.scope(s);
            self.set.bulk_insert(sc, ns.iter().copied());
        };
        apply(scope, &report.unscoped);
        for (s, ns) in &report.scoped {
            if s == scope || self.is_scope(s) {
                apply(s, ns);
            }
        }
        if let Some((publisher, _)) = self.publisher.get() {
            let mut all: Vec<u64> = report.unscoped.iter().map(|n| n.as_u64()).collect();
            for (s, ns) in &report.scoped {
                if s == scope {
                    all.extend(ns.iter().map(|n| n.as_u64()));
                } else if self.is_scope(s) {
                    let ns: Vec<u64> = ns.iter().map(|n| n.as_u64()).collect();
                    publisher.record_bulk(s, &ns, commit.at_ms)?;
                }
            }
            publisher.record_bulk(scope, &all, commit.at_ms)?;
        }
        self.imports.lock().push(ImportInfo {
            id,
            scope: scope.to_owned(),
            source: source.to_owned(),
            count: total,
            at_ms: commit.at_ms,
        });
        metrics::counter!("sluice_optouts_imported_total").increment(total);
        tracing::info!(target: TARGET, scope = %crate::model::LogSafe::new(scope), imported = total, bad = report.bad.len(), "opt-out import committed");
        Ok(report)
    }

    /// True for a known scope name.
    pub fn is_scope(&self, name: &str) -> bool {
        name == GLOBAL
            || name
                .strip_prefix("tenant:")
                .is_some_and(|t| self.directory.read().tenants.contains_key(t))
            || self
                .directory
                .read()
                .programs
                .values()
                .flatten()
                .any(|p| p.scope_name == name)
    }

    /// Every scope this node knows: global, each tenant's, each program's.
    pub fn scope_names(&self) -> Vec<String> {
        let mut names = vec![GLOBAL.to_owned()];
        let directory = self.directory.read().clone();
        names.extend(directory.tenants.keys().map(|t| tenant_scope(t)));
        names.extend(
            directory
                .programs
                .values()
                .flatten()
                .map(|p| p.scope_name.clone()),
        );
        names.sort();
        names.dedup();
        names
    }

    /// The numbers suppressed in `scope`, and those whose latest change
    /// here in `scope` is an opt-in: everything this node would tell a
    /// cluster that has not seen its opt-outs yet.
    pub fn known_numbers(&self, scope: &str) -> (Vec<u64>, Vec<u64>) {
        let out: Vec<u64> = self
            .set
            .find_scope(scope)
            .map(|s| self.set.iter_scope(s).map(|n| n.as_u64()).collect())
            .unwrap_or_default();
        let audit = self.audit.lock();
        let ins = audit
            .iter()
            .filter(|(_, trail)| {
                trail
                    .iter()
                    .rev()
                    .find(|e| e.scope == scope)
                    .is_some_and(|e| !e.opted_out)
            })
            .map(|(n, _)| *n)
            .filter(|n| Msisdn::from_u64(*n).is_ok_and(|m| !self.check_scope(scope, m)))
            .collect();
        (out, ins)
    }

    /// The latest change here for each of `numbers` in `scope`: suppressed
    /// or not, when (wall-clock ms; 0 for a number only an import added)
    /// and on which node (empty: this one).
    pub fn latest_changes(&self, numbers: &[u64], scope: &str) -> Vec<(bool, u64, String)> {
        let audit = self.audit.lock();
        numbers
            .iter()
            .map(|&number| {
                let on = Msisdn::from_u64(number).is_ok_and(|n| self.check_scope(scope, n));
                let (at, node) = audit
                    .get(&number)
                    .and_then(|trail| trail.iter().rev().find(|e| e.scope == scope))
                    .map_or((0, String::new()), |e| (e.at_ms, e.node.clone()));
                (on, at, node)
            })
            .collect()
    }

    /// Writes `scope` as CSV (`number,scope`).
    ///
    /// # Errors
    /// Unknown scope or a write error.
    pub fn export(&self, scope: &str, w: impl std::io::Write) -> Result<u64, ComplianceError> {
        let s = self
            .set
            .find_scope(scope)
            .ok_or_else(|| ComplianceError::UnknownScope(scope.to_owned()))?;
        Ok(import::export_scope(&self.set, s, w)?)
    }

    /// Bytes the in-memory set uses.
    pub fn memory_bytes(&self) -> usize {
        self.set.memory_bytes()
    }
}

/// True when `audit` holds a change for `number` in `scope` later than
/// `at_ms`.
fn newer_in(audit: &HashMap<u64, Vec<AuditEntry>>, number: u64, scope: &str, at_ms: u64) -> bool {
    audit.get(&number).is_some_and(|trail| {
        trail
            .iter()
            .rev()
            .find(|e| e.scope == scope)
            .is_some_and(|e| e.at_ms > at_ms)
    })
}

#[cfg(test)]
mod tests;
