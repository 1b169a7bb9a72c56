//! Reloading the configuration file on SIGHUP: the limits, the tenants,
//! their credentials, sending rights and event destinations, the SMS
//! carriers, their binds, settings and routes, and the MMSCs, their
//! settings, callback checks and routes change at once, without dropping a
//! queued message (only sessions on replaced
//! credentials are closed, and only carriers whose binds changed have
//! their binds replaced); every other change waits for the next restart
//! and is named in the log.
//!
//! Applied live:
//! - limits ([`crate::schedule::Scheduler::set_limits`]): each SMS
//!   carrier's `rate`, each tenant's `rate`, `weight` and `quiet_hours`,
//!   and the whole `[senders]` section (sender rates, daily caps, brands).
//!   In cluster mode the shared leases follow the new rates (every node
//!   should be reloaded with the same file), a rate switched on from 0 is
//!   shared at once, and one switched off stops leasing;
//! - each tenant's `token`, `senders`, `sender_patterns`,
//!   `default_validity`, `default_country` and `mms_service_codes`
//!   ([`crate::admission::Admission::update_tenant`]): the next batch is
//!   admitted under them; framed sessions that authenticated with a
//!   replaced token have their batches answered, get GoAway and close (the
//!   client connects again with the new one); HTTP and gRPC calls check
//!   the token on every call, and gRPC event streams opened with a
//!   replaced token end (`UNAUTHENTICATED`); a STOP sent to a sender a
//!   tenant just got is that tenant's
//!   ([`crate::compliance::Compliance::set_tenant_senders`]);
//! - the admin tokens (`http.admin_token`, each tenant's `admin_token`);
//! - each tenant's `smpp_system_id` and `smpp_password`: sessions bound
//!   with replaced credentials are unbound (within a second).
//!
//! - tenants added: everything the file says of one applies, as if it had
//!   been there at the start (its opt-out scope and programs, event stream,
//!   webhooks and SMPP-server destination, limits, quiet hours and cluster
//!   leases, media quotas, fallback pages and links; admitted last). One
//!   whose webhook cannot be set up (a CA file that does not load) is not
//!   added, and the log says why;
//! - tenants removed: no longer admitted (their sessions close as for a
//!   replaced token, their SMPP binds unbind, their admin token stops
//!   working). What they had queued is still sent, under their limits,
//!   quiet hours and opt-outs, and their events are still held for their
//!   webhooks, until the next restart (which ends what they still have
//!   queued as rejected, [`crate::recovery`]). Added again, a tenant comes
//!   back.
//!
//! - each tenant's destinations: a webhook endpoint added takes the
//!   tenant's events from then on (its sender started); one changed (URL,
//!   secret, CA file, kinds of event, limits, retries) gets new senders on
//!   the same queue while the old ones finish the request they are in, so
//!   nothing it holds is lost; one removed takes nothing more and the
//!   events it held are dropped, as a restart without it would
//!   ([`crate::events::EventHub::remove_destination`]). An endpoint whose
//!   target cannot be set up (a CA file that does not load) leaves the
//!   tenant's endpoints added or changed by the file as they were, named
//!   under `refused` (its removals and stream switch still apply). A CA
//!   file is compared by its path: new contents at the same path are read
//!   when the endpoint changes otherwise, or at the restart.
//!   `stream_events` switched off drops the stream events no connection
//!   has taken ([`crate::events::EventHub::set_stream`]). A tenant given
//!   SMPP credentials gets the SMPP server as a destination before its
//!   account binds, so its binds get the receipts they ask for.
//!
//! - each SMS carrier's `binds` (addresses, credentials, counts, windows,
//!   rates, timers, TLS; [`crate::carrier::smpp::SmppCarrier::rebind`]):
//!   the new binds start at once beside the old ones, and once one of
//!   them is bound (or after [`crate::carrier::smpp::REPLACE_WITHIN`]) the
//!   old ones retire — they take nothing more, wait for the answers to
//!   what they sent, then unbind — so nothing queued is dropped and
//!   nothing answered is sent twice. A changed
//!   `system_id` leaves the receipts the SMSC still holds for the old
//!   account with that account (most SMSCs deliver receipts to the binds
//!   of the account that submitted): they come if it binds again, else
//!   their messages end when their receipt wait runs out.
//!
//! - SMS carriers added or removed, and `[routes]`
//!   ([`super::carriers`]): a carrier added gets its queue, binds and
//!   dispatcher before the routes name it; one removed leaves the routes
//!   first, then what it queued is routed again, its binds write what they
//!   were handed and stay for the receipts (`removal_linger`), then
//!   unbind ([`crate::backlog::Backlog::retire_carrier`]). A carrier the
//!   routes in force still name is not removed (named under `refused`).
//!
//! - each SMS carrier's `concat`, `count_segments`, `unanswered`,
//!   `failover_after` and `removal_linger`: messages split and weighed
//!   from now on follow them (those queued keep the weight they were given
//!   unless handed back, parts already handed to binds are sent as split).
//!
//! - each MMSC's URL, credentials, addressing, version, size limit,
//!   encodings, service fields, `timeout`, `failover_after` and
//!   `auth_retry_*` ([`crate::carrier::mm7::Mm7Carrier::reconfigure`]):
//!   requests begun from now on use them; one down tries again at once
//!   when its URL or credentials changed, and a refusal of the credentials
//!   replaced does not count. Its lane's `rate`, `unanswered`, `retry_*`,
//!   `fallback_after` and `max_recipients` too, and `connections` (its
//!   HTTP pool and the requests its lane keeps in flight: lowered, those
//!   beyond it end first; [`crate::schedule::mm7::Mm7Lane::retune`]). Its
//!   callback receiver's `callback_username`, `callback_password`,
//!   `callback_allow`, `callback_max_body_bytes` and
//!   `callback_body_timeout`, for the next request
//!   ([`crate::mm7::Mm7Server::set_checks`]).
//!
//! - MMSCs added or removed, and `mms.routes` with
//!   `mms.reachable_prefixes` ([`super::carriers`]): an MMSC added gets its
//!   callback listener, queue and lane before the MMS routes name it; one
//!   removed leaves the MMS routes first, then what it queued is routed
//!   again (another MMSC, else its fallback), its requests in flight end
//!   there, and its callback listener stays for the delivery reports until
//!   the restart ([`crate::backlog::Backlog::retire_mmsc`]). An MMSC the
//!   MMS routes in force still name is not removed (named under
//!   `refused`).
//!
//! - `mms.fallback_before_expiry`, for each MMSC's next look, while it is
//!   down, for messages about to expire.
//!
//! A carrier's `gsm7_packed`, an MMSC's callback listener (its
//! `callback_listen`, TLS files, connection limit, header and idle
//! timeouts), and the rest of `[mms]` wait for the restart.
//! TLS certificates reload on SIGHUP on their own ([`crate::tls`]).
//!
//! Compared for the restart list: every other section, by its debug form,
//! and the secrets left there (an MMSC's `callback_password`,
//! `redis_url`...) by value, so a changed one is named for the restart by
//! its key, never its value.

use std::sync::Arc;

use super::{RateOf, RateSharing};
use crate::admission::Admission;
use crate::config::{Config, MmscConfig, TenantConfig, WebhookConfig};
use crate::model::Secret;
use crate::schedule::Scheduler;

/// What a reload changes while running.
#[derive(Debug)]
pub struct Live<'a> {
    /// The limits.
    pub scheduler: &'a Scheduler,
    /// Tenants' tokens and sending rights.
    pub admission: Option<&'a Admission>,
    /// The admin API's tokens.
    pub admin: Option<&'a crate::admin::Admin>,
    /// Which tenant a sender's inbound messages (a STOP) belong to.
    pub compliance: Option<&'a crate::compliance::Compliance>,
    /// The SMPP server's accounts, when it runs.
    pub smpp_accounts: Option<&'a crate::smpp_server::Accounts>,
    /// The SMS carriers, whose binds are replaced and which are added and
    /// removed, and the MMSCs, added, removed and reconfigured (`None`:
    /// those changes wait for the restart).
    pub carriers: Option<super::carriers::CarriersReload<'a>>,
    /// What only a tenant added needs: its events, webhooks, media quotas,
    /// fallback pages and links, cluster leases (`None`: tenants are not
    /// added or removed).
    pub tenancy: Option<Tenancy<'a>>,
}

/// The parts a tenant added or removed by a reload reaches.
#[derive(Debug)]
pub struct Tenancy<'a> {
    /// Its event stream and destinations.
    pub hub: &'a crate::events::EventHub,
    /// Its webhook endpoints' senders.
    pub webhooks: &'a crate::webhooks::Webhooks,
    /// Its fallbacks' display name and short links.
    pub backlog: &'a crate::backlog::Backlog,
    /// Its media quota.
    pub media: &'a crate::media::store::MediaStore,
    /// The host its short links are answered on, when links are served.
    pub redirects: Option<&'a crate::links::serve::Redirects>,
    /// Where its webhook senders and cluster leases run.
    pub tasks: &'a mut tokio::task::JoinSet<()>,
    /// Ends them.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The cluster, whose rates a tenant's rate shares (cluster mode).
    pub cluster: Option<&'a crate::cluster::Link>,
    /// The carriers its rate applies on.
    pub carriers: &'a [crate::config::CarrierConfig],
    /// Tenants removed since the start: no longer admitted, but what they
    /// queued is still sent under their limits, quiet hours and opt-outs,
    /// and their events are still held, until the next restart.
    pub retired: &'a mut Vec<TenantConfig>,
}

impl Tenancy<'_> {
    /// Shares rates with the cluster, in cluster mode.
    /// Shares rates with the cluster on `carriers` (the SMS carriers in
    /// force), in cluster mode.
    fn sharing<'b>(
        &'b mut self,
        scheduler: &'b Scheduler,
        carriers: &'b [crate::config::CarrierConfig],
    ) -> Option<RateSharing<'b>> {
        Some(RateSharing {
            link: self.cluster?,
            scheduler,
            carriers,
            tasks: &mut *self.tasks,
            shutdown: &self.shutdown,
        })
    }
}

/// What a reload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Limits changed now, as `key: old → new`.
    pub applied: Vec<String>,
    /// Settings that changed in the file and apply at the next restart.
    pub at_restart: Vec<String>,
    /// Tenants the file adds that were not added, with why.
    pub refused: Vec<String>,
}

/// Applies `new`'s limits, tenants' credentials and sending rights,
/// tenants added or removed, their event destinations, SMS carriers'
/// binds and settings, SMS carriers and MMSCs added or removed, the
/// routes, the MMS routes and how MMSC requests are made to `live` (running with `old`) and lists the
/// rest of what changed; returns `old` with what was applied taken from
/// `new` (the configuration now in force).
pub fn apply(old: &Config, new: &Config, live: &mut Live<'_>) -> (Config, Reloaded) {
    let mut r = Reloaded::default();
    let mut now = old.clone();
    let mut limits = false;
    // Carrier and tenant rates that were off: in cluster mode, shared from
    // now on.
    let mut switched_on: Vec<(RateOf, f64)> = Vec::new();
    for c in &mut now.carriers {
        if let Some(n) = new.carriers.iter().find(|n| n.name == c.name)
            && n.rate != c.rate
        {
            r.applied
                .push(format!("carriers.{}.rate: {} → {}", c.name, c.rate, n.rate));
            if c.rate <= 0.0 && n.rate > 0.0 {
                switched_on.push((RateOf::Carrier(c.name.clone()), n.rate));
            }
            c.rate = n.rate;
            limits = true;
        }
    }
    if let Some(carriers) = &live.carriers {
        rebind(&mut now, new, carriers, &mut r);
        retune(&mut now, new, carriers, &mut r);
        fallback_before_expiry(&mut now, new, carriers, &mut r);
        limits |= reconfigure_mmscs(&mut now, new, carriers, &mut r);
    }
    let mut to_admit = Vec::new();
    if let Some(mut tenancy) = live.tenancy.take() {
        let before = r.applied.len();
        to_admit = tenants_in_and_out(&mut now, new, live, &mut tenancy, &mut r);
        limits |= r.applied.len() > before;
        destinations(&mut now, new, &mut tenancy, &mut r);
        if let Some(carriers) = &mut live.carriers {
            let before = r.applied.len();
            carriers.apply(&mut now, new, tenancy.tasks, &mut r.applied, &mut r.refused);
            carriers.apply_mms(&mut now, new, tenancy.tasks, &mut r.applied, &mut r.refused);
            limits |= r.applied.len() > before;
        }
        live.tenancy = Some(tenancy);
    }
    for t in &mut now.tenants {
        let Some(n) = new.tenants.iter().find(|n| n.name == t.name) else {
            continue;
        };
        if n.rate != t.rate {
            r.applied
                .push(format!("tenants.{}.rate: {} → {}", t.name, t.rate, n.rate));
            if t.rate <= 0.0 && n.rate > 0.0 {
                switched_on.push((RateOf::Tenant(t.name.clone()), n.rate));
            }
            t.rate = n.rate;
            limits = true;
        }
        if n.weight != t.weight {
            r.applied.push(format!(
                "tenants.{}.weight: {} → {}",
                t.name, t.weight, n.weight
            ));
            t.weight = n.weight;
            limits = true;
        }
        if n.quiet_hours != t.quiet_hours {
            r.applied.push(format!("tenants.{}.quiet_hours", t.name));
            t.quiet_hours = n.quiet_hours;
            limits = true;
        }
    }
    if old.senders != new.senders {
        r.applied.push("senders".into());
        now.senders = new.senders.clone();
        limits = true;
    }
    let membership = !to_admit.is_empty()
        || r.applied
            .iter()
            .any(|a| a.starts_with("tenants.") && a.ends_with(": removed"));
    if let Some(tenancy) = &mut live.tenancy {
        let known = known(&now, tenancy.retired);
        if limits {
            live.scheduler.set_limits(&known);
        }
        // Over the carriers in force: those a reload adds too.
        if let Some(mut sharing) = tenancy.sharing(live.scheduler, &known.carriers) {
            for (of, rate) in &switched_on {
                sharing.share(of, *rate);
            }
        }
        if membership {
            // What still serves the tenants removed (their fallbacks' pages
            // and links) and serves the tenants added (their media quotas).
            tenancy.backlog.set_tenants(&known);
            tenancy
                .media
                .set_tenant_quotas(crate::uploads::tenant_quotas(&known));
            if let Some(redirects) = tenancy.redirects {
                *redirects.hosts.write() = super::redirect_hosts(&known);
            }
        }
    } else if limits {
        live.scheduler.set_limits(&now);
    }
    // Everything else is in place: the tenants added may send.
    if let Some(a) = live.admission {
        for t in &to_admit {
            a.add_tenant(t);
        }
    }
    tenants(&mut now, new, live, membership, &mut r.applied);
    r.at_restart = at_restart(&now, new, &r.refused);
    (now, r)
}

/// The configuration in force with the tenants removed since the start
/// put back: what the queues, opt-outs and fallbacks still serve. They come
/// first, so a sender or program a tenant in force took over is that
/// tenant's (later tenants win).
fn known(now: &Config, retired: &[TenantConfig]) -> Config {
    let mut known = now.clone();
    known.tenants = retired
        .iter()
        .filter(|r| !now.tenants.iter().any(|t| t.name == r.name))
        .chain(&now.tenants)
        .cloned()
        .collect();
    known
}

/// Adds the tenants `new` names and `now` does not, and removes those it
/// no longer names, in `now` and in the running parts; returns the tenants
/// to admit once the caller has set the limits.
///
/// A tenant added goes everywhere a tenant at the start goes, in an order
/// that never admits a message whose events, opt-outs or limits have
/// nowhere to go: its opt-out scope and programs, its event stream and
/// destinations, its cluster leases, its limits and quiet hours (the
/// caller), and last admission. A tenant removed stops being admitted at
/// once (its sessions close) and is kept as `retired` for what it has in
/// flight. One removed and added again comes back as it was, then takes
/// the file's live settings like any tenant.
fn tenants_in_and_out(
    now: &mut Config,
    new: &Config,
    live: &Live<'_>,
    tenancy: &mut Tenancy<'_>,
    r: &mut Reloaded,
) -> Vec<TenantConfig> {
    let removed: Vec<String> = now
        .tenants
        .iter()
        .filter(|t| !new.tenants.iter().any(|n| n.name == t.name))
        .map(|t| t.name.clone())
        .collect();
    for name in removed {
        let Some(i) = now.tenants.iter().position(|t| t.name == name) else {
            continue;
        };
        let t = now.tenants.remove(i);
        if let Some(a) = live.admission {
            a.remove_tenant(&name);
        }
        tenancy.retired.retain(|x| x.name != name);
        tenancy.retired.push(t);
        r.applied.push(format!("tenants.{name}: removed"));
    }
    let mut to_admit = Vec::new();
    for n in &new.tenants {
        if now.tenants.iter().any(|t| t.name == n.name) {
            continue;
        }
        let t = match tenancy.retired.iter().position(|x| x.name == n.name) {
            // Known still: back as it was, with the file's credentials and
            // sending rights (its limits follow below, like any tenant's).
            Some(i) => {
                let mut t = tenancy.retired.remove(i);
                take(&mut t, n);
                t
            }
            None => match add_tenant(n, live, tenancy) {
                Ok(()) => n.clone(),
                Err(e) => {
                    r.refused.push(format!("tenants.{}: {e}", n.name));
                    continue;
                }
            },
        };
        to_admit.push(t.clone());
        now.tenants.push(t);
        r.applied.push(format!("tenants.{}: added", n.name));
    }
    to_admit
}

/// Brings a new tenant `t` into the running parts but admission (see
/// [`tenants_in_and_out`] for the order); what can fail is done first, so
/// a tenant refused leaves nothing behind but interned scope names.
fn add_tenant(t: &TenantConfig, live: &Live<'_>, tenancy: &mut Tenancy<'_>) -> anyhow::Result<()> {
    let webhooks = crate::webhooks::Webhooks::prepare(&t.webhooks)?;
    if let Some(c) = live.compliance {
        c.add_tenants(std::slice::from_ref(t))?;
    }
    tenancy.hub.add_tenant(&t.name, super::tenant_events(t));
    tenancy.webhooks.start_prepared(
        tenancy.hub,
        &t.name,
        webhooks,
        tenancy.tasks,
        &tenancy.shutdown,
    );
    let carriers = tenancy.carriers;
    if t.rate > 0.0
        && let Some(mut sharing) = tenancy.sharing(live.scheduler, carriers)
    {
        sharing.share(&RateOf::Tenant(t.name.clone()), t.rate);
    }
    Ok(())
}

/// Replaces the binds of each SMS carrier whose `binds` the file changes
/// (addresses, credentials, counts, windows, rates, timers, TLS): the new
/// ones start at once and the old ones retire once what they sent is
/// answered ([`crate::carrier::smpp::SmppCarrier::rebind`]), so nothing
/// queued or in a window is dropped or sent twice. A carrier whose binds
/// need a TLS client configuration that does not load keeps its binds and
/// is named under `refused`.
fn rebind(
    now: &mut Config,
    new: &Config,
    carriers: &super::carriers::CarriersReload<'_>,
    r: &mut Reloaded,
) {
    let sms = carriers.carriers.router.sms();
    let ca_file = now.tls.ca_file.clone();
    for c in &mut now.carriers {
        let Some(n) = new.carriers.iter().find(|n| n.name == c.name) else {
            continue;
        };
        if !binds_differ(&c.binds, &n.binds) {
            continue;
        }
        let Some(carrier) = sms.carriers().get(c.name.as_str()) else {
            continue;
        };
        let tls = if n.binds.iter().any(|b| b.tls) {
            match crate::smpp::tls::client_config(ca_file.as_deref()) {
                Ok(tls) => Some(Arc::new(tls)),
                Err(e) => {
                    r.refused
                        .push(format!("carriers.{}.binds: TLS: {e}", c.name));
                    continue;
                }
            }
        } else {
            None
        };
        carrier.rebind(&n.binds, tls, &carriers.shutdown);
        c.binds = n.binds.clone();
        r.applied.push(format!("carriers.{}.binds", c.name));
    }
}

/// Takes into each SMS carrier in force the settings `new` changes that
/// apply in place: `concat` and `count_segments` for the messages split
/// and weighed from now on (those queued keep their weight unless handed
/// back; parts already handed to binds are sent as split), `unanswered`
/// for the next part left without an answer, `failover_after` for the next
/// look at a carrier down, `removal_linger` for a removal to come
/// ([`crate::carrier::smpp::SmppCarrier::retune`],
/// [`crate::schedule::CarrierQueue::reweigh`]). `gsm7_packed` waits for
/// the restart: a part split before would be read back (its early receipt
/// matched) with the wrong packing.
fn retune(
    now: &mut Config,
    new: &Config,
    carriers: &super::carriers::CarriersReload<'_>,
    r: &mut Reloaded,
) {
    let sms = carriers.carriers.router.sms();
    for c in &mut now.carriers {
        let Some(n) = new.carriers.iter().find(|n| n.name == c.name) else {
            continue;
        };
        let Some(carrier) = sms.carriers().get(c.name.as_str()) else {
            continue;
        };
        let changed: Vec<&str> = [
            ("concat", c.concat != n.concat),
            ("count_segments", c.count_segments != n.count_segments),
            ("unanswered", c.unanswered != n.unanswered),
            ("failover_after", c.failover_after != n.failover_after),
            ("removal_linger", c.removal_linger != n.removal_linger),
        ]
        .into_iter()
        .filter_map(|(key, differs)| differs.then_some(key))
        .collect();
        if changed.is_empty() {
            continue;
        }
        c.concat = n.concat;
        c.count_segments = n.count_segments;
        c.unanswered = n.unanswered;
        c.failover_after = n.failover_after;
        c.removal_linger = n.removal_linger;
        carrier.retune(c);
        if let Some(queue) = carriers.carriers.scheduler.queue(&c.name) {
            queue.reweigh(crate::carrier::smpp::text_options(c), c.count_segments);
        }
        for key in changed {
            r.applied.push(format!("carriers.{}.{key}", c.name));
        }
    }
}

/// Takes `new`'s `mms.fallback_before_expiry` into every MMSC's lane: while
/// an MMSC is down, its next look for messages about to expire uses it
/// (MMSCs added later start with it).
fn fallback_before_expiry(
    now: &mut Config,
    new: &Config,
    carriers: &super::carriers::CarriersReload<'_>,
    r: &mut Reloaded,
) {
    use crate::carrier::Carrier as _;
    if now.mms.fallback_before_expiry == new.mms.fallback_before_expiry {
        return;
    }
    now.mms.fallback_before_expiry = new.mms.fallback_before_expiry;
    for m in &now.mmsc {
        if let Some(lane) = carriers
            .running
            .lanes
            .iter()
            .find(|l| **l.name() == *m.name)
        {
            lane.retune(super::lane_settings(m, now.mms.fallback_before_expiry));
        }
    }
    r.applied.push("mms.fallback_before_expiry".into());
}

/// Takes into each MMSC in force what `new` changes of how its requests
/// are made: `url`, `username`, `password`, `vasp_id`, `vas_id`,
/// `version`, `max_message_bytes`, `media_encoding`, `service`,
/// `presentation`, `timeout`, `failover_after`, `auth_retry_min` and
/// `auth_retry_max` ([`crate::carrier::mm7::Mm7Carrier::reconfigure`]):
/// requests begun from now on use them (a new HTTP client; its profile is
/// rebuilt only when one of these changed); its lane's `rate`,
/// `unanswered`, `retry_*`, `fallback_after` and `max_recipients`
/// ([`crate::schedule::mm7::Mm7Lane::retune`]); and `connections`, both
/// (its HTTP pool and the requests its lane has in flight). One whose new
/// URL or TLS does not load keeps its settings, named under `refused`.
/// Its callback receiver's checks of each request (`callback_username`,
/// `callback_password`, `callback_allow`, `callback_max_body_bytes`,
/// `callback_body_timeout`) apply to the next request
/// ([`crate::mm7::Mm7Server::set_checks`]); its address, TLS files,
/// connection limit and header and idle timeouts wait for the restart.
/// Returns whether a rate changed (the caller sets the limits).
fn reconfigure_mmscs(
    now: &mut Config,
    new: &Config,
    carriers: &super::carriers::CarriersReload<'_>,
    r: &mut Reloaded,
) -> bool {
    use crate::carrier::Carrier as _;
    let ca_file = now.tls.ca_file.clone();
    let mut limits = false;
    let before_expiry = now.mms.fallback_before_expiry;
    for m in &mut now.mmsc {
        let Some(n) = new.mmsc.iter().find(|n| n.name == m.name) else {
            continue;
        };
        let Some(carrier) = carriers.carriers.router.mmsc(&m.name) else {
            continue;
        };
        let mut next = m.clone();
        next.url = n.url.clone();
        next.username = n.username.clone();
        next.password = n.password.clone();
        next.vasp_id = n.vasp_id.clone();
        next.vas_id = n.vas_id.clone();
        next.version = n.version;
        next.max_message_bytes = n.max_message_bytes;
        next.media_encoding = n.media_encoding;
        next.service = n.service.clone();
        next.presentation = n.presentation;
        next.timeout = n.timeout;
        next.failover_after = n.failover_after;
        next.auth_retry_min = n.auth_retry_min;
        next.auth_retry_max = n.auth_retry_max;
        // Both: the size of its HTTP pool and of its lane.
        next.connections = n.connections;
        let profile_changed =
            dbg(&next) != dbg(&*m) || secret_differs(next.password.as_ref(), m.password.as_ref());
        let requests = next.clone();
        // Its lane's.
        next.rate = n.rate;
        next.unanswered = n.unanswered;
        next.retry_min = n.retry_min;
        next.retry_max = n.retry_max;
        next.fallback_after = n.fallback_after;
        next.max_recipients = n.max_recipients;
        let lane_changed = dbg(&next) != dbg(&requests);
        let with_lane = next.clone();
        // Its callback receiver's checks of each request.
        next.callback_username = n.callback_username.clone();
        next.callback_password = n.callback_password.clone();
        next.callback_allow = n.callback_allow.clone();
        next.callback_allow_unauthenticated = n.callback_allow_unauthenticated;
        next.callback_max_body_bytes = n.callback_max_body_bytes;
        next.callback_body_timeout = n.callback_body_timeout;
        let checks_changed = dbg(&next) != dbg(&with_lane)
            || secret_differs(
                next.callback_password.as_ref(),
                m.callback_password.as_ref(),
            )
            // Its answers' version.
            || next.version != m.version;
        if !profile_changed && !lane_changed && !checks_changed {
            continue;
        }
        // The file was checked with its own listener; the one running keeps
        // its address and client CA until the restart.
        let running = MmscConfig {
            callback_listen: m.callback_listen,
            callback_tls_client_ca_file: m.callback_tls_client_ca_file.clone(),
            ..next.clone()
        };
        if checks_changed && let Some(addr) = crate::config::open_callbacks(&running) {
            r.refused.push(format!(
                "mmsc.{}: its callback listener on {addr} (as it runs until the restart) \
                 would take callbacks from beyond loopback without authentication",
                m.name
            ));
            continue;
        }
        if profile_changed {
            let tls = if next.url.starts_with("https://") {
                match crate::smpp::tls::client_config(ca_file.as_deref()) {
                    Ok(tls) => Some(Arc::new(tls)),
                    Err(e) => {
                        r.refused.push(format!("mmsc.{}: TLS: {e}", m.name));
                        continue;
                    }
                }
            } else {
                None
            };
            // New credentials or a new address may be the fix of an MMSC
            // down.
            let retry_now = next.url != m.url
                || next.username != m.username
                || secret_differs(next.password.as_ref(), m.password.as_ref());
            if let Err(e) = carrier.reconfigure(&next, tls, retry_now) {
                r.refused.push(format!("mmsc.{}: {e}", m.name));
                continue;
            }
        }
        // `connections` is in both: compared with `requests`, it is not a
        // lane change.
        if (lane_changed || next.connections != m.connections)
            && let Some(lane) = carriers
                .running
                .lanes
                .iter()
                .find(|l| **l.name() == *m.name)
        {
            lane.retune(super::lane_settings(&next, before_expiry));
        }
        if checks_changed && let Some(server) = carriers.running.server(&m.name) {
            server.set_checks(&super::doors::callback_checks(&next));
        }
        limits |= next.rate != m.rate;
        *m = next;
        r.applied.push(format!("mmsc.{}", m.name));
    }
    limits
}

/// Whether two carriers' binds differ, passwords compared by value.
fn binds_differ(a: &[crate::config::BindConfig], b: &[crate::config::BindConfig]) -> bool {
    dbg(&a) != dbg(&b)
        || a.iter()
            .zip(b)
            .any(|(x, y)| secret_differs(Some(&x.password), Some(&y.password)))
}

/// Gives tenants in force the destinations of their events `new` says:
/// webhook endpoints added (their senders started), changed (new senders on
/// the same queue, the old ones retired: nothing held is lost) and removed
/// (what they held is dropped, as a restart without them would), the
/// stream switched on or off, and, for a tenant that gets SMPP
/// credentials, the SMPP server, so the receipts its binds ask for reach
/// them. Before the SMPP accounts change ([`tenants`]), so no bind comes
/// before its destination.
///
/// Endpoints added or changed are prepared first: one that cannot be (a
/// CA file that does not load) leaves all of those the tenant's file adds
/// or changes as they were, named under `refused` (removals and the stream
/// switch still apply). A destination whose SMPP credentials are removed
/// keeps what it holds until the restart.
fn destinations(now: &mut Config, new: &Config, tenancy: &mut Tenancy<'_>, r: &mut Reloaded) {
    for t in &mut now.tenants {
        let Some(n) = new.tenants.iter().find(|n| n.name == t.name) else {
            continue;
        };
        let was = |w: &WebhookConfig| t.webhooks.iter().find(|o| o.name == w.name);
        let put: Vec<WebhookConfig> = n
            .webhooks
            .iter()
            .filter(|w| was(w).is_none_or(|o| webhook_differs(o, w)))
            .cloned()
            .collect();
        let put_in_force = put.is_empty()
            || match crate::webhooks::Webhooks::prepare(&put) {
                Ok(prepared) => {
                    let hub = tenancy.hub;
                    hub.add_destinations(
                        &t.name,
                        put.iter()
                            .filter(|w| was(w).is_none())
                            .map(crate::webhooks::destination)
                            .collect(),
                    );
                    for w in &put {
                        hub.set_kinds(&t.name, &w.name, crate::webhooks::kinds(w));
                        let how = if was(w).is_some() { "changed" } else { "added" };
                        r.applied
                            .push(format!("tenants.{}.webhooks.{}: {how}", t.name, w.name));
                    }
                    tenancy.webhooks.start_prepared(
                        hub,
                        &t.name,
                        prepared,
                        tenancy.tasks,
                        &tenancy.shutdown,
                    );
                    true
                }
                Err(e) => {
                    r.refused.push(format!("tenants.{}.webhooks: {e}", t.name));
                    false
                }
            };
        for o in t
            .webhooks
            .iter()
            .filter(|o| !n.webhooks.iter().any(|w| w.name == o.name))
        {
            tenancy.webhooks.remove(&t.name, &o.name);
            let dropped = tenancy.hub.remove_destination(&t.name, &o.name);
            r.applied.push(format!(
                "tenants.{}.webhooks.{}: removed ({} events it held dropped)",
                t.name,
                o.name,
                dropped.unwrap_or(0)
            ));
        }
        // In the file's order; those refused keep their settings in force.
        t.webhooks = n
            .webhooks
            .iter()
            .filter_map(|w| match was(w) {
                Some(o) if !put_in_force => Some(o.clone()),
                None if !put_in_force => None,
                _ => Some(w.clone()),
            })
            .collect();
        if n.stream_events != t.stream_events {
            let dropped = tenancy.hub.set_stream(&t.name, n.stream_events);
            r.applied.push(format!(
                "tenants.{}.stream_events: {} → {} ({dropped} events it held dropped)",
                t.name, t.stream_events, n.stream_events
            ));
            t.stream_events = n.stream_events;
        }
        // Also for a tenant added back (its credentials already taken).
        if n.smpp_system_id.is_some()
            && tenancy
                .hub
                .endpoint(&t.name, crate::smpp_server::ENDPOINT)
                .is_none()
        {
            tenancy
                .hub
                .add_destinations(&t.name, vec![super::smpp_destination()]);
        }
    }
}

/// Whether two webhook endpoints' settings differ, secrets compared by
/// value.
fn webhook_differs(a: &WebhookConfig, b: &WebhookConfig) -> bool {
    dbg(a) != dbg(b) || secret_differs(Some(&a.secret), Some(&b.secret))
}

/// The sections (or tenants, carriers) that differ between the
/// configuration in force and the file, once the live limits are equal.
fn at_restart(now: &Config, new: &Config, refused: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut differs = |name: &str, a: String, b: String| {
        if a != b {
            out.push(name.to_owned());
        }
    };
    differs("node_id", now.node_id.clone(), new.node_id.clone());
    differs("data_dir", dbg(&now.data_dir), dbg(&new.data_dir));
    differs("log_format", dbg(&now.log_format), dbg(&new.log_format));
    differs("ingest", dbg(&now.ingest), dbg(&new.ingest));
    differs("journal", dbg(&now.journal), dbg(&new.journal));
    differs("http", dbg(&now.http), dbg(&new.http));
    differs("public", dbg(&now.public), dbg(&new.public));
    differs("api", dbg(&now.api), dbg(&new.api));
    differs("grpc", dbg(&now.grpc), dbg(&new.grpc));
    differs("smpp_server", dbg(&now.smpp_server), dbg(&new.smpp_server));
    differs("receipts", dbg(&now.receipts), dbg(&new.receipts));
    differs("history", dbg(&now.history), dbg(&new.history));
    differs("tls", dbg(&now.tls), dbg(&new.tls));
    differs("routes", dbg(&now.routes), dbg(&new.routes));
    differs("mms", dbg(&now.mms), dbg(&new.mms));
    differs("cluster", dbg(&now.cluster), dbg(&new.cluster));
    differs("links", dbg(&now.links), dbg(&new.links));
    let names = |mut v: Vec<&str>| {
        v.sort_unstable();
        v.join(",")
    };
    // Tenants not added (named under `refused`) are not named again.
    let was_refused = |name: &str| {
        refused
            .iter()
            .any(|r| r.starts_with(&format!("tenants.{name}: ")))
    };
    differs(
        "tenants (added or removed)",
        names(now.tenants.iter().map(|t| t.name.as_str()).collect()),
        names(
            new.tenants
                .iter()
                .map(|t| t.name.as_str())
                .filter(|n| !was_refused(n))
                .collect(),
        ),
    );
    for t in &now.tenants {
        if let Some(n) = new.tenants.iter().find(|n| n.name == t.name) {
            differs(&format!("tenants.{}", t.name), dbg(t), dbg(n));
        }
    }
    // Carriers not added (named under `refused`) are not named again.
    let carrier_refused = |name: &str| {
        refused
            .iter()
            .any(|r| r.starts_with(&format!("carriers.{name}: ")))
    };
    differs(
        "carriers (added or removed)",
        names(now.carriers.iter().map(|c| c.name.as_str()).collect()),
        names(
            new.carriers
                .iter()
                .map(|c| c.name.as_str())
                .filter(|n| now.carriers.iter().any(|c| c.name == *n) || !carrier_refused(n))
                .collect(),
        ),
    );
    for c in &now.carriers {
        if let Some(n) = new.carriers.iter().find(|n| n.name == c.name) {
            differs(&format!("carriers.{}", c.name), dbg(c), dbg(n));
        }
    }
    let mmsc_refused = |name: &str| {
        refused
            .iter()
            .any(|r| r.starts_with(&format!("mmsc.{name}: ")))
    };
    differs(
        "mmsc (added or removed)",
        names(now.mmsc.iter().map(|m| m.name.as_str()).collect()),
        names(
            new.mmsc
                .iter()
                .map(|m| m.name.as_str())
                .filter(|n| now.mmsc.iter().any(|m| m.name == *n) || !mmsc_refused(n))
                .collect(),
        ),
    );
    for m in &now.mmsc {
        if let Some(n) = new.mmsc.iter().find(|n| n.name == m.name)
            && !mmsc_refused(&m.name)
        {
            differs(&format!("mmsc.{}", m.name), dbg(m), dbg(n));
        }
    }
    // Secrets not applied live, by value (their debug form hides it).
    let (a, b) = (
        crate::config::secrets::by_place(now),
        crate::config::secrets::by_place(new),
    );
    for (place, value) in &b {
        if a.get(place) != Some(value) {
            out.push(place.clone());
        }
    }
    for place in a.keys().filter(|p| !b.contains_key(*p)) {
        out.push(place.clone());
    }
    // A setting none of the above covers (a section added later).
    if out.is_empty() && dbg(now) != dbg(new) {
        out.push("other settings".into());
    }
    out
}

/// Whether two optional secrets differ (compared here, never shown).
fn secret_differs(a: Option<&Secret>, b: Option<&Secret>) -> bool {
    a.map(Secret::expose) != b.map(Secret::expose)
}

/// Takes each known tenant's credentials and sending rights from `new` into
/// `now` and into the running parts; names what changed (keys only).
fn tenants(
    now: &mut Config,
    new: &Config,
    live: &Live<'_>,
    membership: bool,
    applied: &mut Vec<String>,
) {
    let operator_token =
        secret_differs(now.http.admin_token.as_ref(), new.http.admin_token.as_ref());
    let mut admin_tokens = membership || operator_token;
    if operator_token {
        applied.push("http.admin_token".into());
        now.http.admin_token = new.http.admin_token.clone();
    }
    let mut smpp = membership;
    let mut senders = membership;
    for t in &mut now.tenants {
        let Some(n) = new.tenants.iter().find(|n| n.name == t.name) else {
            continue;
        };
        let mut changed = |key: &str| applied.push(format!("tenants.{}.{key}", t.name));
        let token = secret_differs(Some(&t.token), Some(&n.token));
        let mut rights = false;
        if token {
            changed("token");
        }
        for (key, differs) in [
            ("senders", t.senders != n.senders),
            ("sender_patterns", t.sender_patterns != n.sender_patterns),
            ("default_validity", t.default_validity != n.default_validity),
            ("default_country", t.default_country != n.default_country),
            (
                "mms_service_codes",
                t.mms_service_codes != n.mms_service_codes,
            ),
        ] {
            if differs {
                changed(key);
                rights = true;
                senders |= key == "senders";
            }
        }
        if secret_differs(t.admin_token.as_ref(), n.admin_token.as_ref()) {
            changed("admin_token");
            admin_tokens = true;
        }
        let smpp_changed = t.smpp_system_id != n.smpp_system_id
            || secret_differs(t.smpp_password.as_ref(), n.smpp_password.as_ref());
        if smpp_changed {
            changed("smpp_system_id/smpp_password");
            smpp = true;
        }
        take(t, n);
        if (token || rights)
            && let Some(admission) = live.admission
        {
            admission.update_tenant(t, token);
        }
    }
    if senders && let Some(compliance) = live.compliance {
        // The senders of tenants removed still take their STOPs.
        let retired = live.tenancy.as_ref().map_or(&[][..], |t| &t.retired[..]);
        compliance.set_tenant_senders(&known(now, retired));
    }
    if admin_tokens && let Some(admin) = live.admin {
        admin.set_tokens(now);
    }
    if smpp && let Some(accounts) = live.smpp_accounts {
        accounts.replace(super::doors::smpp_accounts(now));
    }
}

/// Copies the settings a reload applies from `n` into `t`.
fn take(t: &mut TenantConfig, n: &TenantConfig) {
    t.token = n.token.clone();
    t.senders = n.senders.clone();
    t.sender_patterns = n.sender_patterns.clone();
    t.default_validity = n.default_validity;
    t.default_country = n.default_country.clone();
    t.mms_service_codes = n.mms_service_codes.clone();
    t.admin_token = n.admin_token.clone();
    t.smpp_system_id = n.smpp_system_id.clone();
    t.smpp_password = n.smpp_password.clone();
}

fn dbg(v: &impl std::fmt::Debug) -> String {
    format!("{v:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = include_str!("../../deploy/sluice.toml");
        Config::parse(text, std::path::Path::new("deploy/sluice.toml")).unwrap()
    }

    #[test]
    fn limits_apply_now_and_the_rest_is_named_for_the_restart() {
        let old = config();
        let scheduler = Scheduler::new(&old);
        let (carrier, tenant) = (old.carriers[0].name.clone(), old.tenants[0].name.clone());
        let mut new = old.clone();
        new.carriers[0].rate = old.carriers[0].rate + 7.0;
        new.tenants[0].rate = old.tenants[0].rate + 5.0;
        new.tenants[0].weight = old.tenants[0].weight + 2;
        new.senders.daily_cap = old.senders.daily_cap + 1_000;
        new.carriers[0].binds[0].window += 1;
        new.ingest.listen = "127.0.0.1:1".parse().unwrap();
        let mut live = Live {
            scheduler: &scheduler,
            admission: None,
            admin: None,
            compliance: None,
            smpp_accounts: None,
            carriers: None,
            tenancy: None,
        };
        let (now, r) = apply(&old, &new, &mut live);
        assert_eq!(
            r.applied,
            [
                format!(
                    "carriers.{carrier}.rate: {} → {}",
                    old.carriers[0].rate, new.carriers[0].rate
                ),
                format!(
                    "tenants.{tenant}.rate: {} → {}",
                    old.tenants[0].rate, new.tenants[0].rate
                ),
                format!(
                    "tenants.{tenant}.weight: {} → {}",
                    old.tenants[0].weight, new.tenants[0].weight
                ),
                "senders".to_owned(),
            ]
        );
        assert_eq!(
            r.at_restart,
            ["ingest".to_owned(), format!("carriers.{carrier}")]
        );
        assert_eq!(
            scheduler.queue(&carrier).unwrap().carrier_rate(),
            Some(new.carriers[0].rate)
        );
        assert_eq!(now.carriers[0].rate, new.carriers[0].rate);
        assert_eq!(
            now.carriers[0].binds[0].window, old.carriers[0].binds[0].window,
            "a bind setting waits for the restart"
        );
        // The same file again changes nothing more.
        let (_, again) = apply(&now, &new, &mut live);
        assert!(again.applied.is_empty(), "{again:?}");
        assert_eq!(again.at_restart, r.at_restart);
    }

    #[test]
    fn credentials_and_sending_rights_apply_now_and_are_named_by_key_only() {
        use crate::smpp_server::{Account, Accounts};
        let old = config();
        let scheduler = Scheduler::new(&old);
        let tenant = old.tenants[0].name.clone();
        let accounts = Accounts::new([Account {
            tenant: tenant.as_str().into(),
            system_id: "acme".into(),
            password: Secret::new("old-pass"),
        }]);
        let mut live = Live {
            scheduler: &scheduler,
            admission: None,
            admin: None,
            compliance: None,
            smpp_accounts: Some(&accounts),
            carriers: None,
            tenancy: None,
        };
        let mut new = old.clone();
        new.tenants[0].token = Secret::new("a-new-token-of-32-characters-or-more");
        new.tenants[0].senders.push("+14155550999".into());
        new.tenants[0].smpp_system_id = Some("acme".into());
        new.tenants[0].smpp_password = Some(Secret::new("new-pass"));
        new.http.admin_token = Some(Secret::new("another-operator-token-0123456789"));
        let (now, r) = apply(&old, &new, &mut live);
        assert_eq!(
            r.applied,
            [
                "http.admin_token".to_owned(),
                format!("tenants.{tenant}.token"),
                format!("tenants.{tenant}.senders"),
                format!("tenants.{tenant}.smpp_system_id/smpp_password"),
            ]
        );
        assert!(r.at_restart.is_empty(), "{:?}", r.at_restart);
        assert!(
            !r.applied
                .iter()
                .any(|k| k.contains("new-pass") || k.contains("a-new-token"))
        );
        assert_eq!(now.tenants[0].token.expose(), new.tenants[0].token.expose());
        // The SMPP password changed: a new stamp, the new one binds.
        let stamp = accounts.stamp(&tenant);
        assert_ne!(stamp, Some(0));
        assert!(accounts.check(b"acme", b"old-pass").is_err());
        assert_eq!(
            &*accounts.check(b"acme", b"new-pass").unwrap(),
            tenant.as_str()
        );
        // The same file again changes nothing.
        let (_, again) = apply(&now, &new, &mut live);
        assert!(again.applied.is_empty(), "{again:?}");
        assert_eq!(accounts.stamp(&tenant), stamp);
        // A carrier's bind password waits for the restart, named by key.
        let mut rotated = now.clone();
        rotated.carriers[0].binds[0].password = Secret::new("rotated1");
        let (_, r) = apply(&now, &rotated, &mut live);
        assert!(r.applied.is_empty(), "{r:?}");
        assert_eq!(r.at_restart.len(), 1, "{r:?}");
        assert!(r.at_restart[0].contains("password"), "{r:?}");
        assert!(!r.at_restart[0].contains("rotated1"), "{r:?}");
        // An account removed: no stamp (its sessions unbind).
        let mut gone = now.clone();
        gone.tenants[0].smpp_password = None;
        gone.tenants[0].smpp_system_id = None;
        apply(&now, &gone, &mut live);
        assert_eq!(accounts.stamp(&tenant), None);
        // Added again with the first password: a stamp never seen before.
        let mut back = gone.clone();
        back.tenants[0].smpp_system_id = Some("acme".into());
        back.tenants[0].smpp_password = Some(Secret::new("old-pass"));
        apply(&gone, &back, &mut live);
        assert!(
            accounts
                .stamp(&tenant)
                .is_some_and(|s| s != 0 && Some(s) != stamp)
        );
    }
}
