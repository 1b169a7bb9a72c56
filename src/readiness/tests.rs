use std::sync::atomic::AtomicUsize;

use super::*;

struct Binds(AtomicUsize);

impl Reachable for Binds {
    fn binds_up(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

fn carriers(ups: &[usize]) -> Vec<(Arc<str>, Arc<Binds>)> {
    ups.iter()
        .enumerate()
        .map(|(i, &n)| {
            (
                Arc::<str>::from(format!("smsc-{i}")),
                Arc::new(Binds(AtomicUsize::new(n))),
            )
        })
        .collect()
}

fn readiness(policy: ReadyCarriers, c: &[(Arc<str>, Arc<Binds>)]) -> Readiness {
    let r = Readiness::default();
    r.watch_carriers(
        policy,
        c.iter()
            .map(|(n, b)| (n.clone(), b.clone() as Arc<dyn Reachable>)),
    );
    r.set_ready(true);
    r
}

#[test]
fn not_ready_until_started() {
    let r = Readiness::default();
    assert_eq!(r.check(), Err(NotReady::Starting));
    assert_eq!(r.readyz().0, StatusCode::SERVICE_UNAVAILABLE);
    r.set_ready(true);
    assert_eq!(r.readyz(), (StatusCode::OK, "ready\n".to_owned()));
}

#[test]
fn every_carrier_needs_a_bind_by_default() {
    let c = carriers(&[1, 0]);
    let r = readiness(ReadyCarriers::default(), &c);
    assert_eq!(
        r.check(),
        Err(NotReady::CarriersDown(vec!["smsc-1".into()]))
    );
    let (status, body) = r.readyz();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "not ready: no bind up to carrier smsc-1\n");
    c[1].1.0.store(2, Ordering::Relaxed);
    assert!(r.is_ready());
}

#[test]
fn any_carrier_is_enough_when_configured() {
    let c = carriers(&[0, 0]);
    let r = readiness(ReadyCarriers::Any, &c);
    assert_eq!(
        r.check(),
        Err(NotReady::CarriersDown(vec![
            "smsc-0".into(),
            "smsc-1".into()
        ]))
    );
    c[0].1.0.store(1, Ordering::Relaxed);
    assert!(r.is_ready());
}

#[test]
fn draining_wins_over_everything() {
    let c = carriers(&[3]);
    let r = readiness(ReadyCarriers::Every, &c);
    assert!(r.is_ready());
    r.drain();
    assert_eq!(r.check(), Err(NotReady::Draining));
    assert_eq!(
        r.readyz(),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: draining (shutting down)\n".to_owned()
        )
    );
}

#[test]
fn no_sms_carriers_means_nothing_to_wait_for() {
    let r = readiness(ReadyCarriers::Every, &[]);
    assert!(r.is_ready());
}

/// A carrier a reload added: uncounted until it has been bound.
struct Added {
    up: AtomicUsize,
    was_up: std::sync::atomic::AtomicBool,
}

impl Reachable for Added {
    fn binds_up(&self) -> usize {
        self.up.load(Ordering::Relaxed)
    }

    fn counts(&self) -> bool {
        self.was_up.load(Ordering::Relaxed)
    }
}

#[test]
fn a_carrier_a_reload_adds_counts_once_it_has_been_bound() {
    let r = readiness(ReadyCarriers::Every, &carriers(&[1]));
    let added = Arc::new(Added {
        up: AtomicUsize::new(0),
        was_up: false.into(),
    });
    let mut list: Vec<(Arc<str>, Arc<dyn Reachable>)> = carriers(&[1])
        .into_iter()
        .map(|(n, b)| (n, b as Arc<dyn Reachable>))
        .collect();
    list.push(("added".into(), added.clone()));
    r.watch_carriers(ReadyCarriers::Every, list);
    assert!(r.is_ready(), "not bound yet: it does not count");
    added.was_up.store(true, Ordering::Relaxed);
    assert_eq!(r.check(), Err(NotReady::CarriersDown(vec!["added".into()])));
    added.up.store(1, Ordering::Relaxed);
    assert!(r.is_ready());
}

/// Either journal failing (the messages' or the opt-outs') makes the node
/// not ready, and the answer names every journal that failed, not just
/// the first.
#[tokio::test]
async fn not_ready_once_a_journal_failed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::journal::JournalConfig {
        prezero_segments: false,
        ..Default::default()
    };
    let open = |name: &str| {
        crate::journal::Journal::open(&dir.path().join(name), &cfg)
            .unwrap()
            .0
    };
    let (messages, optouts) = (open("journal"), open("optouts"));
    let r = Readiness::default();
    r.watch_journal("messages", messages.failure());
    r.watch_journal("optouts", optouts.failure());
    r.set_ready(true);
    assert_eq!(r.check(), Ok(()));
    optouts.fail_for_tests().await;
    assert_eq!(r.check(), Err(NotReady::JournalsFailed(vec!["optouts"])));
    let (status, body) = r.readyz();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("optouts journal failed"), "{body}");
    messages.fail_for_tests().await;
    assert_eq!(
        r.check(),
        Err(NotReady::JournalsFailed(vec!["messages", "optouts"]))
    );
    let (_, body) = r.readyz();
    assert!(
        body.contains("the messages and optouts journals failed (they store"),
        "{body}"
    );
    assert_eq!(
        NotReady::JournalsFailed(vec!["a", "b", "c"]).to_string(),
        "the a, b and c journals failed (they store nothing more until a restart)"
    );
}
