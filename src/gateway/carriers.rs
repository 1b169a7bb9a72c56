//! SMS carriers and MMSCs while the gateway runs: each one started with its
//! queue and its dispatcher ([`CarrierParts::start`],
//! [`CarrierParts::start_mmsc`]), at the start and when a reload adds one,
//! and taken out when a reload removes one ([`CarriersReload::apply`],
//! [`CarriersReload::apply_mms`]), with the routes that choose among them.
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
//! are the reload's other steps).
//!
//! MMSCs ([`CarriersReload::apply_mms`]), with `mms.routes` and
//! `mms.reachable_prefixes`, the same way: one added gets its callback
//! listener (bound at once: an address in use refuses it, leaving nothing
//! behind), queue and lane ([`CarrierParts::start_mmsc`]) and is named an
//! MMS carrier for its events before the MMS routes name it. One removed
//! leaves the MMS routes first, then its queue leaves the scheduler (its
//! lane takes nothing more) and the backlog routes what it queued again
//! ([`crate::backlog::Backlog::retire_mmsc`]); its requests in flight get
//! their answers there, and its callback listener stays for their delivery
//! reports until the restart (its port stays taken). An MMSC the MMS
//! routes in force still name is kept. A name that was an MMSC's stays an
//! MMS carrier's for the events until the restart: an SMS carrier added
//! under it is refused.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::RateSharing;
use crate::backlog::Backlog;
use crate::carrier::Carrier as _;
use crate::carrier::mm7::Mm7Carrier;
use crate::carrier::smpp::SmppCarrier;
use crate::config::{CarrierConfig, Config, MmscConfig};
use crate::ledger::Ledger;
use crate::receipts::Receipts;
use crate::route::{MmsTable, Router, SmsTable};
use crate::schedule::mm7::Mm7Lane;
use crate::schedule::{self, CarrierQueue, DispatchCheck, Scheduler};
use crate::telemetry::Health;

/// What an SMS carrier or an MMSC is started with (an MMSC also needs
/// [`Mmscs`]).
#[derive(Clone)]
pub(crate) struct CarrierParts {
    pub(crate) receipts: Arc<Receipts>,
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) scheduler: Arc<Scheduler>,
    pub(crate) router: Arc<Router>,
    pub(crate) backlog: Arc<Backlog>,
    pub(crate) health: Arc<Health>,
    /// Asked right before each part is written (opt-outs, validity).
    pub(crate) last_check: DispatchCheck,
}

impl std::fmt::Debug for CarrierParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierParts").finish_non_exhaustive()
    }
}

/// What an MMSC is started with, besides [`CarrierParts`].
#[derive(Clone)]
pub(crate) struct Mmscs {
    /// Where its requests' media come from.
    pub(crate) media: Arc<dyn crate::carrier::mm7::MediaSource>,
    /// Where its callbacks' MMS received go.
    pub(crate) inbound: Arc<crate::inbound::Inbound>,
    /// Its events' channel.
    pub(crate) hub: Arc<crate::events::EventHub>,
}

impl std::fmt::Debug for Mmscs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mmscs").finish_non_exhaustive()
    }
}

/// The MMSCs running: each one's lane and callback listener.
#[derive(Debug, Default)]
pub(crate) struct MmscsRunning {
    /// Each MMSC's lane in force (a reload retunes it).
    pub(crate) lanes: Vec<Arc<Mm7Lane>>,
    /// Callback listeners by MMSC, those of MMSCs a reload removed too
    /// (they stay for the delivery reports until the restart).
    pub(crate) servers: Vec<(Arc<str>, crate::mm7::Mm7Server)>,
}

/// The part of a reload that replaces SMS carriers' binds
/// ([`super::reload`]) and adds and removes SMS carriers and MMSCs.
#[derive(Debug)]
pub struct CarriersReload<'a> {
    pub(crate) carriers: &'a CarrierParts,
    /// What an MMSC added is started with.
    pub(crate) mmscs: &'a Mmscs,
    /// Each MMSC's lane, retuned in place, and the callback listeners.
    pub(crate) running: &'a mut MmscsRunning,
    /// Ends the binds and dispatchers started.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The cluster, whose rates a carrier added shares (cluster mode).
    pub(crate) cluster: Option<&'a crate::cluster::Link>,
}

impl CarrierParts {
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

    /// Starts MMSC `m`'s callback listener (if it has one), its queue
    /// (that of the scheduler's if there is one already; its tenants'
    /// limits from `config`) and its lane's dispatcher; what can fail (the
    /// listener's TLS files or address) comes first, so an MMSC refused
    /// leaves nothing behind. The task stays until shutdown even when a
    /// reload removes the MMSC.
    pub(crate) fn start_mmsc(
        &self,
        mmscs: &Mmscs,
        m: &MmscConfig,
        carrier: &Arc<Mm7Carrier>,
        config: &Config,
        tasks: &mut JoinSet<()>,
        shutdown: &watch::Receiver<bool>,
    ) -> anyhow::Result<(Arc<Mm7Lane>, Option<crate::mm7::Mm7Server>)> {
        let callbacks = crate::inbound::mmsc::MmscCallbacks::new(
            self.receipts.clone(),
            mmscs.inbound.clone(),
            carrier.clone(),
        );
        let server = super::doors::mm7_callbacks(m, callbacks, config)?;
        let queue = self.scheduler.add_mmsc(m, &config.tenants);
        let fallback_to = self.backlog.clone();
        let dispatcher = Mm7Lane::dispatcher(
            queue,
            carrier.clone(),
            self.ledger.clone(),
            self.receipts.clone(),
            Some(self.last_check.clone()),
            Arc::new(move |msg, r: crate::schedule::mm7::Refusal| {
                fallback_to.fallback(msg, r.reason, Some((&r.carrier, r.code)));
            }),
            super::lane_settings(m, config.mms.fallback_before_expiry),
        );
        let lane = dispatcher.carrier.clone();
        let mut shutdown = shutdown.clone();
        tasks.spawn(async move {
            dispatcher.run(shutdown.clone()).await;
            let _ = shutdown.wait_for(|stop| *stop).await;
        });
        Ok((lane, server))
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

impl MmscsRunning {
    /// The callback listener of MMSC `name` in force, if it has one.
    pub(crate) fn server(&self, name: &str) -> Option<&crate::mm7::Mm7Server> {
        self.servers
            .iter()
            .rev()
            .find(|(n, _)| **n == *name)
            .map(|(_, s)| s)
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
        let reordered = reordered(
            now.carriers.iter().map(|c| &c.name),
            new.carriers.iter().map(|c| &c.name),
        );
        if added.is_empty() && removed.is_empty() && now.routes == new.routes && !reordered {
            return;
        }
        if reordered {
            applied.push("carriers (order)".into());
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

    /// Adds the MMSCs `new` names and `now` lacks, removes those it no
    /// longer names, and puts `new`'s MMS routes and reach
    /// (`mms.routes`, `mms.reachable_prefixes`) in force, in `now` and in
    /// the running parts (see the module doc); names what it did in
    /// `applied`; in `refused`, an MMSC it could not add (its URL, TLS or
    /// callback listener cannot be set up, or its name is in use), MMS
    /// routes that name such an MMSC, and an MMSC the MMS routes in force
    /// still name. The dispatchers of MMSCs added run in `tasks`.
    pub(crate) fn apply_mms(
        &mut self,
        now: &mut Config,
        new: &Config,
        tasks: &mut JoinSet<()>,
        applied: &mut Vec<String>,
        refused: &mut Vec<String>,
    ) {
        let added: Vec<&MmscConfig> = new
            .mmsc
            .iter()
            .filter(|n| !now.mmsc.iter().any(|m| m.name == n.name))
            .collect();
        let removed: Vec<String> = now
            .mmsc
            .iter()
            .filter(|m| !new.mmsc.iter().any(|n| n.name == m.name))
            .map(|m| m.name.clone())
            .collect();
        let routes_differ = now.mms.routes != new.mms.routes
            || now.mms.reachable_prefixes != new.mms.reachable_prefixes;
        let reordered = reordered(
            now.mmsc.iter().map(|m| &m.name),
            new.mmsc.iter().map(|m| &m.name),
        );
        if added.is_empty() && removed.is_empty() && !routes_differ && !reordered {
            return;
        }
        if reordered {
            applied.push("mmsc (order)".into());
        }
        let mut table: Vec<Arc<Mm7Carrier>> = self.carriers.router.mms().mmscs().to_vec();
        for m in added {
            match self.add_mmsc(m, now, tasks) {
                Ok(carrier) => {
                    table.push(carrier);
                    now.mmsc.push(m.clone());
                    applied.push(format!("mmsc.{}: added", m.name));
                }
                Err(e) => refused.push(format!("mmsc.{}: {e}", m.name)),
            }
        }
        if routes_differ {
            // Only an MMSC refused above can be missing (the file's MMS
            // routes name its MMSCs).
            let missing: Vec<&str> = new
                .mms
                .routes
                .iter()
                .flat_map(|r| &r.carriers)
                .filter(|n| !table.iter().any(|m| **m.name() == ***n) || removed.contains(n))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                now.mms.routes = new.mms.routes.clone();
                now.mms.reachable_prefixes = new.mms.reachable_prefixes.clone();
                applied.push("mms.routes".into());
            } else {
                refused.push(format!(
                    "mms.routes: name MMSCs not in force: {}",
                    missing.join(", ")
                ));
            }
        }
        let mut gone = Vec::new();
        for name in &removed {
            if now.mms.routes.iter().any(|r| r.carriers.contains(name)) {
                refused.push(format!(
                    "mmsc.{name}: not removed: the MMS routes in force still name it"
                ));
                continue;
            }
            table.retain(|m| **m.name() != **name);
            now.mmsc.retain(|m| m.name != *name);
            gone.push(name);
            applied.push(format!("mmsc.{name}: removed"));
        }
        // In the file's order: without MMS routes, the order of preference.
        now.mmsc.sort_by_key(|m| {
            new.mmsc
                .iter()
                .position(|n| n.name == m.name)
                .unwrap_or(usize::MAX)
        });
        table.sort_by_key(|c| {
            now.mmsc
                .iter()
                .position(|m| *m.name == **c.name())
                .unwrap_or(usize::MAX)
        });
        self.carriers.router.replace_mms(MmsTable::new(
            &now.mms.reachable_prefixes,
            &now.mms.routes,
            table,
        ));
        // Out of the routes: nothing new goes to the MMSCs removed.
        for name in gone {
            let lane = self
                .running
                .lanes
                .iter()
                .position(|l| **l.name() == **name)
                .map(|i| self.running.lanes.remove(i));
            if let (Some(lane), Some(queue)) = (lane, self.carriers.scheduler.remove(name)) {
                self.carriers.backlog.retire_mmsc(lane, queue);
            }
        }
    }

    /// Starts MMSC `m` with its callback listener, queue and lane, not yet
    /// in the routes; `now`: the configuration in force (its `[tls]` and
    /// tenants).
    fn add_mmsc(
        &mut self,
        m: &MmscConfig,
        now: &Config,
        tasks: &mut JoinSet<()>,
    ) -> anyhow::Result<Arc<Mm7Carrier>> {
        self.name_free(&m.name)?;
        let tls = if m.url.starts_with("https://") {
            Some(Arc::new(crate::smpp::tls::client_config(
                now.tls.ca_file.as_deref(),
            )?))
        } else {
            None
        };
        let carrier = Arc::new(Mm7Carrier::new(m, self.mmscs.media.clone(), tls)?);
        let (lane, server) =
            self.carriers
                .start_mmsc(self.mmscs, m, &carrier, now, tasks, &self.shutdown)?;
        // Its events are MMS events: before the routes name it.
        self.mmscs.hub.add_mms_carrier(carrier.name());
        self.running.lanes.push(lane);
        self.running
            .servers
            .extend(server.map(|s| (carrier.name().clone(), s)));
        Ok(carrier)
    }

    /// Refuses a name a carrier or MMSC in force, or one removed and not
    /// gone yet, has.
    fn name_free(&self, name: &str) -> anyhow::Result<()> {
        let retiring = self.carriers.backlog.retired_carriers();
        if self.carriers.scheduler.queue(name).is_some() || retiring.iter().any(|n| **n == *name) {
            anyhow::bail!(
                "the name is still in use (by a carrier or MMSC, or by one removed that is not gone yet)"
            );
        }
        Ok(())
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
        self.name_free(&c.name)?;
        if self.mmscs.hub.is_mms_carrier(&c.name) {
            // Its events would be told apart from an MMSC's by name.
            anyhow::bail!(
                "the name was an MMSC's: it is free for an SMS carrier after the restart"
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

/// Whether the names both lists have come in another order in `b` (without
/// routes, the order of the file is the order of preference).
fn reordered<'a>(
    a: impl Iterator<Item = &'a String> + Clone,
    b: impl Iterator<Item = &'a String> + Clone,
) -> bool {
    let common_a = a.clone().filter(|n| b.clone().any(|m| m == *n));
    let common_b = b.clone().filter(|n| a.clone().any(|m| m == *n));
    !common_a.eq(common_b)
}

#[cfg(test)]
mod tests {
    use super::reordered;

    #[test]
    fn only_names_in_both_lists_in_another_order_are_a_reorder() {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
        let (a, b) = (names(&["x", "y", "z"]), names(&["y", "x"]));
        assert!(reordered(a.iter(), b.iter()));
        // Added and removed names alone are no reorder.
        let c = names(&["w", "x", "z", "v"]);
        assert!(!reordered(a.iter(), c.iter()));
        assert!(!reordered(a.iter(), a.iter()));
    }
}
