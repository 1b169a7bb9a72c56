//! Tests of the MM7 carrier: how answers are classified, the down/up state
//! and its backoff (on tokio's paused clock), and the in-flight tracking
//! delivery reports wait on.

use std::time::Duration;

use super::*;
use crate::mm7::Status;

#[derive(Debug)]
struct NoMedia;

impl MediaSource for NoMedia {
    fn fetch(&self, _: &str, id: &str, _: usize) -> Result<(String, Bytes), MediaUnavailable> {
        Err(MediaUnavailable::Unknown {
            id: id.to_owned(),
            source: crate::media::MediaError::NotFound,
        })
    }
}

fn carrier() -> Mm7Carrier {
    let cfg = MmscConfig {
        auth_retry_min: Duration::from_secs(30),
        auth_retry_max: Duration::from_secs(100),
        ..MmscConfig::new("m", "http://127.0.0.1:1/mm7")
    };
    Mm7Carrier::new(&cfg, Arc::new(NoMedia), None).unwrap()
}

#[test]
fn answers_are_classified_for_the_message_and_the_mmsc() {
    let refused = |code| {
        classify(Ok(SubmitOutcome::Refused {
            status: Status::new(code),
            http_status: 200,
        }))
    };
    assert_eq!(
        classify(Ok(SubmitOutcome::Accepted {
            message_id: "M1".into(),
            status: Status::success(),
        })),
        Attempt::Accepted("M1".into())
    );
    assert!(matches!(
        refused(4006),
        Attempt::Temporary { code: 4006, .. }
    ));
    assert!(matches!(
        refused(3000),
        Attempt::Temporary { code: 3000, .. }
    ));
    assert!(matches!(
        refused(2002),
        Attempt::Permanent { code: 2002, .. }
    ));
    assert_eq!(
        classify(Err(Mm7Error::Unauthorized { status: 403 })),
        Attempt::Unauthorized { http_status: 403 }
    );
    assert!(matches!(
        classify(Err(Mm7Error::Timeout(Duration::from_secs(10)))),
        Attempt::Unanswered(_)
    ));
    assert!(matches!(
        classify(Err(Mm7Error::Transport("reset".into()))),
        Attempt::Unanswered(_)
    ));
    assert!(matches!(
        classify(Err(Mm7Error::Http { status: 504 })),
        Attempt::Unanswered(_)
    ));
    assert!(matches!(
        classify(Err(Mm7Error::Connect {
            addr: "x:1".into(),
            reason: "refused".into(),
        })),
        Attempt::Unreachable(_)
    ));
    assert!(matches!(
        classify(Err(Mm7Error::NotSent("closed".into()))),
        Attempt::Unreachable(_)
    ));
    assert!(matches!(
        classify(Err(Mm7Error::Http { status: 503 })),
        Attempt::Temporary { code: 0, .. }
    ));
    // No MM7 status, no code (not the 3000 an answer of ours would carry).
    assert!(matches!(
        classify(Err(Mm7Error::Http { status: 404 })),
        Attempt::Permanent { code: 0, .. }
    ));
}

#[test]
fn peer_texts_are_cut_and_escaped() {
    let Attempt::Permanent { reason, .. } = classify(Ok(SubmitOutcome::Refused {
        status: Status {
            code: 2000,
            text: format!("bad\r\nX-Injected: 1 {}", "y".repeat(10_000)),
            details: None,
        },
        http_status: 500,
    })) else {
        panic!()
    };
    assert!(!reason.contains('\n') && !reason.contains('\r'), "{reason}");
    assert!(reason.len() < 400, "{}", reason.len());
    assert!(reason.contains('…'), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn down_state_backs_off_and_one_try_runs_at_a_time() {
    let c = carrier();
    assert!(c.takes_traffic());
    assert_eq!(c.down(), None);
    // Credentials refused: down, first try after auth_retry_min.
    let (t, wait) = c.mark_down(Down::Unauthorized(401), false);
    assert_eq!((t, wait), (Transition::Down, Duration::from_secs(30)));
    assert!(c.auth_failed());
    assert!(!c.takes_traffic());
    assert!(!c.begin_probe(), "not due yet");
    // Another request in flight refused the same way: nothing changes.
    assert_eq!(
        c.mark_down(Down::Unauthorized(401), false).0,
        Transition::Unchanged
    );
    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(c.takes_traffic());
    assert!(c.begin_probe());
    assert!(!c.begin_probe(), "one try at a time");
    assert!(!c.takes_traffic());
    // The try fails: the wait doubles, up to auth_retry_max.
    assert_eq!(
        c.mark_down(Down::Unauthorized(401), true),
        (Transition::StillDown, Duration::from_secs(60))
    );
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(c.begin_probe());
    assert_eq!(
        c.mark_down(Down::Unauthorized(401), true),
        (Transition::StillDown, Duration::from_secs(100))
    );
    tokio::time::advance(Duration::from_secs(100)).await;
    // A try given back without an outcome may start again at once.
    assert!(c.begin_probe());
    c.end_probe();
    assert!(c.begin_probe());
    assert!(c.down_for().unwrap() >= Duration::from_secs(190));
    // It answers: up.
    let (was, for_) = c.mark_up().unwrap();
    assert_eq!(was, Down::Unauthorized(401));
    assert!(for_ >= Duration::from_secs(190));
    assert!(c.mark_up().is_none());
    assert!(c.takes_traffic() && !c.auth_failed());
    // Unreachable: 1 s doubling; refused credentials outrank it.
    assert_eq!(
        c.mark_down(Down::Unreachable("refused".into()), false),
        (Transition::Down, Duration::from_secs(1))
    );
    assert_eq!(
        c.mark_down(Down::Unauthorized(403), false),
        (Transition::Down, Duration::from_secs(30))
    );
    assert_eq!(
        c.mark_down(Down::Unreachable("refused".into()), false).0,
        Transition::Unchanged
    );
    assert!(c.auth_failed());
}

#[tokio::test]
async fn reports_wait_for_the_requests_in_flight_when_they_came() {
    let c = carrier();
    let f = c.in_flight().clone();
    let before = f.begin();
    let mark = f.mark();
    let after = f.begin();
    assert_eq!(f.len(), 2);
    let waiting = tokio::spawn({
        let f = f.clone();
        async move { f.ended_before(mark).await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    drop(before);
    // The request begun after the mark does not hold it up.
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("resolves once the earlier request ended")
        .unwrap();
    assert_eq!(f.len(), 1);
    drop(after);
    assert!(f.is_empty());
    f.ended_before(f.mark()).await;
}
