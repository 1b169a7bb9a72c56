//! Readiness: whether this node should be sent traffic, decided in one
//! place so any HTTP front end answers `/readyz` with one call
//! ([`Readiness::readyz`]).
//!
//! Ready means all of:
//! - start-up finished (journal replayed, listeners up);
//! - not draining (shutdown has begun: a load balancer should move new
//!   traffic elsewhere while in-flight work finishes);
//! - neither journal has failed: after a failed write, sync or rotation a
//!   journal refuses every record until a restart. Once the messages'
//!   journal failed every batch is answered `unavailable`; once the
//!   opt-outs' failed no STOP or START can be stored (an MO carrying one is
//!   refused, and the carrier retries it). A load balancer should send
//!   traffic elsewhere;
//! - the SMS carriers are reachable, per `http.ready_carriers`: `every`
//!   carrier has a bind up (default), or `any` carrier has one. A node whose
//!   binds are all down accepts messages it cannot send; one with a carrier
//!   down sends that carrier's traffic late or not at all. With no SMPP
//!   carriers configured (MMS only) there is nothing to wait for. A
//!   carrier a reload added counts once it has been bound
//!   ([`Reachable::counts`]).
//!
//! MMSCs are HTTP peers without a standing connection, so they do not count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hyper::StatusCode;

pub use crate::settings::ReadyCarriers;

/// Something with binds that can be up or down (an SMPP carrier).
pub trait Reachable: Send + Sync {
    /// Binds currently bound.
    fn binds_up(&self) -> usize;

    /// Whether it counts yet (a carrier a reload added counts once it has
    /// been bound: one that never binds must not take a node that was
    /// ready out of its load balancer).
    fn counts(&self) -> bool {
        true
    }
}

impl Reachable for crate::carrier::smpp::SmppCarrier {
    fn binds_up(&self) -> usize {
        crate::carrier::smpp::SmppCarrier::binds_up(self)
    }

    fn counts(&self) -> bool {
        !self.added_live() || self.was_up()
    }
}

/// Why the node is not ready.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotReady {
    /// Start-up has not finished.
    Starting,
    /// Shutdown has begun.
    Draining,
    /// These journals (`messages`, `optouts`), in the order watched,
    /// failed and store nothing more (until a restart).
    JournalsFailed(Vec<&'static str>),
    /// These carriers have no bind up (with `every`: the ones down; with
    /// `any`: all of them).
    CarriersDown(Vec<Arc<str>>),
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Starting => f.write_str("starting"),
            NotReady::Draining => f.write_str("draining (shutting down)"),
            NotReady::JournalsFailed(names) => {
                let (noun, they) = match names.len() {
                    1 => ("journal", "it stores"),
                    _ => ("journals", "they store"),
                };
                let listed = match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => {
                        format!("{} and {last}", rest.join(", "))
                    }
                    _ => names.concat(),
                };
                write!(
                    f,
                    "the {listed} {noun} failed ({they} nothing more until a restart)"
                )
            }
            NotReady::CarriersDown(names) => {
                let names: Vec<&str> = names.iter().map(|n| &**n).collect();
                write!(f, "no bind up to carrier {}", names.join(", "))
            }
        }
    }
}

struct Carriers {
    policy: ReadyCarriers,
    list: Vec<(Arc<str>, Arc<dyn Reachable>)>,
}

/// The node's readiness: start-up, drain, the journal and carrier
/// reachability.
#[derive(Default)]
pub struct Readiness {
    started: AtomicBool,
    draining: AtomicBool,
    journals: parking_lot::RwLock<Vec<(&'static str, crate::journal::Failure)>>,
    carriers: parking_lot::RwLock<Option<Carriers>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("verdict", &self.check())
            .finish()
    }
}

impl Readiness {
    /// Makes readiness depend on these carriers' binds, per `policy` (a
    /// later call, after a reload added or removed carriers, replaces the
    /// list).
    pub fn watch_carriers(
        &self,
        policy: ReadyCarriers,
        carriers: impl IntoIterator<Item = (Arc<str>, Arc<dyn Reachable>)>,
    ) {
        *self.carriers.write() = Some(Carriers {
            policy,
            list: carriers.into_iter().collect(),
        });
    }

    /// Makes readiness depend on the journal `name` not having failed.
    pub fn watch_journal(&self, name: &'static str, journal: crate::journal::Failure) {
        self.journals.write().push((name, journal));
    }

    /// Start-up finished (`true`) or not.
    pub fn set_ready(&self, ready: bool) {
        self.started.store(ready, Ordering::Release);
    }

    /// Shutdown has begun: not ready from now on.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// True when the node should get traffic ([`Readiness::check`] is `Ok`).
    pub fn is_ready(&self) -> bool {
        self.check().is_ok()
    }

    /// The verdict, with the reason when not ready.
    ///
    /// # Errors
    /// [`NotReady`] says why.
    pub fn check(&self) -> Result<(), NotReady> {
        if self.draining.load(Ordering::Acquire) {
            return Err(NotReady::Draining);
        }
        if !self.started.load(Ordering::Acquire) {
            return Err(NotReady::Starting);
        }
        let failed: Vec<&'static str> = self
            .journals
            .read()
            .iter()
            .filter(|(_, j)| j.is_set())
            .map(|(name, _)| *name)
            .collect();
        if !failed.is_empty() {
            return Err(NotReady::JournalsFailed(failed));
        }
        let carriers = self.carriers.read();
        let Some(c) = carriers.as_ref() else {
            return Ok(());
        };
        let counted: Vec<&(Arc<str>, Arc<dyn Reachable>)> =
            c.list.iter().filter(|(_, r)| r.counts()).collect();
        if counted.is_empty() {
            return Ok(());
        }
        let down: Vec<Arc<str>> = counted
            .iter()
            .filter(|(_, r)| r.binds_up() == 0)
            .map(|(n, _)| n.clone())
            .collect();
        let ready = match c.policy {
            ReadyCarriers::Every => down.is_empty(),
            ReadyCarriers::Any => down.len() < counted.len(),
        };
        if ready {
            Ok(())
        } else {
            Err(NotReady::CarriersDown(down))
        }
    }

    /// The `/readyz` answer: 200 `ready`, or 503 with the reason.
    pub fn readyz(&self) -> (StatusCode, String) {
        match self.check() {
            Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
            Err(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        }
    }
}

#[cfg(test)]
mod tests;
