use std::sync::Arc;

use super::*;
use crate::backlog::tests::kit;
use crate::links::Lookup;
use crate::model::Msisdn;

struct Setup {
    admission: Arc<Admission>,
    receipts: Arc<crate::receipts::Receipts>,
    compliance: Arc<Compliance>,
    ledger: Arc<Ledger>,
    scheduler: Arc<crate::schedule::Scheduler>,
    links: LinkStore,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    setup_with(&Default::default(), 1000)
}

/// One journal (the ledger's, as in the gateway) configured by `journal`;
/// at most `in_memory` messages are queued in memory (the rest spill).
fn setup_with(journal: &crate::journal::JournalConfig, in_memory: u64) -> Setup {
    setup_recording(journal, in_memory, None)
}

/// As [`setup_with`], the ledger recording its steps into a history kept
/// as `history` says (none: not recorded).
fn setup_recording(
    journal: &crate::journal::JournalConfig,
    in_memory: u64,
    history: Option<&crate::history::HistoryConfig>,
) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = kit::config(dir.path(), in_memory);
    let history = match history {
        Some(cfg) => crate::history::History::open(dir.path().join("history"), cfg).unwrap(),
        None => crate::history::History::disabled(),
    };
    let (backlog, ledger, scheduler, receipts) =
        kit::for_tests_recording(dir.path(), in_memory, journal, history);
    let journal = ledger.journal().clone();
    let compliance = Arc::new(Compliance::open(&config).unwrap());
    let media = crate::media::store::MediaStore::open(crate::uploads::store_config(&config));
    let links = LinkStore::open(
        &dir.path().join("links"),
        &[7; 32],
        Duration::from_secs(3600),
    )
    .unwrap();
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
        links: Some(links.clone()),
    };
    Setup {
        admission: Arc::new(Admission::new(&config, parts)),
        receipts,
        compliance,
        ledger,
        scheduler,
        links,
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

/// Messages of tenant `t` (ids from 100) that passed admission's checks,
/// with their results, for `admit` and `finish`.
fn passed(client_refs: &[&str]) -> (Vec<Arc<Message>>, Vec<SubmitResult>) {
    let messages: Vec<Arc<Message>> = client_refs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut m = (*crate::model::test_message(100 + i as u64, "hello", u64::MAX)).clone();
            m.client_ref = (*r).into();
            Arc::new(m)
        })
        .collect();
    let results = messages
        .iter()
        .map(|m| SubmitResult {
            client_ref: m.client_ref.to_string(),
            outcome: Ok(Accepted {
                id: m.id,
                duplicate: false,
            }),
        })
        .collect();
    (messages, results)
}

/// What `finish` answers for an admitted batch whose journal write failed.
async fn finish_failed(
    s: &Setup,
    messages: Vec<Arc<Message>>,
    results: Vec<SubmitResult>,
    admitted: Admitted,
) -> Vec<SubmitResult> {
    let admitted = Admitted {
        durable: crate::journal::Durable::failed_for_tests(),
        ..admitted
    };
    s.admission
        .clone()
        .finish(messages, results, admitted)
        .await
}

/// Submits one message from `t` to a fixed recipient and returns its id
/// once stored.
async fn store_one(s: &Setup, t: &Arc<str>, client_ref: &str) -> MessageId {
    let results = s
        .admission
        .submit(t, 1, vec![submit(client_ref, "+14155550100", "12345")])
        .await;
    accepted(&results[0]).id
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

#[tokio::test]
async fn tracked_links_are_shortened_before_the_length_check_and_stored_once() {
    let s = setup();
    let t: Arc<str> = "t".into();
    // 1,700 characters as written, 80 once its link is short: accepted.
    let long_url = format!("https://shop.example/{}", "x".repeat(1650));
    let mut long = submit("long", "+14155550100", "12345");
    long.text = format!("Sale {long_url} now");
    long.track_links = Some(true);
    // Tracking is the tenant's choice (off here) unless the message says.
    let mut plain = submit("plain", "+14155550101", "12345");
    plain.text = "See https://shop.example/b".into();
    let results = s.admission.submit(&t, 1, vec![long.clone(), plain]).await;
    assert_eq!(reasons(&results), vec![None, None]);
    let sent = s.ledger.get(accepted(&results[0]).id).unwrap().message;
    // `Sale <public_url>/<code> now`.
    let code = sent
        .text
        .strip_suffix(" now")
        .and_then(|rest| rest.rsplit_once('/'))
        .map(|(_, code)| code)
        .unwrap_or_else(|| panic!("not shortened: {}", sent.text));
    assert!(sent.text.len() < 80, "{}", sent.text);
    let Lookup::Found(link) = s.links.lookup(code, crate::model::now_ms()) else {
        panic!("{code} not stored");
    };
    assert_eq!((link.url, link.message_id), (long_url, sent.id));
    let other = s.ledger.get(accepted(&results[1]).id).unwrap().message;
    assert_eq!(&*other.text, "See https://shop.example/b");
    // A retry of the same client_ref stores no second link.
    let again = s.admission.submit(&t, 2, vec![long]).await;
    assert!(accepted(&again[0]).duplicate);
    assert_eq!(s.links.issued(), 1);
    // Shortening that makes a text longer than allowed is refused as such.
    let mut grown = submit("grown", "+14155550102", "12345");
    grown.text = "http://a.b ".repeat(145);
    grown.track_links = Some(true);
    let results = s.admission.submit(&t, 3, vec![grown]).await;
    assert_eq!(reasons(&results), vec![Some(RejectReason::TextTooLong)]);
    assert_eq!(s.links.issued(), 1);
}

#[tokio::test]
async fn a_batch_whose_links_cannot_be_stored_is_refused_and_nothing_is_journaled() {
    let s = setup();
    let t: Arc<str> = "t".into();
    // The writer's first write fails: its clicks file cannot be opened.
    std::fs::create_dir(s._dir.path().join("links/0000000000.clicks")).unwrap();
    let mut tracked = submit("tracked", "+14155550100", "12345");
    tracked.text = "See https://shop.example/a".into();
    tracked.track_links = Some(true);
    // The same client_ref again in the batch: a duplicate of a message that
    // is never stored is not acknowledged either.
    let batch = vec![tracked.clone(), tracked.clone()];
    let results = s.admission.submit(&t, 1, batch).await;
    assert_eq!(
        reasons(&results),
        vec![
            Some(RejectReason::Unavailable),
            Some(RejectReason::Unavailable)
        ]
    );
    assert_eq!(s.ledger.live(), 0);
    assert_eq!(s.scheduler.queue("c").unwrap().len(), 0);
    // A retry is not a duplicate of anything, and is refused while the
    // store is broken; untracked messages still go.
    let results = s.admission.submit(&t, 2, vec![tracked]).await;
    assert_eq!(reasons(&results), vec![Some(RejectReason::Unavailable)]);
    let results = s
        .admission
        .submit(&t, 3, vec![submit("plain", "+14155550101", "12345")])
        .await;
    assert_eq!(reasons(&results), vec![None]);
}

/// A batch's keys reach the dedupe log only once its messages are durable:
/// logged before, a crash would leave a key answering the client's retry
/// as a duplicate of a message never stored.
#[tokio::test]
async fn a_batch_keys_reach_the_dedupe_log_only_once_it_is_durable() {
    let s = setup();
    let t: Arc<str> = "t".into();
    let dedupe = s.admission.parts.dedupe.clone();
    let answer = s
        .admission
        .submit(&t, 1, vec![submit("a", "+14155550100", "12345")]);
    // The task that waits for the journal has not run yet (one thread):
    // however old the key, it is held back.
    assert!(dedupe.take_unlogged(0, u64::MAX).is_empty());
    let results = answer.await;
    assert_eq!(reasons(&results), vec![None]);
    let logged = dedupe.take_unlogged(0, u64::MAX);
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].1, accepted(&results[0]).id.0);
}

/// Once the journal has failed, a batch is refused and not queued: a
/// client retrying against a broken journal takes no rate or cap permit.
#[tokio::test]
async fn a_batch_after_the_journal_failed_is_refused_and_never_queued() {
    let journal = crate::journal::JournalConfig {
        prezero_segments: false,
        ..Default::default()
    };
    let s = setup_with(&journal, 1000);
    let t: Arc<str> = "t".into();
    store_one(&s, &t, "a").await;
    let journal = &s.admission.parts.journal;
    assert!(!journal.has_failed());
    journal.fail_for_tests().await;
    assert!(journal.has_failed());
    let batch = vec![
        submit("b", "+14155550101", "12345"),
        submit("c", "+14155550102", "12345"),
    ];
    let refused = s.admission.submit(&t, 1, batch).await;
    let unavailable = Some(RejectReason::Unavailable);
    assert_eq!(reasons(&refused), vec![unavailable, unavailable]);
    assert_eq!(s.ledger.live(), 1);
    let queue = s.scheduler.queue("c").unwrap();
    assert_eq!(queue.len(), 1, "only the stored message is queued");
    // The refused keys were forgotten: a retry is refused again (the
    // journal stays failed), not answered as a duplicate.
    let retry = s
        .admission
        .submit(&t, 1, vec![submit("b", "+14155550101", "12345")])
        .await;
    assert_eq!(reasons(&retry), vec![unavailable]);
    assert_eq!(queue.len(), 1);
}

/// A batch is queued while its `Accept` record is written (dispatch
/// overlaps the sync; nothing leaves before a later record is durable).
/// When that write fails, the batch is refused and forgotten: what the
/// dispatcher pops of it is no longer live.
#[tokio::test]
async fn a_batch_queued_before_its_write_failed_is_refused_and_popped_dead() {
    let s = setup();
    let t: Arc<str> = "t".into();
    let stored = store_one(&s, &t, "a").await;
    let (messages, results) = passed(&["b", "c"]);
    let admitted = s.admission.admit(&t, 1, &messages);
    assert!(admitted.queued, "a batch that fits is queued at once");
    let queue = s.scheduler.queue("c").unwrap();
    assert_eq!(queue.len(), 3);
    assert_eq!(s.ledger.live(), 3);
    // Its write fails (as a failed sync answers).
    let results = finish_failed(&s, messages.clone(), results, admitted).await;
    let unavailable = Some(RejectReason::Unavailable);
    assert_eq!(reasons(&results), vec![unavailable, unavailable]);
    assert_eq!(s.ledger.live(), 1);
    // All three are in the queue; only the stored one can be dispatched.
    let popped: Vec<MessageId> = queue.drain().into_iter().map(|i| i.message.id).collect();
    assert_eq!(popped.len(), 3);
    let carrier: Arc<str> = "c".into();
    let live: Vec<bool> = popped
        .iter()
        .map(|&id| s.ledger.dispatch(id, &carrier, 1))
        .collect();
    assert_eq!(live, vec![true, false, false]);
    assert_eq!(popped[0], stored);
}

/// A batch refused because its write failed ends its history `rejected`
/// (it said `accepted` when the batch was queued), except a message that
/// something else ended meanwhile: that one keeps its own final step, and
/// no message gets two.
#[tokio::test]
async fn a_refused_batch_ends_its_history_rejected_once() {
    let s = setup_recording(&Default::default(), 1000, Some(&Default::default()));
    let (messages, results) = passed(&["b", "c"]);
    let admitted = s.admission.admit(&"t".into(), 1, &messages);
    assert!(admitted.queued);
    let (b, c) = (messages[0].id, messages[1].id);
    // `c` expires while its write is under way (its final step recorded
    // as the receipts room records every final).
    s.receipts.end(c, DeliveryState::Expired, &"expired".into());
    assert!(s.ledger.get(c).is_none());
    finish_failed(&s, messages.clone(), results, admitted).await;
    let ledger = &s.ledger;
    let timeline = |id| async move {
        let found = ledger
            .history()
            .lookup(crate::history::Query::Message(id))
            .await
            .unwrap();
        let json = found.first().expect("a timeline recorded").to_json();
        let steps: Vec<(String, String)> = json["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let field = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                (field("step"), field("state"))
            })
            .collect();
        (json["state"].as_str().unwrap().to_owned(), steps)
    };
    let (state, steps) = timeline(b).await;
    assert_eq!(state, "rejected", "{steps:?}");
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[0].0, "accepted");
    assert_eq!(steps[1], ("final".to_owned(), "rejected".to_owned()));
    let (state, steps) = timeline(c).await;
    assert_eq!(state, "expired", "{steps:?}");
    assert_eq!(steps.len(), 2, "one final step only: {steps:?}");
}

/// A batch that does not fit in memory is not queued before its sync: the
/// spill takes messages out of the ledger, and a refused batch's would come
/// back live. Refused, it leaves nothing queued or spilled; stored, it
/// spills as before.
#[tokio::test]
async fn a_batch_over_the_memory_budget_waits_for_its_sync_to_be_queued_or_spilled() {
    let s = setup_with(&Default::default(), 1);
    let t: Arc<str> = "t".into();
    store_one(&s, &t, "a").await;
    let queue = s.scheduler.queue("c").unwrap();
    let spill = s.admission.parts.backlog.spill().clone();
    assert_eq!((queue.len(), spill.is_empty()), (1, true));
    // Refused.
    let (messages, results) = passed(&["b", "c"]);
    let admitted = s.admission.admit(&t, 1, &messages);
    assert!(!admitted.queued, "over the budget: not queued early");
    let results = finish_failed(&s, messages, results, admitted).await;
    let unavailable = Some(RejectReason::Unavailable);
    assert_eq!(reasons(&results), vec![unavailable, unavailable]);
    assert_eq!((queue.len(), spill.is_empty()), (1, true));
    assert_eq!(s.ledger.live(), 1);
    // Stored: spilled once durable.
    let results = s
        .admission
        .submit(
            &t,
            1,
            vec![
                submit("d", "+14155550101", "12345"),
                submit("e", "+14155550102", "12345"),
            ],
        )
        .await;
    assert_eq!(reasons(&results), vec![None, None]);
    assert_eq!((queue.len(), spill.is_empty()), (1, false));
}
