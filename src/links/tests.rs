use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper::HeaderMap;
use hyper::header::{HeaderValue, USER_AGENT};

use super::code::{CODE_CHARS, Codec, base62, unbase62};
use super::rewrite::{MAX_LINKS, plan};
use super::store::{LinkStore, Lookup, SEGMENT_LINKS};
use super::{agent, serve};
use crate::model::{Message, MessageId};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

#[test]
fn codes_are_unique_and_decode_back_across_a_million_links() {
    let codec = Codec::new(SECRET);
    let mut seen = HashSet::with_capacity(1_000_000);
    for n in 0..1_000_000u64 {
        let code = codec.encode(n);
        let text = std::str::from_utf8(&code).unwrap();
        assert_eq!(text.len(), CODE_CHARS);
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(codec.decode(text), Some(n));
        assert!(seen.insert(code), "code of link {n} repeated");
    }
}

#[test]
fn codes_depend_on_the_key_and_do_not_count_up() {
    let a = Codec::new(SECRET);
    let b = Codec::new(b"another secret of thirty-two byt");
    assert_ne!(a.encode(0), b.encode(0));
    // Neighbouring numbers share no visible structure: their permuted values
    // differ in about half their bits.
    let flips: u32 = (0..1000u64)
        .map(|n| (a.permute(n) ^ a.permute(n + 1)).count_ones())
        .sum();
    assert!(
        (28_000..36_000).contains(&flips),
        "{flips} bits flipped over 1000 pairs"
    );
}

#[test]
fn base62_is_strict() {
    assert_eq!(unbase62(std::str::from_utf8(&base62(0)).unwrap()), Some(0));
    let max = base62(u64::MAX);
    assert_eq!(unbase62(std::str::from_utf8(&max).unwrap()), Some(u64::MAX));
    // Past u64::MAX, the wrong length, or outside the alphabet.
    assert_eq!(unbase62("zzzzzzzzzzz"), None);
    assert_eq!(unbase62("0000000000"), None);
    assert_eq!(unbase62("000000000000"), None);
    assert_eq!(unbase62("00000-00000"), None);
    assert_eq!(unbase62("0000000000é"), None);
}

#[test]
fn plans_replace_each_url_and_leave_the_prose() {
    let p = plan(
        "Sale! https://shop.example/a?x=1. See (https://shop.example/b) or HTTP://X.EXAMPLE/c, reply STOP",
        "https://acme.link/",
    )
    .unwrap();
    let urls: Vec<&str> = p.links.iter().map(|l| l.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://shop.example/a?x=1",
            "https://shop.example/b",
            "HTTP://X.EXAMPLE/c"
        ]
    );
    assert_eq!(
        p.text,
        "Sale! https://acme.link/00000000000. See (https://acme.link/00000000000) or https://acme.link/00000000000, reply STOP"
    );
    for l in &p.links {
        assert_eq!(&p.text[l.at..l.at + CODE_CHARS], "00000000000");
    }
}

#[test]
fn plans_skip_what_is_not_a_link_to_track() {
    assert_eq!(
        plan("no links here, just http:// and https://", "https://a.link"),
        None
    );
    // Already one of ours; glued to a word; too long.
    assert_eq!(plan("https://a.link/abc", "https://a.link"), None);
    assert_eq!(plan("xhttps://shop.example", "https://a.link"), None);
    let long = format!("https://shop.example/{}", "a".repeat(3000));
    assert_eq!(plan(&long, "https://a.link"), None);
    // Unicode around and in the URL; a URL stopped by a quote.
    let p = plan(
        "¡Hola! https://tienda.example/año \"https://q.example\"",
        "https://a.link",
    )
    .unwrap();
    assert_eq!(p.links[0].url, "https://tienda.example/año");
    assert_eq!(p.links[1].url, "https://q.example");
    // At most MAX_LINKS.
    let many = "https://s.example/x ".repeat(MAX_LINKS + 3);
    assert_eq!(
        plan(&many, "https://a.link").unwrap().links.len(),
        MAX_LINKS
    );
}

fn message(id: u64, text: &str, campaign: &str) -> Message {
    let mut m = Arc::unwrap_or_clone(crate::model::test_message(id, text, u64::MAX));
    m.campaign_id = campaign.into();
    m.accepted_at_ms = crate::model::now_ms();
    m
}

/// Message `id` with `text`'s links stored (and durable) and its codes.
async fn tracked(store: &LinkStore, id: u64, text: &str) -> (Message, Vec<String>) {
    let p = plan(text, "https://a.link").unwrap();
    let mut m = message(id, &p.text, "spring");
    let ticket = store.shorten(&mut m, &p.links);
    store.durable(ticket).await.unwrap();
    let codes = p
        .links
        .iter()
        .map(|l| m.text[l.at..l.at + CODE_CHARS].to_owned())
        .collect();
    (m, codes)
}

#[tokio::test]
async fn links_are_durable_found_by_code_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let now = crate::model::now_ms();
    let codes = {
        let store = LinkStore::open(dir.path(), SECRET, Duration::from_secs(86_400)).unwrap();
        let (m, codes) = tracked(&store, 7, "A https://a.example/1 B https://b.example/2").await;
        assert!(!m.text.contains("00000000000"), "{}", m.text);
        assert!(m.text.contains(&format!("https://a.link/{}", codes[1])));
        let (_, more) = tracked(&store, 8, "C https://c.example/3").await;
        let (_, t) = store.click(
            &match store.lookup(&more[0], now) {
                Lookup::Found(l) => l,
                other => panic!("{other:?}"),
            },
            false,
            now,
        );
        store.durable(t.unwrap()).await.unwrap();
        codes
    };
    let store = LinkStore::open(dir.path(), SECRET, Duration::from_secs(86_400)).unwrap();
    let Lookup::Found(link) = store.lookup(&codes[1], now) else {
        panic!("link lost at restart");
    };
    assert_eq!(
        (
            link.index,
            link.message_id,
            link.url.as_str(),
            link.campaign.as_str()
        ),
        (1, MessageId(7), "https://b.example/2", "spring")
    );
    assert_eq!(store.issued(), 3);
    // The click was loaded back.
    assert_eq!(store.campaign("t", "spring").clicks, 1);
    // A code never issued, and one malformed.
    let unissued = std::str::from_utf8(&store.codec().encode(3))
        .unwrap()
        .to_owned();
    assert_eq!(store.lookup(&unissued, now), Lookup::Unknown);
    assert_eq!(store.lookup("nope", now), Lookup::Unknown);
    // Numbering went on where it stopped.
    let (_, next) = tracked(&store, 9, "https://d.example").await;
    assert_eq!(store.codec().decode(&next[0]), Some(3));
}

#[tokio::test]
async fn a_link_past_its_retention_is_expired_and_its_segment_swept() {
    let dir = tempfile::tempdir().unwrap();
    let store = LinkStore::open(dir.path(), SECRET, Duration::from_secs(3600)).unwrap();
    let (_, codes) = tracked(&store, 1, "https://a.example").await;
    let now = crate::model::now_ms();
    assert!(matches!(store.lookup(&codes[0], now), Lookup::Found(_)));
    assert_eq!(store.lookup(&codes[0], now + 3_600_000), Lookup::Expired);
    // The head segment is never swept; links of a later segment make it old.
    let p = plan("https://b.example", "https://a.link").unwrap();
    let mut filler = message(2, &p.text, "c");
    let per = vec![p.links[0].clone(); 16];
    // Push numbering to the next segment.
    while store.issued() < SEGMENT_LINKS {
        store.shorten(&mut filler.clone(), &per);
    }
    let last = store.shorten(&mut filler, &p.links);
    store.durable(last).await.unwrap();
    assert!(store.issued() > SEGMENT_LINKS);
    let later = SystemTime::now() + Duration::from_secs(7200);
    assert_eq!(store.sweep(SystemTime::now()), 0, "not old yet");
    assert_eq!(store.sweep(later), 1);
    assert_eq!(store.lookup(&codes[0], now), Lookup::Expired);
    assert!(!dir.path().join("0000000000.links").exists());
}

#[test]
fn previews_and_crawlers_are_told_from_clicks() {
    let with = |agent: &str| {
        let mut h = HeaderMap::new();
        h.insert(USER_AGENT, HeaderValue::from_str(agent).unwrap());
        h
    };
    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
    assert!(!agent::is_preview(false, &with(iphone)));
    assert!(agent::is_preview(true, &with(iphone)), "HEAD");
    assert!(agent::is_preview(false, &HeaderMap::new()), "no agent");
    for bot in [
        "facebookexternalhit/1.1 Facebot Twitterbot/1.0",
        "WhatsApp/2.23.20.0",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "TelegramBot (like TwitterBot)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    ] {
        assert!(agent::is_preview(false, &with(bot)), "{bot}");
    }
    let mut prefetch = with(iphone);
    prefetch.insert(
        "sec-purpose",
        HeaderValue::from_static("prefetch;anonymous-client-ip"),
    );
    assert!(agent::is_preview(false, &prefetch));
}

#[test]
fn the_network_of_a_click_is_coarse() {
    assert_eq!(
        agent::ip_class("203.0.113.77".parse().unwrap()),
        "203.0.113.0/24"
    );
    assert_eq!(
        agent::ip_class("2001:db8:1:2::5".parse().unwrap()),
        "2001:db8:1::/48"
    );
    assert_eq!(
        agent::ip_class("::ffff:198.51.100.9".parse().unwrap()),
        "198.51.100.0/24"
    );
}

#[test]
fn locations_and_hosts() {
    assert_eq!(
        serve::location("https://t.example/año x"),
        "https://t.example/a%C3%B1o%20x"
    );
    assert_eq!(
        serve::host_of("https://Acme.Link/"),
        Some("acme.link".into())
    );
    assert_eq!(
        serve::host_of("http://127.0.0.1:9702"),
        Some("127.0.0.1:9702".into())
    );
    assert_eq!(serve::host_of("acme.link"), None);
}

#[test]
fn an_opt_out_is_attributed_within_the_window_and_figures_survive_a_save() {
    use super::campaigns::{Campaigns, Delivered};
    let dir = tempfile::tempdir().unwrap();
    let config = crate::backlog::tests::kit::config(dir.path(), 1000);
    let compliance = Arc::new(crate::compliance::Compliance::open(&config).unwrap());
    let window = Duration::from_secs(7 * 86_400);
    let t0 = 1_764_950_000;
    let c = Campaigns::open(dir.path(), window, t0, compliance.clone());
    // Delivery times are kept to a tick: 1/1,280 of the window.
    let tick = 473;
    let (alerts, promo): (Arc<str>, Arc<str>) = ("program:t:alerts".into(), "tenant:t".into());
    let sent = |campaign, program, to| Delivered {
        tenant: "t",
        campaign,
        program,
        to,
    };
    c.delivered(
        [
            sent("spring", &alerts, 14155550100),
            sent("summer", &alerts, 14155550100),
            sent("spring", &promo, 14155550101),
            sent("", &promo, 14155550102),
            sent("fall", &promo, 14155550103),
            sent("winter", &promo, 14155550105),
        ],
        t0,
    );
    // The last campaign of that program to that number.
    assert_eq!(
        c.opted_out(&alerts, 14155550100, t0 + 60).map(|(_, c)| c),
        Some("summer".into())
    );
    // Days pass, swept every so often (the gateway sweeps every five
    // minutes; a longer gap than is safe drops the table, see below).
    for day in 1..=6 {
        assert_eq!(c.sweep(t0 + day * 86_400), 0);
    }
    // Another program, no message, a message without campaign, too late.
    assert_eq!(c.opted_out(&promo, 14155550100, t0), None);
    assert_eq!(c.opted_out(&promo, 14155550102, t0), None);
    assert_eq!(
        c.opted_out(&promo, 14155550103, t0 + window.as_secs() + 2 * tick),
        None
    );
    // At the window's end, still attributed.
    assert_eq!(
        c.opted_out(&promo, 14155550105, t0 + window.as_secs())
            .map(|(_, c)| c),
        Some("winter".into())
    );
    assert_eq!(
        c.figures("t", "spring"),
        super::campaigns::CampaignFigures {
            delivered: 2,
            optouts: 0
        }
    );
    c.save(t0 + 60).unwrap();
    let again = Campaigns::open(dir.path(), window, t0 + 120, compliance.clone());
    assert_eq!(again.figures("t", "summer").optouts, 1);
    assert_eq!(again.figures("t", "spring").delivered, 2);
    assert!(again.opted_out(&promo, 14155550101, t0 + 10).is_some());
    // A repeated STOP is not a second opt-out.
    assert!(again.opted_out(&promo, 14155550101, t0 + 11).is_none());
    assert_eq!(again.figures("t", "spring").optouts, 1);
    // Past the window, the sweep drops the entries left.
    again.delivered([sent("fall", &promo, 14155550104)], t0);
    for day in 1..=6 {
        assert_eq!(again.sweep(t0 + day * 86_400), 0);
    }
    assert_eq!(again.sweep(t0 + window.as_secs()), 0);
    assert_eq!(again.sweep(t0 + window.as_secs() + 2 * tick), 1);

    // Saved three days on, opened six days on: the delivery time survives
    // to a tick (attributed at the window's end, not two ticks past it).
    again.delivered(
        [
            sent("spring", &promo, 14155550106),
            sent("spring", &promo, 14155550107),
        ],
        t0,
    );
    again.save(t0 + 3 * 86_400).unwrap();
    let later = Campaigns::open(dir.path(), window, t0 + 6 * 86_400, compliance.clone());
    assert!(
        later
            .opted_out(&promo, 14155550106, t0 + window.as_secs())
            .is_some()
    );
    assert!(
        later
            .opted_out(&promo, 14155550107, t0 + window.as_secs() + 2 * tick)
            .is_none()
    );
    // Opened after the window: the deliveries are not loaded at all.
    later.delivered([sent("spring", &promo, 14155550108)], t0);
    later.save(t0 + 6 * 86_400).unwrap();
    let late = Campaigns::open(dir.path(), window, t0 + 30 * 86_400, compliance.clone());
    assert_eq!(late.figures("t", "spring").delivered, 5);
    assert_eq!(late.sweep(t0 + 30 * 86_400), 0);
    assert!(late.opted_out(&promo, 14155550108, t0).is_none());

    // A sweep missed for longer than is safe (a stopped process): the
    // entries are dropped, not taken for young ones (12 days on, a
    // delivery's 11-bit tick has come round again).
    let fresh = tempfile::tempdir().unwrap();
    let gap = Campaigns::open(fresh.path(), window, t0, compliance);
    gap.delivered(
        [
            sent("spring", &promo, 14155550109),
            sent("spring", &promo, 14155550110),
        ],
        t0,
    );
    let aliased = t0 + (2_048 + 5) * tick;
    assert!(gap.opted_out(&promo, 14155550109, aliased).is_none());
    assert_eq!(gap.sweep(aliased), 1);
    assert!(gap.opted_out(&promo, 14155550110, aliased).is_none());
}

#[test]
fn a_campaign_past_the_limit_ends_the_number_attribution() {
    use super::campaigns::{Campaigns, Delivered};
    let dir = tempfile::tempdir().unwrap();
    let config = crate::backlog::tests::kit::config(dir.path(), 1000);
    let compliance = Arc::new(crate::compliance::Compliance::open(&config).unwrap());
    let t0 = 1_764_950_000;
    let c = Campaigns::open(dir.path(), Duration::from_secs(86_400), t0, compliance)
        .with_max_campaigns(2);
    let promo: Arc<str> = "tenant:t".into();
    let sent = |campaign, to| Delivered {
        tenant: "t",
        campaign,
        program: &promo,
        to,
    };
    c.delivered([sent("a", 14155550100), sent("b", 14155550101)], t0);
    // The third campaign: counted, not attributed, and not taken for "a".
    c.delivered([sent("c", 14155550100)], t0 + 1);
    assert_eq!(c.figures("t", "c").delivered, 1);
    assert!(c.opted_out(&promo, 14155550100, t0 + 2).is_none());
    assert_eq!(
        c.opted_out(&promo, 14155550101, t0 + 2).map(|(_, c)| c),
        Some("b".into())
    );
    assert_eq!(c.figures("t", "a").optouts, 0);
}

#[test]
fn snapshots_of_both_formats_load() {
    // The committed fuzz seeds: the first format (the table as one run)
    // and the current one (a run per shard), the same content.
    use super::campaigns::Campaigns;
    let dir = tempfile::tempdir().unwrap();
    let config = crate::backlog::tests::kit::config(dir.path(), 1000);
    let compliance = Arc::new(crate::compliance::Compliance::open(&config).unwrap());
    for seed in [
        &include_bytes!("../../fuzz/seeds/link_store/ex-snapshot")[..],
        &include_bytes!("../../fuzz/seeds/link_store/ex-snapshot-v2")[..],
    ] {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("campaigns.snap"), &seed[1..]).unwrap();
        let c = Campaigns::open(
            d.path(),
            Duration::from_secs(86_400),
            1_764_950_000,
            compliance.clone(),
        );
        let spring = c.figures("demo", "spring");
        assert_eq!((spring.delivered, spring.optouts), (100, 3));
        assert_eq!(c.figures("demo", "fall").delivered, 5);
        // And the table: (tenant:demo, 14155550101) last had "fall".
        let demo: Arc<str> = "tenant:demo".into();
        assert_eq!(
            c.opted_out(&demo, 14155550101, 1_764_950_010)
                .map(|(_, c)| c),
            Some("fall".into())
        );
    }
}

#[test]
fn a_flood_of_closing_brackets_is_planned_in_linear_time() {
    // Quadratic before: every trailing ')' recounted the whole URL.
    let text = format!("http://a.example/{}", ")".repeat(1 << 20));
    let p = plan(&text, "https://a.link").unwrap();
    assert_eq!(p.links[0].url, "http://a.example/");
}

#[test]
fn a_link_answers_only_on_its_tenants_host() {
    let store_dir = tempfile::tempdir().unwrap();
    let (journal, _) =
        crate::journal::Journal::open(&store_dir.path().join("j"), &Default::default()).unwrap();
    let hub = Arc::new(crate::events::EventHub::new(
        journal,
        ["a".into(), "b".into()],
        Arc::new(crate::ingest::event_wire::WireEvents),
    ));
    let r = serve::Redirects {
        store: LinkStore::open(store_dir.path(), SECRET, Duration::ZERO).unwrap(),
        hub,
        hosts: std::collections::HashMap::from([("a".to_owned(), "a.link".to_owned())]).into(),
        default_host: Some("sms.example.com".into()),
    };
    let host = |h: &str| {
        let mut m = HeaderMap::new();
        m.insert(hyper::header::HOST, HeaderValue::from_str(h).unwrap());
        m
    };
    assert!(r.serves("a", &host("A.link")));
    assert!(
        !r.serves("a", &host("sms.example.com")),
        "its own host only"
    );
    assert!(r.serves("b", &host("sms.example.com")));
    assert!(
        !r.serves("b", &host("a.link")),
        "not on another tenant's domain"
    );
    assert!(!r.serves("b", &HeaderMap::new()), "no Host, no link");
}

#[tokio::test]
async fn a_torn_index_entry_is_cut_and_no_number_is_handed_out_twice() {
    let dir = tempfile::tempdir().unwrap();
    let codes = {
        let store = LinkStore::open(dir.path(), SECRET, Duration::ZERO).unwrap();
        tracked(&store, 1, "https://a.example https://b.example")
            .await
            .1
    };
    // A crash in the middle of the next entry.
    use std::io::Write;
    let mut index = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("0000000000.index"))
        .unwrap();
    index.write_all(&[1, 2, 3]).unwrap();
    drop(index);
    let store = LinkStore::open(dir.path(), SECRET, Duration::ZERO).unwrap();
    assert_eq!(store.issued(), 2);
    let now = crate::model::now_ms();
    for code in &codes {
        assert!(
            matches!(store.lookup(code, now), Lookup::Found(_)),
            "{code}"
        );
    }
    let (_, next) = tracked(&store, 2, "https://c.example").await;
    assert_eq!(store.codec().decode(&next[0]), Some(2));
    let Lookup::Found(link) = store.lookup(&next[0], now) else {
        panic!("the new link");
    };
    assert_eq!(link.url, "https://c.example");
}
