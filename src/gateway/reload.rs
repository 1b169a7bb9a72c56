//! Reloading the configuration file on SIGHUP: the limits change at once,
//! without dropping a bind, a connection or a queued message; every other
//! change waits for the next restart and is named in the log.
//!
//! Applied live ([`crate::schedule::Scheduler::set_limits`]): each SMS
//! carrier's `rate`, each tenant's `rate` and `weight`, and the whole
//! `[senders]` section (sender rates, daily caps, brands). In cluster mode
//! the shared leases follow the new rates (every node should be reloaded
//! with the same file); a limit switched on from 0 in cluster mode is
//! enforced per node until a restart shares it. TLS certificates reload
//! on SIGHUP on their own ([`crate::tls`]).
//!
//! Compared for the restart list: every other section, by its debug form,
//! so secrets (shown as `***`) are not compared: a changed token or
//! password takes effect at the next restart, unannounced.

use crate::config::Config;
use crate::schedule::Scheduler;

/// What a reload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Limits changed now, as `key: old → new`.
    pub applied: Vec<String>,
    /// Settings that changed in the file and apply at the next restart.
    pub at_restart: Vec<String>,
}

/// Applies `new`'s limits to `scheduler` (running with `old`) and lists
/// the rest of what changed; returns `old` with the applied limits taken
/// from `new` (the configuration now in force).
pub fn apply(old: &Config, new: &Config, scheduler: &Scheduler) -> (Config, Reloaded) {
    let mut r = Reloaded::default();
    let mut now = old.clone();
    for c in &mut now.carriers {
        if let Some(n) = new.carriers.iter().find(|n| n.name == c.name)
            && n.rate != c.rate
        {
            r.applied
                .push(format!("carriers.{}.rate: {} → {}", c.name, c.rate, n.rate));
            c.rate = n.rate;
        }
    }
    for t in &mut now.tenants {
        let Some(n) = new.tenants.iter().find(|n| n.name == t.name) else {
            continue;
        };
        if n.rate != t.rate {
            r.applied
                .push(format!("tenants.{}.rate: {} → {}", t.name, t.rate, n.rate));
            t.rate = n.rate;
        }
        if n.weight != t.weight {
            r.applied.push(format!(
                "tenants.{}.weight: {} → {}",
                t.name, t.weight, n.weight
            ));
            t.weight = n.weight;
        }
    }
    if old.senders != new.senders {
        r.applied.push("senders".into());
        now.senders = new.senders.clone();
    }
    if !r.applied.is_empty() {
        scheduler.set_limits(&now);
    }
    r.at_restart = at_restart(&now, new);
    (now, r)
}

/// The sections (or tenants, carriers) that differ between the
/// configuration in force and the file, once the live limits are equal.
fn at_restart(now: &Config, new: &Config) -> Vec<String> {
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
    differs("mmsc", dbg(&now.mmsc), dbg(&new.mmsc));
    differs("mms", dbg(&now.mms), dbg(&new.mms));
    differs("cluster", dbg(&now.cluster), dbg(&new.cluster));
    let names = |v: Vec<&str>| v.join(",");
    differs(
        "tenants (added or removed)",
        names(now.tenants.iter().map(|t| t.name.as_str()).collect()),
        names(new.tenants.iter().map(|t| t.name.as_str()).collect()),
    );
    for t in &now.tenants {
        if let Some(n) = new.tenants.iter().find(|n| n.name == t.name) {
            differs(&format!("tenants.{}", t.name), dbg(t), dbg(n));
        }
    }
    differs(
        "carriers (added or removed)",
        names(now.carriers.iter().map(|c| c.name.as_str()).collect()),
        names(new.carriers.iter().map(|c| c.name.as_str()).collect()),
    );
    for c in &now.carriers {
        if let Some(n) = new.carriers.iter().find(|n| n.name == c.name) {
            differs(&format!("carriers.{}", c.name), dbg(c), dbg(n));
        }
    }
    // A setting none of the above covers (a section added later).
    if out.is_empty() && dbg(now) != dbg(new) {
        out.push("other settings".into());
    }
    out
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
        let (now, r) = apply(&old, &new, &scheduler);
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
        let (_, again) = apply(&now, &new, &scheduler);
        assert!(again.applied.is_empty(), "{again:?}");
        assert_eq!(again.at_restart, r.at_restart);
    }
}
