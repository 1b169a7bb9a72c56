//! Routing: which SMS carrier takes a recipient, and which MMSC a message
//! with media goes to (or why it cannot go as MMS).
//!
//! The tables ([`Routes`], [`MmsRoutes`]) are plain values that decide from
//! a recipient and a "does this carrier take traffic now" question, so the
//! choice is tested without carriers or sockets; [`Router`] asks the live
//! carriers. The SMS side ([`SmsTable`]: routes and carriers) is replaced
//! whole by a reload that adds or removes carriers or changes `[routes]`
//! ([`Router::replace_sms`]), and the MMS side ([`MmsTable`]: `[mms]`
//! reach and routes, and the MMSCs) by one that adds or removes MMSCs or
//! changes the MMS routes ([`Router::replace_mms`]); readers take a
//! snapshot (an `arc_swap` load, no lock on the per-message path), so a
//! batch is routed by one table. Moving a down carrier's queue elsewhere
//! (failover) is the backlog's job (`backlog::failover`), which asks the
//! router where to.
//!
//! # SMS
//! The first carrier of the first route whose E.164 prefix matches that has
//! a bind up, else that route's first carrier (its traffic waits there).
//! Without a route table every recipient may use every carrier, in
//! configuration order.
//!
//! # MMS
//! A message with media goes to the first MMSC of its MMS route
//! (`[[mms.routes]]`, or every MMSC in configuration order) that takes
//! traffic (up, or down with a try due: [`Mm7Carrier::takes_traffic`]);
//! when none does, to the route's first. [`NoMms`] says why a message
//! cannot go as MMS at all (it then falls back to SMS per its policy).

use std::sync::Arc;

use crate::carrier::mm7::Mm7Carrier;
use crate::carrier::smpp::SmppCarrier;
use crate::model::hashing::FastMap;
use crate::model::{ChannelPref, Message, Msisdn};
use crate::settings::{Config, RouteConfig};

#[cfg(test)]
mod tests;

/// Prefix routes to carriers (by name, in order of preference).
#[derive(Debug, Clone, Default)]
pub struct Routes {
    table: Vec<(String, Vec<Arc<str>>)>,
}

impl Routes {
    /// The route table; an empty one routes everything to `all`, in order.
    pub fn new(routes: &[RouteConfig], all: impl IntoIterator<Item = Arc<str>>) -> Routes {
        let mut table: Vec<(String, Vec<Arc<str>>)> = routes
            .iter()
            .map(|r| (r.prefix.clone(), names(&r.carriers)))
            .collect();
        if table.is_empty() {
            table.push((String::new(), all.into_iter().collect()));
        }
        Routes { table }
    }

    /// The carriers of the first route matching `to`, in order of
    /// preference; `None` when no route matches.
    pub fn candidates(&self, to: Msisdn) -> Option<&[Arc<str>]> {
        let number = to.e164();
        let number = number.as_str();
        self.table
            .iter()
            .find(|(prefix, _)| number.starts_with(prefix.as_str()))
            .map(|(_, carriers)| carriers.as_slice())
    }

    /// The carrier for `to`: the first candidate that is `up`, else the
    /// first candidate.
    pub fn pick(&self, to: Msisdn, up: impl Fn(&str) -> bool) -> Option<&Arc<str>> {
        let carriers = self.candidates(to)?;
        carriers.iter().find(|c| up(c)).or_else(|| carriers.first())
    }
}

fn names(carriers: &[String]) -> Vec<Arc<str>> {
    carriers.iter().map(|c| Arc::from(c.as_str())).collect()
}

/// Why a message with media cannot go as MMS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoMms {
    /// The message asked for SMS.
    #[error("SMS requested")]
    SmsRequested,
    /// No MMSC is configured.
    #[error("no MMS carrier configured")]
    NoMmsc,
    /// The recipient's number is outside the MMS-reachable prefixes.
    #[error("{0} is not reachable by MMS")]
    Unreachable(Msisdn),
    /// No MMS route matches the recipient.
    #[error("no MMS route reaches {0}")]
    NoRoute(Msisdn),
}

/// MMS reachability and routes to MMSCs.
#[derive(Debug, Clone, Default)]
pub struct MmsRoutes {
    /// Recipients under these prefixes can receive MMS.
    reachable: Vec<String>,
    /// Prefix → MMSC names; empty: every MMSC in `all`.
    table: Vec<(String, Vec<Arc<str>>)>,
    /// Every MMSC, in configuration order.
    all: Vec<Arc<str>>,
}

impl MmsRoutes {
    /// The MMS side of the configuration.
    pub fn new(
        reachable: &[String],
        routes: &[RouteConfig],
        all: impl IntoIterator<Item = Arc<str>>,
    ) -> MmsRoutes {
        MmsRoutes {
            reachable: reachable.to_vec(),
            table: routes
                .iter()
                .map(|r| (r.prefix.clone(), names(&r.carriers)))
                .collect(),
            all: all.into_iter().collect(),
        }
    }

    /// True when `to` can receive MMS (by the configured prefixes).
    pub fn reachable(&self, to: Msisdn) -> bool {
        let n = to.e164();
        let n = n.as_str();
        self.reachable.iter().any(|p| n.starts_with(p.as_str()))
    }

    /// The MMSCs that may carry MMS to `to`, in order of preference; empty
    /// when no MMS route matches. Names no MMSC has are left out.
    pub fn candidates(&self, to: Msisdn) -> Vec<&Arc<str>> {
        if self.table.is_empty() {
            return self.all.iter().collect();
        }
        let number = to.e164();
        let number = number.as_str();
        self.table
            .iter()
            .find(|(prefix, _)| number.starts_with(prefix.as_str()))
            .map(|(_, names)| {
                names
                    .iter()
                    .filter(|n| self.all.contains(n))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    }

    /// The MMSC for `m`: the first candidate that `takes_traffic`, else the
    /// first candidate; or why it cannot go as MMS.
    ///
    /// # Errors
    /// [`NoMms`]: SMS was asked for, no MMSC exists, the recipient is
    /// outside MMS reach or no MMS route matches.
    pub fn pick(
        &self,
        m: &Message,
        takes_traffic: impl Fn(&str) -> bool,
    ) -> Result<Arc<str>, NoMms> {
        if m.channel == ChannelPref::Sms {
            return Err(NoMms::SmsRequested);
        }
        if self.all.is_empty() {
            return Err(NoMms::NoMmsc);
        }
        if !self.reachable(m.to) {
            return Err(NoMms::Unreachable(m.to));
        }
        let candidates = self.candidates(m.to);
        candidates
            .iter()
            .find(|c| takes_traffic(c))
            .or_else(|| candidates.first())
            .map(|c| (*c).clone())
            .ok_or(NoMms::NoRoute(m.to))
    }
}

/// The SMS routes joined to the SMS carriers they name: one consistent
/// snapshot ([`Router::sms`]).
#[derive(Debug, Default)]
pub struct SmsTable {
    routes: Routes,
    carriers: FastMap<Arc<str>, Arc<SmppCarrier>>,
}

impl SmsTable {
    /// `routes` (none: every carrier, in `order`) over `carriers`.
    pub fn new(
        routes: &[RouteConfig],
        order: impl IntoIterator<Item = Arc<str>>,
        carriers: FastMap<Arc<str>, Arc<SmppCarrier>>,
    ) -> SmsTable {
        SmsTable {
            routes: Routes::new(routes, order),
            carriers,
        }
    }

    /// The SMS carrier for `to` (see the module doc); `None` when no route
    /// matches.
    pub fn carrier_for(&self, to: Msisdn) -> Option<&Arc<str>> {
        self.routes.pick(to, |c| {
            self.carriers.get(c).is_some_and(|c| c.binds_up() > 0)
        })
    }

    /// The SMS carriers by name.
    pub fn carriers(&self) -> &FastMap<Arc<str>, Arc<SmppCarrier>> {
        &self.carriers
    }
}

/// The MMS routes joined to the MMSCs: one consistent snapshot
/// ([`Router::mms`]).
#[derive(Debug, Default)]
pub struct MmsTable {
    routes: MmsRoutes,
    mmscs: Vec<Arc<Mm7Carrier>>,
}

impl MmsTable {
    /// `[mms]`'s reach and routes (none: every MMSC, in order) over
    /// `mmscs`, in configuration order.
    pub fn new(
        reachable: &[String],
        routes: &[RouteConfig],
        mmscs: Vec<Arc<Mm7Carrier>>,
    ) -> MmsTable {
        MmsTable {
            routes: MmsRoutes::new(reachable, routes, mmscs.iter().map(|m| m.name().clone())),
            mmscs,
        }
    }

    /// The MMSC for a message with media (see the module doc).
    ///
    /// # Errors
    /// Why it cannot go as MMS.
    pub fn mmsc_for(&self, m: &Message) -> Result<Arc<str>, NoMms> {
        self.routes
            .pick(m, |n| self.mmsc(n).is_some_and(|c| c.takes_traffic()))
    }

    /// The MMSCs that may carry MMS to `to`, in order of preference.
    pub fn candidates(&self, to: Msisdn) -> Vec<&Arc<Mm7Carrier>> {
        self.routes
            .candidates(to)
            .into_iter()
            .filter_map(|n| self.mmsc(n))
            .collect()
    }

    /// The MMSCs, in configuration order.
    pub fn mmscs(&self) -> &[Arc<Mm7Carrier>] {
        &self.mmscs
    }

    /// The MMSC called `name`.
    pub fn mmsc(&self, name: &str) -> Option<&Arc<Mm7Carrier>> {
        self.mmscs.iter().find(|c| **c.name() == *name)
    }
}

/// The route tables joined to the live carriers.
#[derive(Debug)]
pub struct Router {
    sms: arc_swap::ArcSwap<SmsTable>,
    mms: arc_swap::ArcSwap<MmsTable>,
}

impl Router {
    /// Routes of `config` over these carriers and MMSCs.
    pub fn new(
        config: &Config,
        carriers: FastMap<Arc<str>, Arc<SmppCarrier>>,
        mmscs: Vec<Arc<Mm7Carrier>>,
    ) -> Router {
        let sms = SmsTable::new(
            &config.routes,
            config.carriers.iter().map(|c| Arc::from(c.name.as_str())),
            carriers,
        );
        let mms = MmsTable::new(&config.mms.reachable_prefixes, &config.mms.routes, mmscs);
        Router {
            sms: arc_swap::ArcSwap::from_pointee(sms),
            mms: arc_swap::ArcSwap::from_pointee(mms),
        }
    }

    /// The SMS routes and carriers now: a snapshot a batch is routed by.
    pub fn sms(&self) -> Arc<SmsTable> {
        self.sms.load_full()
    }

    /// Puts `table` in force (a reload added or removed carriers, or
    /// changed the routes): messages routed from now on use it.
    pub fn replace_sms(&self, table: SmsTable) {
        self.sms.store(Arc::new(table));
    }

    /// The MMS routes and MMSCs now: a snapshot a batch is routed by.
    pub fn mms(&self) -> Arc<MmsTable> {
        self.mms.load_full()
    }

    /// Puts `table` in force (a reload added or removed MMSCs, or changed
    /// the MMS routes): messages routed from now on use it.
    pub fn replace_mms(&self, table: MmsTable) {
        self.mms.store(Arc::new(table));
    }

    /// The SMS carrier for `to` now (see the module doc); `None` when no
    /// route matches.
    pub fn sms_carrier(&self, to: Msisdn) -> Option<Arc<str>> {
        self.sms.load().carrier_for(to).cloned()
    }

    /// The MMSC for a message with media now.
    ///
    /// # Errors
    /// Why it cannot go as MMS.
    pub fn mmsc_for(&self, m: &Message) -> Result<Arc<str>, NoMms> {
        self.mms.load().mmsc_for(m)
    }

    /// The shared name of the SMS carrier or MMSC called `name`; `None`
    /// when no carrier has that name (any more).
    pub fn carrier_named(&self, name: &str) -> Option<Arc<str>> {
        self.sms
            .load()
            .carriers
            .get_key_value(name)
            .map(|(k, _)| k.clone())
            .or_else(|| self.mmsc(name).map(|m| m.name().clone()))
    }

    /// The MMSC called `name` now.
    pub fn mmsc(&self, name: &str) -> Option<Arc<Mm7Carrier>> {
        self.mms.load().mmsc(name).cloned()
    }
}
