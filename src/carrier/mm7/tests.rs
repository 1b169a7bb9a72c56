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
        Attempt::Accepted {
            message_id: "M1".into(),
            partial: None
        }
    );
    // 1100: taken, but for the recipients its Details names.
    let partial = classify(Ok(SubmitOutcome::Accepted {
        message_id: "M2".into(),
        status: Status::new(crate::mm7::status::PARTIAL_SUCCESS)
            .with_details("not taken: +14155550190 tel:447700900123/TYPE=PLMN, code 3004"),
    }));
    let Attempt::Accepted {
        message_id,
        partial: Some(not_taken),
    } = partial
    else {
        panic!("{partial:?}")
    };
    assert_eq!(message_id, "M2");
    assert_eq!(not_taken.numbers, ["14155550190", "447700900123"]);
    assert!(not_taken.names("+14155550190"));
    assert!(not_taken.names("447700900123"));
    assert!(!not_taken.names("+14155550191"));
    // The status code is no number.
    assert!(!not_taken.names("3004"));
    assert!(not_taken.reason.contains("1100"), "{}", not_taken.reason);
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

/// A message of `text` to `to`, valid until `expires_at_ms`.
fn message_to(id: u64, to: &str, text: &str, expires_at_ms: u64) -> Arc<Message> {
    let mut m = (*crate::model::test_message(id, text, expires_at_ms)).clone();
    m.to = crate::model::Msisdn::parse(to).unwrap();
    m.media = Box::new(["ab".repeat(32).into()]);
    Arc::new(m)
}

fn ids(requests: &[Vec<Arc<Message>>]) -> Vec<Vec<u64>> {
    requests
        .iter()
        .map(|r| r.iter().map(|m| m.id.0).collect())
        .collect()
}

#[test]
fn requests_share_only_the_same_content_to_different_numbers_up_to_the_most() {
    let t = 10_000_000;
    let batch = vec![
        message_to(1, "+14155550101", "Sale", t),
        message_to(2, "+14155550102", "Sale", t),
        // Another text: a request of its own.
        message_to(3, "+14155550103", "Other", t),
        // The same number again: it cannot share the first request.
        message_to(4, "+14155550101", "Sale", t),
        message_to(5, "+14155550105", "Sale", t + 60_000),
        // Validity more than a minute away from the first request's.
        message_to(6, "+14155550106", "Sale", t + 60_001),
        message_to(7, "+14155550107", "Sale", t),
    ];
    assert_eq!(
        ids(&requests(batch.clone(), 3)),
        [vec![1, 2, 5], vec![3], vec![4, 7], vec![6]]
    );
    // One recipient per request: the batch as it came.
    assert_eq!(
        ids(&requests(batch.clone(), 1)),
        (1..=7).map(|i| vec![i]).collect::<Vec<_>>()
    );
    // Another tenant, sender, subject, media or service field: not shared.
    let base = message_to(10, "+14155550110", "Sale", t);
    let differing: Vec<Arc<Message>> = (0..5)
        .map(|i| {
            let mut m = (*message_to(11 + i, "+14155550111", "Sale", t)).clone();
            match i {
                0 => m.tenant = "other".into(),
                1 => m.from = crate::model::Sender::parse("54321").unwrap(),
                2 => m.mms_mut().subject = Some("Hi".into()),
                3 => {
                    let mut media = std::mem::take(&mut m.media).into_vec();
                    media.push("cd".repeat(32).into());
                    m.media = media.into();
                }
                _ => {
                    m.mms = Some(Box::new(crate::model::MmsFields {
                        service_code: Some("gold".into()),
                        ..Default::default()
                    }))
                }
            }
            Arc::new(m)
        })
        .collect();
    for d in &differing {
        assert!(!shares_request(&base, d), "{d:?}");
    }
    // Only the fallback policy, client_ref and tags differ: shared.
    let mut same = (*message_to(20, "+14155550120", "Sale", t)).clone();
    same.fallback = crate::model::FallbackPolicy::None;
    same.tags = Box::new(["x".into()]);
    assert!(shares_request(&base, &same));
}

#[test]
fn personalised_messages_keep_the_grouping_linear() {
    // 300 different texts: each its own request, in order.
    let batch: Vec<Arc<Message>> = (0..300)
        .map(|i| message_to(i, "+14155550100", &format!("Hi {i}"), 1))
        .collect();
    let out = requests(batch, 10);
    assert_eq!(out.len(), 300);
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, r)| r.len() == 1 && r[0].id.0 == i as u64)
    );
}
