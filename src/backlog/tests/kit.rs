//! The backlog fixture, shared with the unit tests of the rooms above.

use std::sync::Arc;

use crate::backlog::Backlog;
use crate::ledger::Ledger;
use crate::media::link::LinkSigner;
use crate::receipts::Receipts;
use crate::route::Router;
use crate::schedule::Scheduler;
use crate::spill::Spill;

/// A backlog over one SMS carrier `c` (never started: no sockets) routing
/// `+1…` only and one MMSC `mm` (never reached), with an in-memory budget of `budget`, for unit tests here
/// and in the rooms above (tenant `t`, data under `dir`).
pub(crate) fn for_tests(
    dir: &std::path::Path,
    budget: u64,
) -> (Arc<Backlog>, Arc<Ledger>, Arc<Scheduler>, Arc<Receipts>) {
    for_tests_with(dir, budget, &Default::default())
}

/// As [`for_tests`], with the journal (under `dir/journal`) configured by
/// `journal`.
pub(crate) fn for_tests_with(
    dir: &std::path::Path,
    budget: u64,
    journal: &crate::settings::JournalConfig,
) -> (Arc<Backlog>, Arc<Ledger>, Arc<Scheduler>, Arc<Receipts>) {
    for_tests_recording(dir, budget, journal, crate::history::History::disabled())
}

/// As [`for_tests_with`], the ledger recording its steps into `history`.
pub(crate) fn for_tests_recording(
    dir: &std::path::Path,
    budget: u64,
    journal: &crate::settings::JournalConfig,
    history: crate::history::History,
) -> (Arc<Backlog>, Arc<Ledger>, Arc<Scheduler>, Arc<Receipts>) {
    let config = config(dir, budget);
    let (ledger, receipts) =
        crate::receipts::for_tests_recording(&dir.join("journal"), journal, history);
    let carrier =
        crate::carrier::smpp::SmppCarrier::new(&config.carriers[0], receipts.clone(), None);
    let carriers = crate::model::hashing::FastMap::from_iter([(carrier.name().clone(), carrier)]);
    let mmsc = crate::carrier::mm7::Mm7Carrier::new(&config.mmsc[0], Arc::new(NoMedia), None)
        .expect("a valid MMSC");
    let router = Arc::new(Router::new(&config, carriers, vec![Arc::new(mmsc)]));
    let scheduler = Arc::new(Scheduler::new(&config));
    let spill = Spill::open(&dir.join("spill"), 1 << 20)
        .unwrap()
        .with_max_batch((budget / 8).max(1) as usize);
    let links = Arc::new(LinkSigner::new(&[7; 32]));
    let backlog = Backlog::new(
        &config,
        router,
        scheduler.clone(),
        ledger.clone(),
        receipts.clone(),
        Arc::new(spill),
        links,
    );
    (Arc::new(backlog), ledger, scheduler, receipts)
}

/// What a test above the backlog looks at besides the ledger.
pub(crate) struct Fixture {
    /// The carrier queues.
    pub scheduler: Arc<Scheduler>,
    /// Idempotency keys.
    pub dedupe: Arc<crate::admission::Dedupe>,
}

/// The fixture's configuration: tenant `t` (token `a-long-enough-token`,
/// sender 12345), carrier `c` for `+1…`, data under `dir`.
pub(crate) fn config(dir: &std::path::Path, budget: u64) -> crate::settings::Config {
    let text = format!(
        r#"
        data_dir = "{}"
        [journal]
        max_queued_in_memory = {budget}
        [mms]
        public_url = "https://m.example.com/"
        [[tenants]]
        name = "t"
        token = "a-long-enough-token"
        senders = ["12345"]
        [[carriers]]
        name = "c"
        [[carriers.binds]]
        address = "127.0.0.1:1"
        system_id = "x"
        password = "y"
        [[routes]]
        prefix = "+1"
        carriers = ["c"]
        [[mmsc]]
        name = "mm"
        url = "http://127.0.0.1:1/mm7"
        "#,
        dir.display()
    );
    crate::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap()
}

/// A media source with nothing in it.
#[derive(Debug)]
struct NoMedia;

impl crate::carrier::mm7::MediaSource for NoMedia {
    fn fetch(
        &self,
        _: &str,
        id: &str,
        _: usize,
    ) -> Result<(String, bytes::Bytes), crate::carrier::mm7::MediaUnavailable> {
        Err(crate::carrier::mm7::MediaUnavailable::Unknown {
            id: id.to_owned(),
            source: crate::media::MediaError::NotFound,
        })
    }
}
