//! The dispatcher against a carrier made for the test (no sockets): what it
//! pops, ends, prepares and hands over, round by round.

use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use parking_lot::Mutex;
use prost::Message as _;
use tokio::sync::{Semaphore, mpsc};

use super::*;
use crate::carrier::Room;
use crate::ingest::pb;
use crate::model::{ChannelPref, FallbackPolicy, Message, MessageId, Msisdn, Priority, Sender};

/// A carrier of `free` units whose hand-offs go to a channel; a message
/// whose text is "unfit" cannot be prepared.
struct TestCarrier {
    name: Arc<str>,
    units: Semaphore,
    gate: Mutex<Gate>,
    probes: AtomicUsize,
    handed: mpsc::UnboundedSender<(Vec<MessageId>, bool)>,
}

impl Carrier for TestCarrier {
    type Prepared = ();
    type Unfit = std::fmt::Error;

    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn gate(&self, _now: Instant) -> Gate {
        *self.gate.lock()
    }

    /// As an MMSC does: no further try while one runs.
    fn begin_probe(&self) -> bool {
        self.probes.fetch_add(1, Ordering::Relaxed);
        *self.gate.lock() = Gate::Closed(None);
        true
    }

    async fn wait_room(&self, units: usize) -> bool {
        self.units.acquire_many(units as u32).await.is_ok()
    }

    fn room(&self) -> Room {
        Room {
            messages: 100,
            units: self.units.available_permits(),
        }
    }

    fn cost(&self, _m: &Message) -> usize {
        1
    }

    fn prepare(&self, m: &Arc<Message>) -> Result<(), std::fmt::Error> {
        if &*m.text == "unfit" {
            Err(std::fmt::Error)
        } else {
            Ok(())
        }
    }

    fn units(_: &()) -> usize {
        1
    }

    async fn reserve(&self, units: usize) -> bool {
        self.units.try_acquire_many(units as u32).unwrap().forget();
        true
    }

    fn unreserve(&self, units: usize) {
        self.units.add_permits(units);
    }

    async fn hand_off(self: &Arc<Self>, batch: Vec<(Arc<Message>, ())>, _epoch: u64, probe: bool) {
        let ids = batch.iter().map(|(m, _)| m.id).collect();
        self.handed.send((ids, probe)).unwrap();
    }
}

fn message(id: u64, text: &str, expires_at_ms: u64) -> Arc<Message> {
    Arc::new(Message {
        id: MessageId(id),
        tenant: "t".into(),
        client_ref: id.to_string().into(),
        to: Msisdn::parse("+14155550100").unwrap(),
        from: Sender::parse("12345").unwrap(),
        text: text.into(),
        media: Box::default(),
        channel: ChannelPref::Auto,
        fallback: FallbackPolicy::SmsTextOnly,
        campaign_id: Box::default(),
        expires_at_ms,
        priority: Priority::Transactional,
        tags: Box::default(),
        accepted_at_ms: now_ms(),
        auto_reply: false,
        mms: None,
    })
}

struct Setup {
    carrier: Arc<TestCarrier>,
    queue: Arc<CarrierQueue>,
    ledger: Arc<Ledger>,
    receipts: Arc<Receipts>,
    handed: mpsc::UnboundedReceiver<(Vec<MessageId>, bool)>,
    stop: watch::Sender<bool>,
    scheduler: super::super::Scheduler,
    _dir: tempfile::TempDir,
}

/// A dispatcher over carrier `c` of the backlog fixture's configuration,
/// started, with `free` units of room.
fn start(free: usize, gate: Gate) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::backlog::tests::kit::config(dir.path(), 1000);
    let (ledger, receipts) = crate::receipts::for_tests(&dir.path().join("journal"));
    let scheduler = super::super::Scheduler::new(&config);
    let queue = scheduler.queue("c").unwrap();
    let (tx, handed) = mpsc::unbounded_channel();
    let carrier = Arc::new(TestCarrier {
        name: "c".into(),
        units: Semaphore::new(free),
        gate: Mutex::new(gate),
        probes: AtomicUsize::new(0),
        handed: tx,
    });
    let (stop, shutdown) = watch::channel(false);
    let dispatcher = Dispatcher {
        queue: queue.clone(),
        carrier: carrier.clone(),
        ledger: ledger.clone(),
        receipts: receipts.clone(),
        check: None,
    };
    tokio::spawn(dispatcher.run(shutdown));
    Setup {
        carrier,
        queue,
        ledger,
        receipts,
        handed,
        stop,
        scheduler,
        _dir: dir,
    }
}

impl Setup {
    fn queue(&self, messages: &[Arc<Message>]) {
        self.ledger.admit(messages);
        self.queue.push(messages);
    }

    async fn next_handed(&mut self) -> (Vec<MessageId>, bool) {
        tokio::time::timeout(Duration::from_secs(10), self.handed.recv())
            .await
            .expect("a hand-off")
            .expect("dispatcher running")
    }

    /// The delivery events published so far: (message id, wire state).
    async fn ended(&self, n: usize) -> Vec<(u64, i32)> {
        let hub = self.receipts.hub();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), async {
            while got.len() < n {
                hub.wait("t", 1).await;
                for e in hub.take("t", 1, 100) {
                    let ev = pb::Event::decode(e.payload.clone()).unwrap();
                    if let Some(pb::event::Kind::Delivery(d)) = ev.kind {
                        got.push((d.message_id, d.state));
                    }
                }
            }
        })
        .await
        .expect("the events");
        got.sort_unstable();
        got
    }
}

#[tokio::test]
async fn it_pops_only_what_the_room_holds_ends_what_cannot_go_and_hands_over_the_rest() {
    let mut s = start(2, Gate::Open);
    let later = now_ms() + 3_600_000;
    s.queue(&[
        message(1, "a", later),
        message(2, "unfit", later),
        message(3, "expired", now_ms().saturating_sub(1)),
        message(4, "b", later),
        message(5, "c", later),
    ]);
    // Two units of room: 1 and 2 are popped; 2 cannot be prepared.
    assert_eq!(s.next_handed().await, (vec![MessageId(1)], false));
    // One unit left: 3 is popped and expired, then 4 goes.
    assert_eq!(s.next_handed().await, (vec![MessageId(4)], false));
    assert_eq!(
        s.ended(2).await,
        vec![
            (2, pb::DeliveryState::StateRejected as i32),
            (3, pb::DeliveryState::StateExpired as i32),
        ]
    );
    // No room: 5 waits in the queue, not at the carrier.
    tokio::task::yield_now().await;
    assert!(s.handed.try_recv().is_err());
    assert_eq!(s.queue.len(), 1);
    s.carrier.unreserve(1);
    assert_eq!(s.next_handed().await, (vec![MessageId(5)], false));
    for id in [1, 4, 5] {
        assert!(s.ledger.get(MessageId(id)).is_some(), "{id} is live");
    }
    assert_eq!(s.ledger.live(), 3);
    s.stop.send(true).unwrap();
}

#[tokio::test]
async fn a_carrier_that_is_down_gets_nothing_and_then_one_try() {
    let mut s = start(10, Gate::Closed(None));
    let later = now_ms() + 3_600_000;
    s.queue(&[message(1, "a", later), message(2, "b", later)]);
    tokio::task::yield_now().await;
    assert!(s.handed.try_recv().is_err(), "closed: nothing goes");
    *s.carrier.gate.lock() = Gate::Probe;
    s.queue.notify.notify_one();
    assert_eq!(s.next_handed().await, (vec![MessageId(1)], true));
    assert_eq!(s.carrier.probes.load(Ordering::Relaxed), 1);
    *s.carrier.gate.lock() = Gate::Open;
    s.queue.notify.notify_one();
    assert_eq!(s.next_handed().await, (vec![MessageId(2)], false));
    s.stop.send(true).unwrap();
}

#[tokio::test]
async fn a_queue_removed_by_a_reload_stops_its_dispatcher_and_keeps_what_it_holds() {
    let mut s = start(10, Gate::Closed(None));
    let later = now_ms() + 3_600_000;
    s.queue(&[message(1, "a", later), message(2, "b", later)]);
    tokio::task::yield_now().await;
    let q = s.scheduler.remove("c").expect("its queue");
    assert!(Arc::ptr_eq(&q, &s.queue) && q.is_removed());
    assert!(s.scheduler.queue("c").is_none());
    tokio::time::timeout(Duration::from_secs(10), async {
        while !q.dispatcher_ended() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the dispatcher ends");
    // The carrier opens: nothing goes to it any more.
    *s.carrier.gate.lock() = Gate::Open;
    q.notify.notify_one();
    tokio::task::yield_now().await;
    assert!(s.handed.try_recv().is_err());
    assert_eq!(
        q.len(),
        2,
        "what it held stays, for the backlog to route again"
    );
}
