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

/// The compliance service (see the module doc).
#[derive(Debug)]
pub struct Compliance {
    set: SuppressionSet,
    journal: Journal,
    global: ScopeId,
    tenants: HashMap<String, ScopeId>,
    /// Sender address (without `+`) → program.
    programs: HashMap<String, Arc<Program>>,
    /// Sender address (without `+`) → tenant, for senders outside programs.
    tenant_senders: HashMap<String, Arc<str>>,
    default_keywords: Keywords,
    audit: Mutex<HashMap<u64, Vec<AuditEntry>>>,
    imports: Mutex<Vec<ImportInfo>>,
    next_import: AtomicU64,
    /// Serialises changes so the journal order is the apply order.
    write: tokio::sync::Mutex<()>,
    /// Grows after every opt-out reaches the set (see [`Compliance::epoch`]).
    optout_epoch: AtomicU64,
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
            ..JournalConfig::default()
        };
        let (journal, recovered) = Journal::open(dir, &jcfg)?;
        let set = SuppressionSet::new();
        let global = set.scope(GLOBAL);
        let mut tenants = HashMap::new();
        let mut programs = HashMap::new();
        let mut tenant_senders = HashMap::new();
        for t in &config.tenants {
            let name: Arc<str> = t.name.as_str().into();
            tenants.insert(t.name.clone(), set.scope(&tenant_scope(&t.name)));
            for s in &t.senders {
                tenant_senders.insert(s.trim_start_matches('+').to_owned(), name.clone());
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
                    scope: set.scope(&scope_name),
                    scope_name,
                    help_text: p.help_text.clone(),
                    opt_out_text: p.opt_out_text.clone(),
                    opt_in_text: p.opt_in_text.clone(),
                    stop_covers: p.stop_covers,
                    keywords,
                });
                for s in &p.senders {
                    let key = s.trim_start_matches('+').to_owned();
                    tenant_senders.insert(key.clone(), name.clone());
                    programs.insert(key, program.clone());
                }
            }
        }
        let c = Compliance {
            set,
            journal,
            global,
            tenants,
            programs,
            tenant_senders,
            default_keywords: Keywords::new(),
            audit: Mutex::default(),
            imports: Mutex::default(),
            next_import: AtomicU64::new(1),
            write: tokio::sync::Mutex::new(()),
            optout_epoch: AtomicU64::new(0),
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
        if let Some(t) = self.tenants.get(tenant) {
            scopes[n] = *t;
            n += 1;
        }
        let key = from.address();
        if let Some(p) = self.programs.get(key.trim_start_matches('+'))
            && &*p.tenant == tenant
        {
            scopes[n] = p.scope;
            n += 1;
        }
        (scopes, n)
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
            .get(to.trim().trim_start_matches('+'))
            .cloned()
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
        let mut names: Vec<String> = self
            .tenants
            .values()
            .copied()
            .chain(std::iter::once(self.global))
            .chain(self.programs.values().map(|p| p.scope))
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

    /// Records an opt-out or opt-in (journaled and synced first); returns
    /// whether it changed anything.
    ///
    /// # Errors
    /// The journal failed; nothing changed.
    pub async fn change(&self, change: OptChange) -> Result<bool, ComplianceError> {
        let _w = self.write.lock().await;
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
        metrics::counter!("sluice_optouts_total",
            "direction" => if change.opted_out { "out" } else { "in" },
            "source" => change.source.clone())
        .increment(1);
        Ok(changes)
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
        let program = self.programs.get(key).cloned();
        let Some(tenant) = self.tenant_senders.get(key).cloned() else {
            return Ok(Inbound::NoTenant);
        };
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
                if scope != tw
                    && self
                        .tenants
                        .get(&*tenant)
                        .is_some_and(|s| self.set.contains(*s, from))
                {
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
                .is_some_and(|t| self.tenants.contains_key(t))
            || self.programs.values().any(|p| p.scope_name == name)
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

#[cfg(test)]
mod tests;
