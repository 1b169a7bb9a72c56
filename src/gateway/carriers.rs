//! SMS carriers while the gateway runs: each one started with its queue and
//! its dispatcher ([`SmsCarriers::start`]), at the start and when a reload
//! adds one, and taken out when a reload removes one
//! ([`CarriersReload::apply`]), with the `[routes]` that choose among them.
//!
//! Added: its queue, binds and dispatcher start (and, in cluster mode, its
//! rate and the tenants' rates on it are shared) before the routes name
//! it, so nothing is routed to a carrier without a queue. Removed: the
//! routes stop naming it first, then its queue leaves the scheduler (its
//! dispatcher stops) and the backlog takes it over
//! ([`crate::backlog::Backlog::retire_carrier`]): what it queued is routed
//! again, its binds write what they were handed, stay for the receipts
//! (`removal_linger`), then unbind. A carrier the routes in force still
//! name (the new routes were refused) is kept. With no bind up, what it was
//! handed and never wrote goes elsewhere too, and once its binds are gone
//! the parts left of messages partly written end `unknown`. Readiness and
//! the cluster heartbeat follow the SMS carriers in force. A carrier's
//! name can be used again once the one removed is gone (for another SMSC,
//! better a new name: receipts still awaited under the old one are
//! correlated by carrier name and carrier message id). A carrier added
//! counts for readiness once it has been bound.
//!
//! Each carrier removed leaves its dispatcher's task (and, in cluster mode,
//! its rate leases) parked until shutdown.
//!
//! A carrier kept keeps its queue and binds (its `binds`, `rate` and the
//! settings it takes in place, `concat`, `unanswered`, `failover_after`...,
//! are the reload's other steps); MMSCs added or removed wait for the
//! restart.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::RateSharing;
use crate::backlog::Backlog;
use crate::carrier::smpp::SmppCarrier;
use crate::config::{CarrierConfig, Config};
use crate::ledger::Ledger;
use crate::receipts::Receipts;
use crate::route::{Router, SmsTable};
use crate::schedule::{self, CarrierQueue, DispatchCheck, Scheduler};
use crate::telemetry::Health;

/// What an SMS carrier is started with.
#[derive(Clone)]
pub(crate) struct SmsCarriers {
    pub(crate) receipts: Arc<Receipts>,
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) scheduler: Arc<Scheduler>,
    pub(crate) router: Arc<Router>,
    pub(crate) backlog: Arc<Backlog>,
    pub(crate) health: Arc<Health>,
    /// Asked right before each part is written (opt-outs, validity).
    pub(crate) last_check: DispatchCheck,
}

impl std::fmt::Debug for SmsCarriers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsCarriers").finish_non_exhaustive()
    }
}

/// The part of a reload that replaces SMS carriers' binds
/// ([`super::reload`]) and adds and removes SMS carriers.
#[derive(Debug)]
pub struct CarriersReload<'a> {
    pub(crate) carriers: &'a SmsCarriers,
    /// Each MMSC's lane, retuned in place.
    pub(crate) mm7_lanes: &'a [Arc<crate::schedule::mm7::Mm7Lane>],
    /// Ends the binds and dispatchers started.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The cluster, whose rates a carrier added shares (cluster mode).
    pub(crate) cluster: Option<&'a crate::cluster::Link>,
}

impl SmsCarriers {
    /// A carrier of `c`, not started yet.
    pub(crate) fn carrier(&self, c: &CarrierConfig) -> Arc<SmppCarrier> {
        SmppCarrier::new(c, self.receipts.clone(), Some(self.last_check.clone()))
    }

    /// Starts `carrier`'s binds and its dispatcher on `queue`. The task
    /// stays until shutdown even when a reload removes the carrier (a task
    /// of the gateway's set that ends means the gateway cannot go on).
    pub(crate) fn start(
        &self,
        c: &CarrierConfig,
        carrier: &Arc<SmppCarrier>,
        queue: Arc<CarrierQueue>,
        tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
        tasks: &mut JoinSet<()>,
        shutdown: &watch::Receiver<bool>,
    ) {
        carrier.start(c, tls, shutdown);
        let dispatcher = schedule::Dispatcher {
            queue,
            carrier: carrier.clone(),
            ledger: self.ledger.clone(),
            receipts: self.receipts.clone(),
            check: Some(self.last_check.clone()),
        };
        let mut shutdown = shutdown.clone();
        tasks.spawn(async move {
            dispatcher.run(shutdown.clone()).await;
            let _ = shutdown.wait_for(|stop| *stop).await;
        });
    }

    /// Makes readiness follow the SMS carriers of the routes in force.
    pub(crate) fn watch_readiness(&self, policy: crate::readiness::ReadyCarriers) {
        let sms = self.router.sms();
        self.health.watch_carriers(
            policy,
            sms.carriers().iter().map(|(name, c)| {
                (
                    name.clone(),
                    c.clone() as Arc<dyn crate::readiness::Reachable>,
                )
            }),
        );
    }
}

impl CarriersReload<'_> {
    /// Adds the SMS carriers `new` names and `now` lacks, removes those it
    /// no longer names, and puts `new`'s `[routes]` in force, in `now` and
    /// in the running parts (see the module doc); names what it did in
    /// `applied`; in `refused`, a carrier it could not add (its TLS client
    /// configuration does not load, or its name is still in use), routes
    /// that name such a carrier, and a carrier the routes in force still
    /// name. The dispatchers of carriers added run in `tasks`.
    pub(crate) fn apply(
        &self,
        now: &mut Config,
        new: &Config,
        tasks: &mut JoinSet<()>,
        applied: &mut Vec<String>,
        refused: &mut Vec<String>,
    ) {
        let added: Vec<&CarrierConfig> = new
            .carriers
            .iter()
            .filter(|n| !now.carriers.iter().any(|c| c.name == n.name))
            .collect();
        let removed: Vec<String> = now
            .carriers
            .iter()
            .filter(|c| !new.carriers.iter().any(|n| n.name == c.name))
            .map(|c| c.name.clone())
            .collect();
        if added.is_empty() && removed.is_empty() && now.routes == new.routes {
            return;
        }
        let mut table = self.carriers.router.sms().carriers().clone();
        for c in added {
            match self.add(c, &now.tenants, now.tls.ca_file.as_deref(), tasks) {
                Ok(carrier) => {
                    table.insert(carrier.name().clone(), carrier);
                    now.carriers.push(c.clone());
                    applied.push(format!("carriers.{}: added", c.name));
                }
                Err(e) => refused.push(format!("carriers.{}: {e}", c.name)),
            }
        }
        if now.routes != new.routes {
            // Only a carrier refused above can be missing (the file's
            // routes name its carriers).
            let missing: Vec<&str> = new
                .routes
                .iter()
                .flat_map(|r| &r.carriers)
                .filter(|n| !table.contains_key(n.as_str()) || removed.contains(n))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                now.routes = new.routes.clone();
                applied.push("routes".into());
            } else {
                refused.push(format!(
                    "routes: name carriers not in force: {}",
                    missing.join(", ")
                ));
            }
        }
        let mut gone = Vec::new();
        for name in &removed {
            if now.routes.iter().any(|r| r.carriers.contains(name)) {
                refused.push(format!(
                    "carriers.{name}: not removed: the routes in force still name it"
                ));
                continue;
            }
            if let Some(carrier) = table.remove(name.as_str()) {
                gone.push(carrier);
            }
            now.carriers.retain(|c| c.name != *name);
            applied.push(format!("carriers.{name}: removed"));
        }
        // The carriers in force, in the file's order (the order of the
        // routes when there is no route table).
        now.carriers.sort_by_key(|c| {
            new.carriers
                .iter()
                .position(|n| n.name == c.name)
                .unwrap_or(usize::MAX)
        });
        self.carriers.router.replace_sms(SmsTable::new(
            &now.routes,
            now.carriers.iter().map(|c| Arc::from(c.name.as_str())),
            table,
        ));
        // Out of the routes: nothing new goes to the carriers removed.
        for carrier in gone {
            if let Some(queue) = self.carriers.scheduler.remove(carrier.name()) {
                self.carriers.backlog.retire_carrier(carrier, queue);
            }
        }
        self.carriers.watch_readiness(now.http.ready_carriers);
    }

    /// Starts carrier `c` with its queue, binds and dispatcher (its rates
    /// shared in cluster mode), not yet in the routes.
    /// `ca_file`: that of the configuration in force (`[tls]` changes wait
    /// for the restart).
    fn add(
        &self,
        c: &CarrierConfig,
        tenants: &[crate::config::TenantConfig],
        ca_file: Option<&std::path::Path>,
        tasks: &mut JoinSet<()>,
    ) -> anyhow::Result<Arc<SmppCarrier>> {
        let retiring = self.carriers.backlog.retired_carriers();
        if self.carriers.scheduler.queue(&c.name).is_some()
            || retiring.iter().any(|n| **n == *c.name)
        {
            anyhow::bail!(
                "the name is still in use (by an MMSC, or by a carrier removed whose binds are not gone yet)"
            );
        }
        let tls = if c.binds.iter().any(|b| b.tls) {
            Some(Arc::new(crate::smpp::tls::client_config(ca_file)?))
        } else {
            None
        };
        let queue = self.carriers.scheduler.add_sms_carrier(c, tenants);
        let carrier = self.carriers.carrier(c);
        carrier.mark_added_live();
        if let Some(link) = self.cluster {
            let mut sharing = RateSharing {
                link,
                scheduler: &self.carriers.scheduler,
                carriers: std::slice::from_ref(c),
                tasks: &mut *tasks,
                shutdown: &self.shutdown,
            };
            if c.rate > 0.0 {
                sharing.share(&super::RateOf::Carrier(c.name.clone()), c.rate);
            }
            for t in tenants.iter().filter(|t| t.rate > 0.0) {
                sharing.share(&super::RateOf::Tenant(t.name.clone()), t.rate);
            }
        }
        self.carriers
            .start(c, &carrier, queue, tls, tasks, &self.shutdown);
        Ok(carrier)
    }
}
