//! Session logic against a scripted SMSC over an in-memory duplex pipe, on
//! tokio's paused clock.

use std::collections::VecDeque;

use futures_util::SinkExt;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::codec::Framed;

use super::*;
use crate::smpp::pdu::SubmitSmResp;

#[derive(Default)]
struct TestHandler {
    queue: Mutex<VecDeque<u32>>,
    notify: Notify,
    sms: Mutex<std::collections::HashMap<u32, SubmitSm>>,
    answered: Mutex<Vec<(u32, CommandStatus, Bytes)>>,
    unanswered: Mutex<Vec<u32>>,
    delivered: Mutex<Vec<Bytes>>,
    release_deliver: Arc<Notify>,
    /// Jobs the last look stops (and how often it was asked).
    stopped: Mutex<std::collections::HashSet<u32>>,
    vetted: Mutex<Vec<u32>>,
    /// When set, write gates wait for this (the journal's sync).
    hold_gates: Option<Arc<Notify>>,
    gated: Mutex<Vec<u32>>,
}

impl TestHandler {
    fn with_jobs(n: u32) -> Arc<TestHandler> {
        let h = TestHandler::default();
        for i in 0..n {
            h.queue.lock().push_back(i);
            h.sms.lock().insert(
                i,
                SubmitSm {
                    destination_addr: Bytes::from(format!("1415555{i:04}")),
                    short_message: Bytes::from(format!("job {i}")),
                    ..SubmitSm::default()
                },
            );
        }
        Arc::new(h)
    }
}

impl Handler for TestHandler {
    type Job = u32;
    fn take(&self, max: usize) -> Vec<u32> {
        let mut q = self.queue.lock();
        let n = max.min(q.len());
        q.drain(..n).collect()
    }
    async fn ready(&self) {
        loop {
            let n = self.notify.notified();
            if !self.queue.lock().is_empty() {
                return;
            }
            n.await;
        }
    }
    fn give_back(&self, jobs: Vec<u32>) {
        let mut q = self.queue.lock();
        for j in jobs.into_iter().rev() {
            q.push_front(j);
        }
    }
    fn vet(&self, job: u32, _now_ms: u64) -> Option<u32> {
        self.vetted.lock().push(job);
        (!self.stopped.lock().contains(&job)).then_some(job)
    }
    fn will_write(&self, jobs: &[u32]) -> WriteGate {
        self.gated.lock().extend_from_slice(jobs);
        match &self.hold_gates {
            None => Box::pin(std::future::ready(true)),
            Some(n) => {
                let n = n.clone();
                Box::pin(async move {
                    n.notified().await;
                    true
                })
            }
        }
    }
    fn submit_sm<'a>(&self, job: &'a u32) -> &'a SubmitSm {
        // The map lives as long as the handler; leak a clone for the test's
        // simplicity (bounded by the handful of jobs in a test).
        Box::leak(Box::new(self.sms.lock()[job].clone()))
    }
    fn submit_resp(&self, job: u32, status: CommandStatus, id: Bytes) {
        if status.is_temporary() {
            self.queue.lock().push_front(job);
            self.notify.notify_waiters();
        }
        self.answered.lock().push((job, status, id));
    }
    fn unanswered(&self, job: u32) {
        self.unanswered.lock().push(job);
    }
    fn deliver(&self, sm: DeliverSm) -> Pin<Box<dyn Future<Output = CommandStatus> + Send>> {
        self.delivered.lock().push(sm.short_message.clone());
        let gate = self.release_deliver.clone();
        Box::pin(async move {
            gate.notified().await;
            CommandStatus::ESME_ROK
        })
    }
}

fn params(window: usize) -> BindParams {
    BindParams {
        name: "test/1".into(),
        carrier: "test".into(),
        address: "inmemory".into(),
        system_id: "sys".into(),
        password: crate::model::Secret::new("pw"),
        system_type: String::new(),
        mode: BindMode::Transceiver,
        window,
        rate: 0,
        tls: None,
        response_timeout: Duration::from_secs(5),
        enquire_link_interval: Duration::from_secs(30),
        reconnect_min: Duration::from_millis(100),
        reconnect_max: Duration::from_secs(1),
        auth_failure_backoff: Duration::from_secs(300),
        retire: None,
    }
}

type Peer = Framed<tokio::io::DuplexStream, SmppCodec>;

/// Starts a session on a pipe; the returned peer has answered the bind.
async fn start(
    handler: Arc<TestHandler>,
    p: BindParams,
) -> (
    Peer,
    tokio::task::JoinHandle<Result<(), SessionError>>,
    watch::Sender<bool>,
) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let (tx, rx) = watch::channel(false);
    let task =
        tokio::spawn(async move { serve(a, &p, &handler, None, rx, &Default::default()).await });
    let mut peer = Framed::new(b, SmppCodec::default());
    let bind = peer.next().await.unwrap().unwrap().unwrap();
    let Body::BindTransceiver(ref b) = bind.body else {
        panic!("{bind:?}")
    };
    assert_eq!(&b.system_id[..], b"sys");
    let resp = Pdu {
        command_status: CommandStatus::ESME_ROK,
        sequence_number: bind.sequence_number,
        body: Body::BindTransceiverResp(crate::smpp::pdu::BindResp::default()),
    };
    peer.send(resp).await.unwrap();
    (peer, task, tx)
}

async fn next_pdu(peer: &mut Peer) -> Pdu {
    tokio::time::timeout(Duration::from_secs(60), peer.next())
        .await
        .expect("a PDU in time")
        .expect("stream open")
        .expect("framing ok")
        .expect("decodes")
}

fn resp(seq: u32, status: CommandStatus, id: &str) -> Pdu {
    Pdu {
        command_status: status,
        sequence_number: seq,
        body: Body::SubmitSmResp(SubmitSmResp {
            message_id: Bytes::from(id.to_owned()),
        }),
    }
}

#[tokio::test(start_paused = true)]
async fn window_bounds_outstanding_submits() {
    let h = TestHandler::with_jobs(10);
    let (mut peer, _task, _stop) = start(h.clone(), params(4)).await;
    let mut seqs = Vec::new();
    for _ in 0..4 {
        let p = next_pdu(&mut peer).await;
        assert!(matches!(p.body, Body::SubmitSm(_)));
        seqs.push(p.sequence_number);
    }
    // Nothing more while the window is full.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), peer.next())
            .await
            .is_err()
    );
    peer.send(resp(seqs[0], CommandStatus::ESME_ROK, "A1"))
        .await
        .unwrap();
    let p = next_pdu(&mut peer).await;
    assert!(matches!(p.body, Body::SubmitSm(_)));
    assert_eq!(
        h.answered.lock()[0],
        (0, CommandStatus::ESME_ROK, Bytes::from_static(b"A1"))
    );
}

#[tokio::test(start_paused = true)]
async fn throttling_pauses_the_bind_and_retries_the_same_job() {
    let h = TestHandler::with_jobs(1);
    let (mut peer, _task, _stop) = start(h.clone(), params(8)).await;
    let first = next_pdu(&mut peer).await;
    let Body::SubmitSm(original) = &first.body else {
        panic!()
    };
    let original = original.short_message.clone();
    // Refuse every attempt: a few refusals are retried at once; once they
    // are a real share of the answers, the bind slows down.
    let mut pdu = first;
    let mut gaps = Vec::new();
    for _ in 0..8 {
        let t0 = tokio::time::Instant::now();
        peer.send(resp(
            pdu.sequence_number,
            CommandStatus::ESME_RTHROTTLED,
            "",
        ))
        .await
        .unwrap();
        pdu = next_pdu(&mut peer).await;
        gaps.push(t0.elapsed());
        let Body::SubmitSm(sm) = &pdu.body else {
            panic!()
        };
        assert_eq!(sm.short_message, original, "the same job is retried");
    }
    assert!(
        gaps[..4].iter().all(|g| *g < Duration::from_millis(10)),
        "{gaps:?}"
    );
    assert!(
        gaps[5..].iter().all(|g| *g >= Duration::from_millis(50)),
        "{gaps:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn missing_responses_end_the_session_and_hand_jobs_back() {
    let h = TestHandler::with_jobs(3);
    let (mut peer, task, _stop) = start(h.clone(), params(8)).await;
    for _ in 0..3 {
        next_pdu(&mut peer).await;
    }
    let r = task.await.unwrap();
    assert!(
        matches!(
            r,
            Err(SessionError::ResponseTimeout {
                what: "submit_sm",
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(*h.unanswered.lock(), vec![0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn idle_link_is_probed_and_a_dead_one_dropped() {
    let h = TestHandler::with_jobs(0);
    let (mut peer, task, _stop) = start(h, params(8)).await;
    let p = next_pdu(&mut peer).await;
    assert!(matches!(p.body, Body::EnquireLink));
    // No enquire_link_resp: the session gives up after the response timeout.
    let r = task.await.unwrap();
    assert!(
        matches!(
            r,
            Err(SessionError::ResponseTimeout {
                what: "enquire_link",
                ..
            })
        ),
        "{r:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn deliver_sm_is_answered_after_the_handler_resolves_and_enquire_link_meanwhile() {
    let h = TestHandler::with_jobs(0);
    let (mut peer, _task, _stop) = start(h.clone(), params(8)).await;
    let deliver = Pdu::new(
        77,
        Body::DeliverSm(DeliverSm {
            short_message: Bytes::from_static(b"id:1 stat:DELIVRD"),
            esm_class: 0x04,
            ..DeliverSm::default()
        }),
    );
    peer.send(deliver).await.unwrap();
    peer.send(Pdu::enquire_link(78)).await.unwrap();
    // The enquire_link is answered at once, the deliver_sm not yet.
    let p = next_pdu(&mut peer).await;
    assert!(matches!(p.body, Body::EnquireLinkResp));
    assert_eq!(p.sequence_number, 78);
    h.release_deliver.notify_waiters();
    let p = next_pdu(&mut peer).await;
    assert!(matches!(p.body, Body::DeliverSmResp(_)));
    assert_eq!(p.sequence_number, 77);
    assert_eq!(h.delivered.lock().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn garbage_request_gets_generic_nack_and_the_session_lives() {
    let h = TestHandler::with_jobs(0);
    let (mut peer, _task, _stop) = start(h, params(8)).await;
    // An unknown command id: generic_nack with ESME_RINVCMDID.
    peer.send(Pdu::new(
        5,
        Body::Other {
            command_id: 0x0000_0999,
            body: Bytes::new(),
        },
    ))
    .await
    .unwrap();
    let p = next_pdu(&mut peer).await;
    assert!(matches!(p.body, Body::GenericNack));
    assert_eq!(p.sequence_number, 5);
    assert_eq!(p.command_status, CommandStatus::ESME_RINVCMDID);
    peer.send(Pdu::enquire_link(6)).await.unwrap();
    assert!(matches!(
        next_pdu(&mut peer).await.body,
        Body::EnquireLinkResp
    ));
}

#[tokio::test(start_paused = true)]
async fn rate_limit_paces_submits() {
    let h = TestHandler::with_jobs(20);
    let mut p = params(64);
    p.rate = 10;
    let (a, b) = tokio::io::duplex(1 << 20);
    let (_tx, rx) = watch::channel(false);
    let hh = h.clone();
    let rate = Rate::per_second(p.rate).map(Arc::new);
    tokio::spawn(async move { serve(a, &p, &hh, rate, rx, &Default::default()).await });
    let mut peer = Framed::new(b, SmppCodec::default());
    let bind = next_pdu(&mut peer).await;
    peer.send(Pdu {
        command_status: CommandStatus::ESME_ROK,
        sequence_number: bind.sequence_number,
        body: Body::BindTransceiverResp(crate::smpp::pdu::BindResp::default()),
    })
    .await
    .unwrap();
    let t0 = tokio::time::Instant::now();
    for _ in 0..20 {
        let p = next_pdu(&mut peer).await;
        peer.send(resp(p.sequence_number, CommandStatus::ESME_ROK, "x"))
            .await
            .unwrap();
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1850) && took <= Duration::from_millis(2100),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn nothing_is_written_before_its_record_is_durable() {
    let gate = Arc::new(Notify::new());
    let h = TestHandler {
        hold_gates: Some(gate.clone()),
        ..TestHandler::default()
    };
    for i in 0..3 {
        h.queue.lock().push_back(i);
        h.sms.lock().insert(
            i,
            SubmitSm {
                destination_addr: Bytes::from(format!("1415555{i:04}")),
                ..SubmitSm::default()
            },
        );
    }
    let h = Arc::new(h);
    let (mut peer, _task, _stop) = start(h.clone(), params(8)).await;
    // The jobs were taken and their record asked for, but while the journal
    // has not answered nothing reaches the wire.
    assert!(
        tokio::time::timeout(Duration::from_secs(2), peer.next())
            .await
            .is_err()
    );
    assert_eq!(*h.gated.lock(), vec![0, 1, 2]);
    gate.notify_one();
    for _ in 0..3 {
        assert!(matches!(next_pdu(&mut peer).await.body, Body::SubmitSm(_)));
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_stopped_while_its_record_was_synced_is_never_written() {
    let gate = Arc::new(Notify::new());
    let h = TestHandler {
        hold_gates: Some(gate.clone()),
        ..TestHandler::default()
    };
    for i in 0..2 {
        h.queue.lock().push_back(i);
        h.sms.lock().insert(
            i,
            SubmitSm {
                destination_addr: Bytes::from(format!("1415555{i:04}")),
                short_message: Bytes::from(format!("job {i}")),
                ..SubmitSm::default()
            },
        );
    }
    let h = Arc::new(h);
    let (mut peer, _task, _stop) = start(h.clone(), params(8)).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(*h.gated.lock(), vec![0, 1]);
    // The recipient of job 0 opts out while the journal syncs.
    h.stopped.lock().insert(0);
    gate.notify_one();
    let p = next_pdu(&mut peer).await;
    let Body::SubmitSm(sm) = &p.body else {
        panic!("{p:?}")
    };
    assert_eq!(&sm.short_message[..], b"job 1");
    assert!(
        tokio::time::timeout(Duration::from_secs(2), peer.next())
            .await
            .is_err(),
        "job 0 must not be written"
    );
    // Each job was looked at before its record and again after it.
    assert_eq!(*h.vetted.lock(), vec![0, 1, 0, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_job_stopped_before_its_record_is_neither_recorded_nor_written() {
    let h = TestHandler::with_jobs(2);
    h.stopped.lock().insert(1);
    let (mut peer, _task, _stop) = start(h.clone(), params(8)).await;
    let p = next_pdu(&mut peer).await;
    assert!(matches!(p.body, Body::SubmitSm(_)));
    assert!(
        tokio::time::timeout(Duration::from_secs(2), peer.next())
            .await
            .is_err()
    );
    assert_eq!(*h.gated.lock(), vec![0]);
}

/// A connection attempt of a test connector.
type Connecting = Pin<Box<dyn Future<Output = Result<Box<dyn Stream>, SessionError>> + Send>>;

/// A connector whose SMSC answers every bind with `status`; counts attempts.
fn refusing_smsc(
    status: CommandStatus,
    attempts: Arc<std::sync::atomic::AtomicUsize>,
) -> impl Fn(BindParams) -> Connecting {
    move |_| {
        attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::pin(async move {
            let (ours, theirs) = tokio::io::duplex(4096);
            tokio::spawn(async move {
                let mut peer = Framed::new(theirs, SmppCodec::default());
                let Some(Ok(Ok(bind))) = peer.next().await else {
                    return;
                };
                let _ = peer
                    .send(Pdu {
                        command_status: status,
                        sequence_number: bind.sequence_number,
                        body: Body::BindTransceiverResp(crate::smpp::pdu::BindResp::default()),
                    })
                    .await;
                // Hold the pipe open until the session lets go.
                while peer.next().await.is_some() {}
            });
            Ok(Box::new(ours) as Box<dyn Stream>)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn refused_credentials_wait_auth_failure_backoff_before_binding_again() {
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (tx, rx) = watch::channel(false);
    let p = params(8); // reconnect 100 ms doubling to 1 s; auth backoff 5 min
    let task = tokio::spawn(run_with(
        p,
        TestHandler::with_jobs(0),
        rx,
        refusing_smsc(CommandStatus::ESME_RINVPASWD, attempts.clone()),
    ));
    // Ten minutes of (paused) time: the first bind, one retry after 5 min
    // (plus up to 20% jitter), the next one not before 10 min.
    tokio::time::sleep(Duration::from_secs(599)).await;
    assert_eq!(attempts.load(std::sync::atomic::Ordering::Relaxed), 2);
    tx.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn other_bind_refusals_keep_the_normal_backoff() {
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(run_with(
        params(8),
        TestHandler::with_jobs(0),
        rx,
        refusing_smsc(CommandStatus::ESME_RSYSERR, attempts.clone()),
    ));
    tokio::time::sleep(Duration::from_secs(60)).await;
    // 100 ms, 200, 400, 800, then every 1-1.2 s.
    assert!(attempts.load(std::sync::atomic::Ordering::Relaxed) > 40);
    tx.send(true).unwrap();
    task.await.unwrap();
    assert!(is_auth_refusal(CommandStatus::ESME_RBINDFAIL));
    assert!(is_auth_refusal(CommandStatus::ESME_RINVSYSID));
    assert!(!is_auth_refusal(CommandStatus::ESME_RSYSERR));
}

#[tokio::test(start_paused = true)]
async fn a_retired_bind_takes_nothing_more_and_unbinds_once_its_window_is_answered() {
    let h = TestHandler::with_jobs(10);
    let (p, in_force) = retiring_params(3, 0, 0);
    let (mut peer, task, _stop) = start(h.clone(), p).await;
    let mut seqs = Vec::new();
    for _ in 0..3 {
        let p = next_pdu(&mut peer).await;
        assert!(matches!(p.body, Body::SubmitSm(_)));
        seqs.push(p.sequence_number);
    }
    in_force.send_replace(1);
    // Answers free the window, yet nothing more is taken, and no unbind
    // comes while one submit is unanswered.
    for s in &seqs[..2] {
        peer.send(resp(*s, CommandStatus::ESME_ROK, "A"))
            .await
            .unwrap();
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(1), peer.next())
            .await
            .is_err(),
        "nothing written while the last submit waits"
    );
    assert_eq!(h.queue.lock().len(), 7, "the rest stays queued");
    peer.send(resp(seqs[2], CommandStatus::ESME_ROK, "A"))
        .await
        .unwrap();
    let p = next_pdu(&mut peer).await;
    assert!(matches!(p.body, Body::Unbind), "{p:?}");
    // A receipt that comes before the unbind_resp is still answered.
    peer.send(Pdu::new(
        77,
        Body::DeliverSm(DeliverSm {
            short_message: Bytes::from_static(b"late receipt"),
            ..DeliverSm::default()
        }),
    ))
    .await
    .unwrap();
    // Once the session has read it (its enquire_link answered), the
    // handler answers it, and the unbind_resp comes.
    peer.send(Pdu::enquire_link(78)).await.unwrap();
    let e = next_pdu(&mut peer).await;
    assert!(matches!(e.body, Body::EnquireLinkResp), "{e:?}");
    h.release_deliver.notify_waiters();
    peer.send(Pdu::unbind_resp(p.sequence_number))
        .await
        .unwrap();
    let answer = next_pdu(&mut peer).await;
    assert_eq!(answer.sequence_number, 77, "{answer:?}");
    assert!(matches!(answer.body, Body::DeliverSmResp(_)), "{answer:?}");
    assert!(matches!(task.await.unwrap(), Err(SessionError::Retired)));
    assert_eq!(h.answered.lock().len(), 3);
    assert!(h.unanswered.lock().is_empty(), "nothing left unanswered");
    assert_eq!(h.queue.lock().len(), 7);
}

#[tokio::test(start_paused = true)]
async fn a_bind_retired_before_it_is_bound_ends_without_binding_again() {
    let h = TestHandler::with_jobs(1);
    let (p, in_force) = retiring_params(3, 0, 0);
    let (_shutdown, stop) = watch::channel(false);
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = attempts.clone();
    // Every connect fails: the bind waits in its backoff.
    let task = tokio::spawn(run_with(p, h, stop, move |_| {
        seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::future::ready(Err::<Box<dyn Stream>, _>(SessionError::Closed))
    }));
    tokio::time::sleep(Duration::from_millis(10)).await;
    in_force.send_replace(1);
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("a retired bind ends at once")
        .unwrap();
    assert_eq!(attempts.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn a_newer_bind_puts_its_generation_in_force_once_bound() {
    let in_force = Arc::new(watch::Sender::new(0u64));
    let mut p = params(3);
    p.retire = Some(Retire {
        generation: 1,
        in_force: in_force.clone(),
        retiring: Arc::default(),
    });
    assert!(p.retire.as_ref().unwrap().replacing());
    let (_peer, _task, _stop) = start(TestHandler::with_jobs(0), p).await;
    let mut rx = in_force.subscribe();
    tokio::time::timeout(Duration::from_secs(1), rx.wait_for(|g| *g == 1))
        .await
        .expect("bound: generation 1 in force")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_bind_refused_while_the_binds_it_replaces_drain_retries_soon_and_at_once_when_they_go() {
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (tx, rx) = watch::channel(false);
    // Its generation is in force, but one older bind still drains.
    let retire = Retire {
        generation: 1,
        in_force: Arc::new(watch::Sender::new(1u64)),
        retiring: Arc::default(),
    };
    let old = retire.draining();
    let mut p = params(8); // reconnect from 100 ms; auth backoff 5 min
    p.reconnect_max = Duration::from_secs(60);
    p.retire = Some(retire);
    let task = tokio::spawn(run_with(
        p,
        TestHandler::with_jobs(0),
        rx,
        refusing_smsc(CommandStatus::ESME_RBINDFAIL, attempts.clone()),
    ));
    // 100 ms doubling up to 51.2 s (at most 123 s with jitter), then a
    // 60 s wait: refused for the account's cap, not for its password.
    tokio::time::sleep(Duration::from_secs(130)).await;
    let n = attempts.load(std::sync::atomic::Ordering::Relaxed);
    assert!(n >= 10, "{n} attempts: the 5-minute auth backoff was used");
    // The old bind goes: it tries again at once.
    drop(old);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(attempts.load(std::sync::atomic::Ordering::Relaxed), n + 1);
    tx.send(true).unwrap();
    task.await.unwrap();
}

/// [`params`] of a bind of `generation`, with generation `in_force` in
/// force (raise it to retire the bind).
fn retiring_params(
    window: usize,
    generation: u64,
    in_force: u64,
) -> (BindParams, Arc<watch::Sender<u64>>) {
    let sender = Arc::new(watch::Sender::new(in_force));
    let mut p = params(window);
    p.retire = Some(Retire {
        generation,
        in_force: sender.clone(),
        retiring: Arc::default(),
    });
    (p, sender)
}
