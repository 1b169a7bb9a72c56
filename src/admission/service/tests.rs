use std::sync::Arc;

use super::*;
use crate::backlog::tests::kit;
use crate::model::Msisdn;

struct Setup {
    admission: Arc<Admission>,
    compliance: Arc<Compliance>,
    ledger: Arc<Ledger>,
    scheduler: Arc<crate::schedule::Scheduler>,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = kit::config(dir.path(), 1000);
    let (backlog, ledger, scheduler, receipts) = kit::for_tests(dir.path(), 1000);
    let (journal, _) = Journal::open(&dir.path().join("adm"), &Default::default()).unwrap();
    let compliance = Arc::new(Compliance::open(&config).unwrap());
    let media = crate::media::store::MediaStore::open(crate::uploads::store_config(&config));
    let parts = Parts {
        journal,
        ledger: ledger.clone(),
        hub: receipts.hub().clone(),
        router: backlog.router().clone(),
        uploads: Arc::new(Uploads::new(Arc::new(media.unwrap()))),
        compliance: compliance.clone(),
        dedupe: Arc::new(Dedupe::new(Duration::from_secs(3600), [5; 16])),
        backlog,
        claims: None,
    };
    Setup {
        admission: Arc::new(Admission::new(&config, parts)),
        compliance,
        ledger,
        scheduler,
        _dir: dir,
    }
}

fn submit(client_ref: &str, to: &str, from: &str) -> Submission {
    Submission {
        client_ref: client_ref.into(),
        to: to.into(),
        from: from.into(),
        text: "hello".into(),
        ..Default::default()
    }
}

/// Each result's rejection reason (`None`: accepted).
fn reasons(results: &[SubmitResult]) -> Vec<Option<RejectReason>> {
    results
        .iter()
        .map(|r| r.outcome.as_ref().err().map(|e| e.reason))
        .collect()
}

fn accepted(r: &SubmitResult) -> Accepted {
    r.outcome.clone().expect("accepted")
}

#[test]
fn only_the_right_token_opens_a_tenant() {
    let s = setup();
    assert_eq!(
        s.admission
            .authenticate("t", "a-long-enough-token")
            .as_deref(),
        Some("t")
    );
    assert!(
        s.admission
            .authenticate("t", "a-long-enough-tokeN")
            .is_none()
    );
    assert!(
        s.admission
            .authenticate("u", "a-long-enough-token")
            .is_none()
    );
}

#[tokio::test]
async fn each_check_refuses_with_its_reason_and_the_rest_pass() {
    let s = setup();
    let t: Arc<str> = "t".into();
    let mut media = submit("media", "+14155550103", "12345");
    media.media = vec!["0123456789abcdef".into()];
    let batch = vec![
        submit("ok", "+14155550100", "12345"),
        submit("not-mine", "+14155550101", "54321"),
        submit("no-route", "+447700900123", "12345"),
        submit("bad-number", "12", "12345"),
        media,
    ];
    let results = s.admission.submit(&t, 1, batch).await;
    assert_eq!(
        reasons(&results),
        vec![
            None,
            Some(RejectReason::SenderNotAllowed),
            Some(RejectReason::NoRoute),
            Some(RejectReason::InvalidNumber),
            Some(RejectReason::UnknownMedia),
        ]
    );
    assert!(accepted(&results[0]).id.0 > 0);
    // Accepted and durable: live, and queued for its carrier.
    assert_eq!(s.ledger.live(), 1);
    assert_eq!(s.scheduler.queue("c").unwrap().len(), 1);
}

#[tokio::test]
async fn a_repeated_client_ref_gets_the_original_id_and_nothing_more() {
    let s = setup();
    let t: Arc<str> = "t".into();
    let first = s
        .admission
        .submit(&t, 1, vec![submit("same", "+14155550100", "12345")])
        .await;
    let again = s
        .admission
        .submit(&t, 2, vec![submit("same", "+14155550100", "12345")])
        .await;
    assert!(!accepted(&first[0]).duplicate);
    assert!(accepted(&again[0]).duplicate);
    assert_eq!(accepted(&again[0]).id, accepted(&first[0]).id);
    assert_eq!(s.scheduler.queue("c").unwrap().len(), 1);
}

#[tokio::test]
async fn an_opted_out_recipient_is_refused() {
    let s = setup();
    let handset = Msisdn::parse("+14155550100").unwrap();
    s.compliance
        .inbound(handset, "12345", "STOP", "c", "sms")
        .await
        .unwrap();
    let t: Arc<str> = "t".into();
    let results = s
        .admission
        .submit(&t, 1, vec![submit("x", "+14155550100", "12345")])
        .await;
    assert_eq!(reasons(&results), vec![Some(RejectReason::Suppressed)]);
    assert_eq!(s.ledger.live(), 0);
}

#[tokio::test]
async fn a_batch_whose_caller_goes_away_before_the_answer_is_still_queued() {
    // A connection cut before its BatchAck drops the submit future: the
    // messages are admitted and being journaled, their client_refs taken,
    // so they must still be queued (before the fix they stayed in the
    // ledger, unsent, until a restart; a resubmission only got `duplicate`).
    let s = setup();
    let t: Arc<str> = "t".into();
    let batch = vec![
        submit("cut-1", "+14155550100", "12345"),
        submit("cut-2", "+14155550101", "12345"),
    ];
    drop(s.admission.submit(&t, 1, batch));
    let queue = s.scheduler.queue("c").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while queue.len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dropped batch was never queued ({} of 2)",
            queue.len()
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let again = s
        .admission
        .submit(&t, 2, vec![submit("cut-1", "+14155550100", "12345")])
        .await;
    assert!(accepted(&again[0]).duplicate);
    assert_eq!(queue.len(), 2, "and nothing twice");
}
