//! MMS end to end over MM7: uploads, MMS to US numbers through the MMSC
//! simulator with delivery reports, SMS fallback with a working landing page
//! link, retries on temporary refusals, fallback on permanent ones, content
//! fitting, and bad input.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use sluice::config::{Config, MmscConfig};
use sluice::ingest::client::{Client, ClientError};
use sluice::ingest::pb;
use sluice::sim::mmsc::{self, Mmsc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A noisy RGB image encoded as PNG (noise does not compress: big on purpose).
fn png(w: u32, h: u32) -> Bytes {
    let mut img = image::RgbImage::new(w, h);
    let mut x: u32 = 12345;
    for p in img.pixels_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *p = image::Rgb([x as u8, (x >> 8) as u8, (x >> 16) as u8]);
    }
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    Bytes::from(out.into_inner())
}

struct Setup {
    smsc: sluice::sim::smsc::Smsc,
    mmsc: Mmsc,
    gw: sluice::gateway::Running,
    /// What the gateway was started with.
    cfg: Config,
    client: Client,
    got: Collected,
    _dir: tempfile::TempDir,
    _callback: HeldPort,
}

async fn setup(
    mmsc_cfg: impl FnOnce(&mut mmsc::MmscConfig),
    gw_cfg: impl FnOnce(&mut Config),
) -> Setup {
    let smsc = smsc(|_| {}).await;
    // The simulator is told where to post reports before the gateway (which
    // needs the simulator's URL) exists: a port the test holds, on which
    // the gateway's callback listener then listens.
    let callback = HeldPort::new();
    let mut mc = mmsc::MmscConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        callback_url: Some(format!("http://{}/mm7", callback.addr())),
        report_delay: Duration::from_millis(20),
        report_retry_delay: Duration::from_millis(100),
        ..mmsc::MmscConfig::default()
    };
    mmsc_cfg(&mut mc);
    let mmsc = mmsc::start(mc).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &smsc);
    cfg.mmsc = vec![MmscConfig {
        vasp_id: Some("sluice".into()),
        connections: 8,
        timeout: Duration::from_secs(5),
        callback_listen: Some(callback.addr()),
        ..MmscConfig::new("mmsc", mmsc.url())
    }];
    gw_cfg(&mut cfg);
    cfg.mms.public_url = "http://PUBLIC".into();
    let gw = sluice::gateway::start(cfg.clone()).await.unwrap();
    assert_eq!(gw.mm7_callbacks(), vec![callback.addr()]);
    let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;
    Setup {
        smsc,
        mmsc,
        gw,
        cfg,
        client,
        got,
        _dir: dir,
        _callback: callback,
    }
}

/// Waits until every message of `ids` (all the test sent) is delivered,
/// each as MMS, the MMSC took each once, and none fell back to SMS.
async fn all_delivered_as_mms(s: &Setup, ids: &[u64]) {
    eventually("all delivered", Duration::from_secs(20), || {
        s.got.terminal_count() == ids.len()
    })
    .await;
    for id in ids {
        assert_eq!(
            channel_of(&s.got, *id),
            Some(pb::DeliveryState::StateDelivered)
        );
        assert_eq!(s.got.channels.lock()[id].0, pb::Channel::MmsUsed);
    }
    assert_eq!(s.mmsc.stats().accepted, ids.len() as u64);
    assert!(s.smsc.texts().is_empty(), "nothing fell back to SMS");
}

/// Uploads a small PNG and submits `n` MMS of it, `<prefix>-<i>` to
/// +1415555<first + i>; returns their ids.
async fn submit_mms(s: &Setup, prefix: &str, n: usize, first: usize) -> Vec<u64> {
    let up = s.client.put_media("image/png", png(16, 16)).await.unwrap();
    let batch = (0..n)
        .map(|i| {
            mms(
                &format!("{prefix}-{i}"),
                &format!("+1415555{:04}", first + i),
                "Hi",
                &up.media_id,
            )
        })
        .collect();
    accepted_ids(&s.client.submit(batch).await.unwrap())
}

fn mms(client_ref: &str, to: &str, text: &str, media: &str) -> pb::SubmitMessage {
    let mut m = msg(client_ref, to, text);
    m.media = vec![media.to_owned()];
    m
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head[9..12].parse().unwrap();
    (status, head, out[split + 4..].to_vec())
}

fn channel_of(got: &Collected, id: u64) -> Option<pb::DeliveryState> {
    got.state_of(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mms_round_trip_and_sms_fallback_with_a_working_link() {
    let s = setup(|_| {}, |_| {}).await;
    let image = png(64, 48);
    let up = s
        .client
        .put_media("image/png", image.clone())
        .await
        .unwrap();
    assert_eq!(up.media_id.len(), 64);
    assert_eq!(up.content_type, "image/png");

    // To a US number: MMS, delivered on the MMSC's report.
    let us = accepted_ids(
        &s.client
            .submit(vec![mms("m-us", "+14155550100", "Look!", &up.media_id)])
            .await
            .unwrap(),
    );
    // To a UK number: SMS with a link to a landing page.
    let uk = accepted_ids(
        &s.client
            .submit(vec![mms("m-uk", "+447700900123", "Look!", &up.media_id)])
            .await
            .unwrap(),
    );
    eventually("both final", Duration::from_secs(20), || {
        s.got.terminal_count() == 2
    })
    .await;
    assert_eq!(
        channel_of(&s.got, us[0]),
        Some(pb::DeliveryState::StateDelivered)
    );
    assert_eq!(
        channel_of(&s.got, uk[0]),
        Some(pb::DeliveryState::StateDelivered)
    );
    assert_eq!(s.mmsc.stats().accepted, 1);
    let channels = s.got.channels.lock().clone();
    assert_eq!(channels[&us[0]].0, pb::Channel::MmsUsed);
    assert_eq!(channels[&uk[0]].0, pb::Channel::SmsUsed);
    assert!(
        channels[&uk[0]].1.contains("fallback to SMS with a link"),
        "{:?}",
        channels[&uk[0]]
    );
    assert!(
        channels[&uk[0]].1.contains("not reachable by MMS"),
        "{:?}",
        channels[&uk[0]]
    );
    let media = s.mmsc.media();
    assert_eq!(media[0].1, image, "the MMSC got the uploaded bytes");

    // The SMS carries the text and a link; the link serves the page and the bytes.
    let sms: Vec<String> = s
        .smsc
        .texts()
        .into_iter()
        .filter(|t| t.1 == "447700900123")
        .map(|t| t.2)
        .collect();
    assert_eq!(sms.len(), 1);
    assert!(sms[0].starts_with("Look!\nhttp://PUBLIC/p/"), "{}", sms[0]);
    let path = sms[0]
        .split("http://PUBLIC")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    // Landing pages are on the public door, never on the internal one.
    assert_eq!(http_get(s.gw.http_addr.unwrap(), &path).await.0, 404);
    let http = s.gw.public_addr.unwrap();
    assert_eq!(http_get(http, "/metrics").await.0, 404);
    let (st, head, page) = http_get(http, &path).await;
    assert_eq!(st, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{head}"
    );
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("<img"), "{page}");
    assert!(page.contains("<p class=\"text\">Look!</p>"), "{page}");
    let (st, head, raw) = http_get(http, &format!("{path}/1")).await;
    assert_eq!(st, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: image/png"),
        "{head}"
    );
    assert_eq!(Bytes::from(raw), image, "the link serves the same bytes");
    // A tampered link is a 404, and so is an item the page does not have.
    let mut bad = path.clone();
    bad.pop();
    bad.push(if path.ends_with('a') { 'b' } else { 'a' });
    assert_eq!(http_get(http, &bad).await.0, 404);
    assert_eq!(http_get(http, &format!("{path}/2")).await.0, 404);
    assert_eq!(http_get(http, &format!("{path}/01")).await.0, 404);
    s.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_media_fallback_is_one_sms_segment_with_one_link_to_both() {
    let s = setup(|_| {}, |_| {}).await;
    let (first, second) = (png(64, 48), png(32, 80));
    let a = s
        .client
        .put_media("image/png", first.clone())
        .await
        .unwrap();
    let b = s
        .client
        .put_media("image/png", second.clone())
        .await
        .unwrap();
    let mut m = mms(
        "two",
        "+447700900125",
        "Two new arrivals, just for you",
        &a.media_id,
    );
    m.media.push(b.media_id.clone());
    let id = accepted_ids(&s.client.submit(vec![m]).await.unwrap())[0];
    eventually("final", Duration::from_secs(20), || {
        s.got.terminal_count() == 1
    })
    .await;
    assert_eq!(
        channel_of(&s.got, id),
        Some(pb::DeliveryState::StateDelivered)
    );
    // One SMS of one segment (a link per media item made two).
    let sms: Vec<_> = s
        .smsc
        .texts()
        .into_iter()
        .filter(|t| t.1 == "447700900125")
        .collect();
    assert_eq!(sms.len(), 1);
    assert_eq!(s.smsc.stats().accepted_parts, 1, "{}", sms[0].2);
    let text = &sms[0].2;
    assert!(text.chars().count() <= 160, "{text}");
    assert_eq!(text.matches("http://PUBLIC/p/").count(), 1, "{text}");
    let path = text
        .split("http://PUBLIC")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    // The page shows both images, in order, each from a working link.
    let http = s.gw.public_addr.unwrap();
    let (st, head, page) = http_get(http, &path).await;
    assert_eq!(st, 200, "{head}");
    let page = String::from_utf8(page).unwrap();
    assert_eq!(page.matches("<img").count(), 2, "{page}");
    let srcs: Vec<&str> = page
        .split("src=\"")
        .skip(1)
        .map(|r| r.split('"').next().unwrap())
        .collect();
    let code = &path["/p/".len()..];
    assert_eq!(srcs, [format!("{code}/1"), format!("{code}/2")]);
    let dir = &path[..path.rfind('/').unwrap() + 1];
    for (src, bytes) in srcs.iter().zip([&first, &second]) {
        let (st, head, raw) = http_get(http, &format!("{dir}{src}")).await;
        assert_eq!(st, 200, "{head}");
        assert_eq!(&Bytes::from(raw), bytes);
    }
    // A tampered page link is a 404.
    let mut bad = path.clone();
    bad.pop();
    bad.push(if path.ends_with('a') { 'b' } else { 'a' });
    assert_eq!(http_get(http, &bad).await.0, 404);
    s.gw.shutdown().await;
}

/// A PNG of one colour.
fn solid_png(w: u32, h: u32, rgb: [u8; 3]) -> Bytes {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    Bytes::from(out.into_inner())
}

const SALE_SUBJECT: &str = "Weekend sale <48h>";
const SALE_TEXT: &str = "Hi Ann, 20% off tents & stoves this weekend only.\nShop now: https://acme.example/tents?utm=sms&c=1";

/// Sends the sale MMS (two media) to `to`, which MMS does not reach, and
/// answers the path of its SMS's landing-page link.
async fn sale_fallback(s: &Setup, to: &str, media: [&str; 2], text: &str) -> String {
    let mut m = mms(to, to, text, media[0]);
    m.media.push(media[1].to_owned());
    m.subject = SALE_SUBJECT.into();
    let before = s.got.terminal_count();
    accepted_ids(&s.client.submit(vec![m]).await.unwrap());
    eventually("final", Duration::from_secs(20), || {
        s.got.terminal_count() == before + 1
    })
    .await;
    let digits = to.trim_start_matches('+');
    let sms: Vec<String> = s
        .smsc
        .texts()
        .into_iter()
        .filter(|t| t.1 == digits)
        .map(|t| t.2)
        .collect();
    assert_eq!(sms.len(), 1, "{sms:?}");
    let path = sms[0]
        .split("http://PUBLIC")
        .nth(1)
        .unwrap_or_else(|| panic!("no landing link in {:?}", sms[0]))
        .trim()
        .to_owned();
    assert!(path.starts_with("/p/"), "{path}");
    path
}

fn display_name(c: &mut Config) {
    c.tenants[0].display_name = Some("Acme \"Outdoor\"".into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_landing_page_shows_the_whole_message_and_is_named_by_its_content() {
    let s = setup(|_| {}, display_name).await;
    let a = s.client.put_media("image/png", png(64, 48)).await.unwrap();
    let b = s.client.put_media("image/png", png(48, 64)).await.unwrap();
    let media = [a.media_id.as_str(), b.media_id.as_str()];
    let first = sale_fallback(&s, "+447700900131", media, SALE_TEXT).await;
    let http = s.gw.public_addr.unwrap();
    let (st, head, page) = http_get(http, &first).await;
    assert_eq!(st, 200, "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("referrer-policy: no-referrer"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    let page = String::from_utf8(page).unwrap();
    assert!(page.len() <= 30 * 1024, "{} bytes", page.len());
    // Everything from the tenant and the message is escaped; the link is one.
    for want in [
        "<p class=\"from\">Acme &quot;Outdoor&quot;</p>",
        "<h1>Weekend sale &lt;48h&gt;</h1>",
        "<title>Weekend sale &lt;48h&gt;</title>",
        "Hi Ann, 20% off tents &amp; stoves this weekend only.\nShop now: \
         <a href=\"https://acme.example/tents?utm=sms&amp;c=1\" rel=\"noopener noreferrer nofollow\">",
        "alt=\"Picture 1 of 2 from Acme &quot;Outdoor&quot;\"",
        "alt=\"Picture 2 of 2 from Acme &quot;Outdoor&quot;\"",
        "<meta name=\"robots\" content=\"noindex, nofollow\">",
    ] {
        assert!(page.contains(want), "{want:?} not in {page}");
    }
    assert!(!page.contains("<script"), "{page}");

    // The same message to another recipient: the same page, not written again.
    let landing_dir = s._dir.path().join("media").join("landing");
    let records = || std::fs::read_dir(&landing_dir).unwrap().count();
    assert_eq!(records(), 1);
    let again = sale_fallback(&s, "+447700900132", media, SALE_TEXT).await;
    assert_eq!(again, first);
    assert_eq!(records(), 1);
    // A personalised text is a page of its own.
    let other = sale_fallback(&s, "+447700900133", media, "Hi Bo, 20% off.").await;
    assert_ne!(other, first);
    assert_eq!(records(), 2);
    let (st, _, page) = http_get(http, &other).await;
    assert_eq!(st, 200);
    assert!(
        String::from_utf8(page)
            .unwrap()
            .contains(">Hi Bo, 20% off.</p>")
    );
    s.gw.shutdown().await;
}

/// `tests/interop` with its npm packages (`npm ci` when missing), when
/// Chromium and Node.js are there; `None` (the test says it is skipped)
/// otherwise, unless `SLUICE_REQUIRE_EXTERNAL` is set.
fn browser_driver() -> Option<std::path::PathBuf> {
    use sluice::external::{CHROMIUM, NODE, NPM, require};
    if !require(&[&CHROMIUM, &NODE, &NPM]) {
        return None;
    }
    Some(node_packages("chrome-remote-interface"))
}

#[derive(serde::Deserialize, Debug)]
struct BrowserReport {
    viewport: Viewport,
    #[serde(rename = "scrollWidth")]
    scroll_width: f64,
    title: String,
    csp_errors: Vec<String>,
    elements: Vec<Seen>,
}

#[derive(serde::Deserialize, Debug)]
struct Viewport {
    width: f64,
    height: f64,
}

#[derive(serde::Deserialize, Debug)]
struct Seen {
    selector: String,
    text: String,
    href: Option<String>,
    #[serde(rename = "box")]
    rect: Rect,
    visible: bool,
    loaded: Option<bool>,
    font_px: f64,
}

#[derive(serde::Deserialize, Debug, Clone, Copy)]
struct Rect {
    x: f64,
    y: f64,
    width: f64,
    height: f64,
}

/// The landing page in a real browser: Debian's headless Chromium at an
/// iPhone-sized viewport (390×844) shows the brand, the subject, the text
/// with its link, and both pictures, all inside the viewport, nothing
/// wider than the screen, under the page's own CSP; the screenshot's pixels
/// show each picture's colour where the browser laid it out. The
/// screenshot is kept at `target/test-artifacts/landing-page.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_landing_page_renders_in_headless_chromium_at_a_phone_viewport() {
    let Some(driver) = browser_driver() else {
        return;
    };
    let s = setup(|_| {}, display_name).await;
    let (red, blue) = ([220, 30, 40], [30, 70, 220]);
    let a = s
        .client
        .put_media("image/png", solid_png(300, 200, red))
        .await
        .unwrap();
    let b = s
        .client
        .put_media("image/png", solid_png(240, 160, blue))
        .await
        .unwrap();
    let path = sale_fallback(
        &s,
        "+447700900141",
        [a.media_id.as_str(), b.media_id.as_str()],
        SALE_TEXT,
    )
    .await;
    let url = format!("http://{}{path}", s.gw.public_addr.unwrap());
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("landing-page.png");
    let _ = std::fs::remove_file(&shot);
    let chromium = which("chromium");
    let out = tokio::process::Command::new("node")
        .arg("landing.js")
        .arg(&chromium)
        .arg(&url)
        .arg(&shot)
        .current_dir(&driver)
        .output()
        .await
        .expect("node runs");
    assert!(
        out.status.success(),
        "landing.js failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: BrowserReport = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    eprintln!("browser report: {report:?}");
    assert_eq!(
        (report.viewport.width, report.viewport.height),
        (390.0, 844.0)
    );
    assert!(
        report.scroll_width <= 390.0,
        "wider than the phone: {report:?}"
    );
    assert_eq!(report.title, SALE_SUBJECT);
    assert!(report.csp_errors.is_empty(), "{:?}", report.csp_errors);
    let find = |sel: &str| {
        report
            .elements
            .iter()
            .find(|e| e.selector == sel)
            .unwrap_or_else(|| panic!("no {sel} on the page: {report:?}"))
    };
    let inside = |e: &Seen| {
        e.visible
            && e.rect.x >= 0.0
            && e.rect.y >= 0.0
            && e.rect.x + e.rect.width <= 390.0
            && e.rect.y + e.rect.height <= 844.0
    };
    for (sel, text) in [
        (".from#0", "Acme \"Outdoor\""),
        ("h1#0", SALE_SUBJECT),
        (".text a#0", "https://acme.example/tents?utm=sms&c=1"),
    ] {
        let e = find(sel);
        assert!(inside(e), "{sel} not visible in the viewport: {e:?}");
        assert_eq!(e.text, text, "{sel}");
    }
    let body = find(".text#0");
    assert!(inside(body), "{body:?}");
    assert!(
        body.text.starts_with("Hi Ann, 20% off tents & stoves"),
        "{body:?}"
    );
    assert!(body.font_px >= 16.0, "readable on a phone: {body:?}");
    assert_eq!(
        find(".text a#0").href.as_deref(),
        Some("https://acme.example/tents?utm=sms&c=1")
    );
    // The screenshot: each picture painted in its colour where it was laid out.
    let png = image::open(&shot).expect("a screenshot").to_rgb8();
    assert_eq!(png.dimensions(), (390, 844));
    for (sel, colour) in [("img#0", red), ("img#1", blue)] {
        let e = find(sel);
        assert!(inside(e), "{sel} not visible in the viewport: {e:?}");
        assert_eq!(e.loaded, Some(true), "{sel} did not load: {e:?}");
        let (cx, cy) = (
            e.rect.x + e.rect.width / 2.0,
            e.rect.y + e.rect.height / 2.0,
        );
        let p = png.get_pixel(cx as u32, cy as u32).0;
        let near = p
            .iter()
            .zip(colour)
            .all(|(got, want)| got.abs_diff(want) <= 8);
        assert!(near, "{sel} at ({cx}, {cy}) is {p:?}, not {colour:?}");
    }
    // The text's box holds ink, not only background.
    let ink = (body.rect.x as u32..(body.rect.x + body.rect.width) as u32)
        .flat_map(|x| {
            (body.rect.y as u32..(body.rect.y + body.rect.height) as u32).map(move |y| (x, y))
        })
        .filter(|&(x, y)| {
            let [r, g, b] = png.get_pixel(x, y).0;
            u32::from(r) + u32::from(g) + u32::from(b) < 3 * 128
        })
        .count();
    assert!(ink > 500, "the text shows no ink ({ink} dark pixels)");
    eprintln!("screenshot kept at {}", shot.display());
    s.gw.shutdown().await;
}

/// The full path of `program` on `PATH`.
fn which(program: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| program.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_refusal_falls_back_temporary_is_retried_and_policy_none_fails() {
    // Every submit refused for good (2002: invalid recipient-like permanent code).
    let s = setup(|c| c.fail_status = Some(3001), |_| {}).await;
    let up = s.client.put_media("image/png", png(32, 32)).await.unwrap();
    let ids = accepted_ids(
        &s.client
            .submit(vec![mms("perm", "+14155550101", "Hi", &up.media_id)])
            .await
            .unwrap(),
    );
    let mut none = mms("none", "+447700900124", "Hi", &up.media_id);
    none.fallback = pb::FallbackPolicy::FallbackNone as i32;
    let none_id = accepted_ids(&s.client.submit(vec![none]).await.unwrap())[0];
    eventually("final", Duration::from_secs(20), || {
        s.got.terminal_count() == 2
    })
    .await;
    assert_eq!(
        channel_of(&s.got, ids[0]),
        Some(pb::DeliveryState::StateDelivered)
    );
    assert!(
        s.smsc.texts().iter().any(|t| t.1 == "14155550101"),
        "fell back to SMS"
    );
    let ch = s.got.channels.lock()[&ids[0]].clone();
    assert_eq!(ch.0, pb::Channel::SmsUsed);
    assert!(ch.1.contains("3001"), "{ch:?}");
    let states = s.got.states.lock().clone();
    assert_eq!(states[&none_id][0].0, pb::DeliveryState::StateFailed);
    assert!(
        states[&none_id][0].1.contains("fallback policy is none"),
        "{:?}",
        states[&none_id]
    );
    s.gw.shutdown().await;

    // Half the submits refused for now (4006): retried until accepted as MMS.
    // Short retry waits: with the default 250 ms doubling to 30 s, a message
    // refused seven times in a row (one run in a dozen) waits half a minute.
    let s = setup(
        |c| {
            c.fail_status = Some(4006);
            c.fail_fraction = 0.5;
        },
        |c| {
            c.mmsc[0].retry_min = Duration::from_millis(10);
            c.mmsc[0].retry_max = Duration::from_millis(100);
        },
    )
    .await;
    let up = s.client.put_media("image/png", png(32, 32)).await.unwrap();
    let batch = (0..10)
        .map(|i| {
            mms(
                &format!("tmp-{i}"),
                &format!("+1415555{i:04}"),
                "Hi",
                &up.media_id,
            )
        })
        .collect();
    accepted_ids(&s.client.submit(batch).await.unwrap());
    // Adaptive slow-down paces the MMSC near 1/s after the first refusals.
    eventually("all final", Duration::from_secs(60), || {
        s.got.terminal_count() == 10
    })
    .await;
    assert!(
        s.got
            .states
            .lock()
            .values()
            .all(|v| v[0].0 == pb::DeliveryState::StateDelivered)
    );
    let st = s.mmsc.stats();
    assert_eq!(st.accepted, 10, "{st:?}");
    assert!(st.refused > 0, "{st:?}");
    assert!(s.smsc.texts().is_empty(), "nothing fell back to SMS");
    s.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_images_are_shrunk_and_what_cannot_fit_falls_back() {
    let s = setup(|_| {}, |c| c.mmsc[0].max_message_bytes = 40 * 1024).await;
    let big = png(300, 300);
    assert!(big.len() > 100 * 1024, "{}", big.len());
    let up = s.client.put_media("image/png", big).await.unwrap();
    let id = accepted_ids(
        &s.client
            .submit(vec![mms("big", "+14155550102", "Big", &up.media_id)])
            .await
            .unwrap(),
    )[0];
    eventually("final", Duration::from_secs(30), || {
        s.got.terminal_count() == 1
    })
    .await;
    assert_eq!(
        channel_of(&s.got, id),
        Some(pb::DeliveryState::StateDelivered)
    );
    assert_eq!(s.got.channels.lock()[&id].0, pb::Channel::MmsUsed);
    let (ct, bytes) = s.mmsc.media().pop().expect("the MMSC got the media");
    assert!(bytes.len() < 40 * 1024, "{}", bytes.len());
    let img = image::load_from_memory(&bytes).expect("still an image");
    assert!(
        img.width() < 300 && img.width() * 300 == img.height() * 300,
        "{}x{} {ct}",
        img.width(),
        img.height()
    );
    assert!(s.smsc.texts().is_empty());
    s.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_media_and_callbacks_get_clear_errors() {
    let s = setup(
        |_| {},
        |c| {
            let mut other = c.tenants[0].clone();
            other.name = "other".into();
            other.token = sluice::config::Secret::new("other-token-0001");
            c.tenants.push(other);
        },
    )
    .await;
    // Bytes that are not what they claim.
    let err = s
        .client
        .put_media("image/png", Bytes::from_static(b"GIF89a not really"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Server {
                code: pb::ErrorCode::MediaRejected,
                ..
            }
        ),
        "{err:?}"
    );
    // Unknown and foreign media ids.
    let mine = s.client.put_media("image/png", png(8, 8)).await.unwrap();
    let ack = s
        .client
        .submit(vec![mms("unk", "+14155550103", "x", &"a".repeat(64))])
        .await
        .unwrap();
    assert_eq!(ack.results[0].reason, pb::RejectReason::UnknownMedia as i32);
    let (other, _) = Client::connect(&s.gw.ingest_addr.to_string(), "other", "other-token-0001")
        .await
        .unwrap();
    let ack = other
        .submit(vec![mms("foreign", "+14155550104", "x", &mine.media_id)])
        .await
        .unwrap();
    assert_eq!(
        ack.results[0].reason,
        pb::RejectReason::UnknownMedia as i32,
        "{:?}",
        ack.results[0]
    );
    // A delivery report for an unknown MessageID, and malformed XML, on the callback.
    let cb = s.gw.mm7_callbacks()[0];
    let report = sluice::mm7::soap::DeliveryReportReq {
        transaction_id: "t1".into(),
        message_id: "no-such-id".into(),
        mm_status: sluice::mm7::soap::MmStatus::Retrieved,
        ..Default::default()
    }
    .encode();
    let mut c = tokio::net::TcpStream::connect(cb).await.unwrap();
    let head = format!(
        "POST /mm7 HTTP/1.1\r\nhost: x\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        report.content_type,
        report.body.len()
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(&report.body).await.unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).await.unwrap();
    // Answered for good (2005), never a Fault the MMSC would retry for hours.
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("2005"), "{out}");
    let mut c = tokio::net::TcpStream::connect(cb).await.unwrap();
    c.write_all(b"POST /mm7 HTTP/1.1\r\nhost: x\r\ncontent-type: text/xml\r\ncontent-length: 9\r\nconnection: close\r\n\r\n<broken>!").await.unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    s.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_sent_by_mms_opts_out() {
    let s = setup(|_| {}, |_| {}).await;
    s.mmsc
        .inject_mo("+14155550150", "12345", "STOP")
        .await
        .unwrap();
    let ack = s
        .client
        .submit(vec![msg("after-mms-stop", "+14155550150", "x")])
        .await
        .unwrap();
    assert_eq!(ack.results[0].reason, pb::RejectReason::Suppressed as i32);
    s.gw.shutdown().await;
}

fn error_of(e: ClientError) -> (pb::ErrorCode, String) {
    match e {
        ClientError::Server { code, message } => (code, message),
        other => panic!("expected the server's Error, got {other:?}"),
    }
}

/// Reads one whole frame.
async fn read_frame(s: &mut tokio::net::TcpStream) -> pb::frame::Body {
    use prost::Message;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.unwrap();
    pb::Frame::decode(&body[..]).unwrap().body.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_quota_and_upload_limits_refuse_clearly_and_affect_nothing_else() {
    use pb::frame::Body;
    use sluice::ingest::codec::frame_bytes;
    let a = png(16, 16);
    let b = png(40, 40);
    let quota = a.len() as u64 + 100;
    let s = setup(
        |_| {},
        |c| {
            c.mms.media_quota_bytes = quota;
            c.mms.max_uploads_per_tenant = 2;
            let mut other = c.tenants[0].clone();
            other.name = "other".into();
            other.token = sluice::config::Secret::new("other-token-0001");
            // Its own quota: none.
            other.media_quota_bytes = Some(0);
            c.tenants.push(other);
        },
    )
    .await;
    let stored = s.client.put_media("image/png", a.clone()).await.unwrap();
    // Over the quota: refused, saying how full it is.
    let (code, message) = error_of(
        s.client
            .put_media("image/png", b.clone())
            .await
            .unwrap_err(),
    );
    assert_eq!(code, pb::ErrorCode::MediaRejected);
    assert_eq!(
        message,
        format!(
            "media quota exceeded: {} of {quota} bytes used, this media needs {}",
            a.len(),
            b.len()
        )
    );
    // Another tenant keeps uploading (the same bytes too).
    let (other, _) = Client::connect(&s.gw.ingest_addr.to_string(), "other", "other-token-0001")
        .await
        .unwrap();
    other.put_media("image/png", b.clone()).await.unwrap();
    // What was stored is still sent.
    let ack = s
        .client
        .submit(vec![mms(
            "quota-mms",
            "+14155550105",
            "Hi",
            &stored.media_id,
        )])
        .await
        .unwrap();
    let id = accepted_ids(&ack)[0];
    eventually("delivered", Duration::from_secs(10), || {
        s.got.state_of(id) == Some(pb::DeliveryState::StateDelivered)
    })
    .await;
    assert!(s.mmsc.media().iter().any(|(_, bytes)| *bytes == a));

    // Two chunked uploads begun and left open hold the tenant's two places
    // among uploads in progress: a third is refused, not queued.
    let mut raw = tokio::net::TcpStream::connect(s.gw.ingest_addr)
        .await
        .unwrap();
    raw.write_all(&frame_bytes(
        1,
        Body::Hello(pb::Hello {
            protocol_version: 1,
            tenant: TENANT.into(),
            token: TOKEN.into(),
            client_name: "raw".into(),
        }),
    ))
    .await
    .unwrap();
    assert!(matches!(read_frame(&mut raw).await, Body::HelloOk(_)));
    for (rid, upload) in [(2u64, "u1"), (3, "u2"), (4, "u3")] {
        raw.write_all(&frame_bytes(
            rid,
            Body::PutMedia(pb::PutMedia {
                upload_id: upload.into(),
                content_type: "text/plain".into(),
                total_size: 50,
                offset: 0,
                data: Bytes::from_static(b"0123456789"),
                last: false,
            }),
        ))
        .await
        .unwrap();
        let answer = read_frame(&mut raw).await;
        if upload == "u3" {
            let Body::Error(e) = answer else {
                panic!("third upload not refused: {answer:?}")
            };
            assert_eq!(e.code, pb::ErrorCode::MediaRejected as i32);
            assert_eq!(
                e.message,
                "too many uploads in progress for this tenant (limit 2); retry when one is answered"
            );
        } else {
            assert!(matches!(answer, Body::MediaOk(_)), "{answer:?}");
        }
    }
    // Other tenants are not held up by them.
    other.put_media("image/png", png(8, 8)).await.unwrap();
    // Closing the connection gives its places back.
    drop(raw);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Err(e) = s.client.put_media("text/plain", Bytes::from("hello")).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "places never given back: {e}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.gw.shutdown().await;
}

/// On one thread, so the gateway's tasks log into this test's subscriber.
#[tokio::test]
async fn a_forged_3_mb_message_id_logs_capped_lines_and_forges_none() {
    let (logs, _guard) = capture_logs("sluice::inbound=warn,sluice::mm7=warn");
    let s = setup(|_| {}, |_| {}).await;
    let message_id = format!(
        "x\n2030-01-01T00:00:00.000000Z  WARN sluice::gateway: forged{}",
        "y".repeat(3 << 20)
    );
    let report = sluice::mm7::soap::DeliveryReportReq {
        transaction_id: "t\nforged-too".into(),
        message_id,
        mm_status: sluice::mm7::soap::MmStatus::Retrieved,
        ..Default::default()
    }
    .encode();
    let mut c = tokio::net::TcpStream::connect(s.gw.mm7_callbacks()[0])
        .await
        .unwrap();
    let head = format!(
        "POST /mm7 HTTP/1.1\r\nhost: x\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        report.content_type,
        report.body.len()
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(&report.body).await.unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.unwrap();
    // A valid answer (2005 Message ID Not found), not a Fault.
    assert!(out.starts_with(b"HTTP/1.1 200"));
    assert!(out.len() < 4096, "the answer echoes {} bytes", out.len());
    let lines = logs.lines();
    // One line from the gateway: nothing forged.
    assert_eq!(
        lines.len(),
        1,
        "{lines:#?} after {:?}",
        String::from_utf8_lossy(&out[..out.len().min(300)])
    );
    for l in &lines {
        assert!(
            l.contains("delivery report for an unknown MessageID"),
            "a line that is no event's: {l}"
        );
        assert!(l.len() < 2048, "a line of {} bytes", l.len());
    }
    s.gw.shutdown().await;
}

/// Posts a DeliveryReportReq to an MM7 callback listener: the HTTP status
/// and the decoded answer.
async fn post_report(
    cb: std::net::SocketAddr,
    report: &sluice::mm7::soap::DeliveryReportReq,
) -> (u16, sluice::mm7::soap::Message) {
    let enc = report.encode();
    let mut c = tokio::net::TcpStream::connect(cb).await.unwrap();
    let head = format!(
        "POST /mm7 HTTP/1.1\r\nhost: x\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        enc.content_type,
        enc.body.len()
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(&enc.body).await.unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head[9..12].parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap();
    let body = Bytes::copy_from_slice(&out[split + 4..]);
    let answer = sluice::mm7::soap::decode(Some(&content_type), &body).unwrap();
    (status, answer)
}

/// The value of a gauge for one carrier in Prometheus text (0 when absent).
fn gauge(text: &str, name: &str, carrier: &str) -> f64 {
    let prefix = format!("{name}{{carrier=\"{carrier}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str())?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_submit_ends_unknown_and_is_never_sent_twice() {
    // The MMSC takes the submit but answers after the gateway gave up.
    let s = setup(
        |c| c.answer_delay = Duration::from_secs(3),
        |c| c.mmsc[0].timeout = Duration::from_millis(500),
    )
    .await;
    let up = s.client.put_media("image/png", png(16, 16)).await.unwrap();
    let id = accepted_ids(
        &s.client
            .submit(vec![mms("slow", "+14155550110", "Once", &up.media_id)])
            .await
            .unwrap(),
    )[0];
    eventually("unknown", Duration::from_secs(20), || {
        s.got.terminal_count() == 1
    })
    .await;
    assert_eq!(
        channel_of(&s.got, id),
        Some(pb::DeliveryState::StateUnknown)
    );
    assert_eq!(s.got.channels.lock()[&id].0, pb::Channel::MmsUsed);
    // The MMSC answers at once again: a second message goes through, and
    // the first was never sent again (it would have been ahead of it).
    s.mmsc.set_answer_delay(Duration::ZERO);
    let second = accepted_ids(
        &s.client
            .submit(vec![mms("fast", "+14155550111", "Twice?", &up.media_id)])
            .await
            .unwrap(),
    )[0];
    eventually("second final", Duration::from_secs(20), || {
        s.got.terminal_count() == 2
    })
    .await;
    assert_eq!(
        channel_of(&s.got, second),
        Some(pb::DeliveryState::StateDelivered)
    );
    let st = s.mmsc.stats();
    assert_eq!(st.submits, 2, "{st:?}");
    assert_eq!(st.duplicates, 0, "{st:?}");
    assert!(s.smsc.texts().is_empty(), "nothing fell back to SMS");
    s.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_and_unknown_delivery_reports_get_a_valid_answer() {
    use sluice::mm7::soap::{Address, DeliveryReportReq, Message, MmStatus, RspKind};
    // Its own name: metrics are global to the test process.
    let s = setup(|_| {}, |c| c.mmsc[0].name = "mmsc-reports".into()).await;
    let up = s.client.put_media("image/png", png(16, 16)).await.unwrap();
    let id = accepted_ids(
        &s.client
            .submit(vec![mms("dr", "+14155550112", "Hi", &up.media_id)])
            .await
            .unwrap(),
    )[0];
    eventually("delivered", Duration::from_secs(20), || {
        s.got.terminal_count() == 1
    })
    .await;
    assert_eq!(
        channel_of(&s.got, id),
        Some(pb::DeliveryState::StateDelivered)
    );
    // The simulator's first MessageID, reported again (MMSCs report at
    // least once).
    let report = |message_id: &str| DeliveryReportReq {
        transaction_id: format!("again-{message_id}"),
        message_id: message_id.into(),
        recipient: Address::Number("+14155550112".into()),
        mm_status: MmStatus::Retrieved,
        ..Default::default()
    };
    let cb = s.gw.mm7_callbacks()[0];
    let (status, answer) = post_report(cb, &report("4D4D0000")).await;
    assert_eq!(status, 200);
    let Message::Rsp(rsp) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(rsp.kind, RspKind::DeliveryReport);
    assert_eq!(rsp.status.code, 1000, "{rsp:?}");
    assert_eq!(rsp.transaction_id, "again-4D4D0000");
    // A MessageID that was never ours: a permanent answer, no Fault.
    let (status, answer) = post_report(cb, &report("NOT-OURS")).await;
    assert_eq!(status, 200);
    let Message::Rsp(rsp) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(rsp.kind, RspKind::DeliveryReport);
    assert_eq!(rsp.status.code, 2005, "{rsp:?}");
    let m = metrics_text(s.gw.http_addr.unwrap()).await;
    assert!(
        m.contains(
            r#"sluice_mm7_reports_unmatched_total{carrier="mmsc-reports",reason="duplicate"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains(
            r#"sluice_mm7_reports_unmatched_total{carrier="mmsc-reports",reason="unknown"} 1"#
        ),
        "{m}"
    );
    // The repeat changed nothing.
    assert_eq!(s.got.states.lock()[&id].len(), 1);
    s.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mmsc_refusing_our_credentials_is_paused_and_drains_as_mms_once_it_accepts() {
    let s = setup(
        |c| {
            c.username = Some("sluice".into());
            c.password = Some("rotated".into());
        },
        |c| {
            // Its own name: metrics are global to the test process.
            c.mmsc[0].name = "mmsc-auth".into();
            c.mmsc[0].username = Some("sluice".into());
            c.mmsc[0].password = Some(sluice::config::Secret::new("old-password"));
            c.mmsc[0].auth_retry_min = Duration::from_millis(200);
            c.mmsc[0].auth_retry_max = Duration::from_millis(400);
        },
    )
    .await;
    let http = s.gw.http_addr.unwrap();
    let ids = submit_mms(&s, "auth", 5, 120).await;
    // Paused with the alarm up, and the credentials tried again and again.
    let mut alarm = 0.0;
    for _ in 0..200 {
        alarm = gauge(
            &metrics_text(http).await,
            "sluice_mm7_auth_failed",
            "mmsc-auth",
        );
        if alarm == 1.0 && s.mmsc.stats().unauthorized >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(alarm, 1.0);
    let st = s.mmsc.stats();
    assert!(st.unauthorized >= 4, "tried again: {st:?}");
    assert_eq!(st.accepted, 0, "{st:?}");
    // No fallback SMS storm: every MMS waits.
    assert_eq!(s.got.terminal_count(), 0);
    assert!(s.smsc.texts().is_empty(), "nothing fell back to SMS");
    // The account is fixed on the MMSC's side: the queue drains as MMS.
    s.mmsc.set_account(Some(("sluice", "old-password")));
    all_delivered_as_mms(&s, &ids).await;
    assert_eq!(
        gauge(
            &metrics_text(http).await,
            "sluice_mm7_auth_failed",
            "mmsc-auth"
        ),
        0.0
    );
    s.gw.shutdown().await;
}

/// The MMSC's password rotated on its side first: the gateway's MMS wait,
/// paused on refused credentials with the next try an hour away. A reload
/// with the new password takes it at once, tries at once, and the queue
/// drains as MMS, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_a_reload_rotates_drains_the_mms_waiting_on_refused_credentials() {
    rotate_the_mmsc_password(Duration::ZERO).await;
}

/// The same, with the reload while the MMSC's refusal of the old password
/// is still on its way: that refusal does not pause the MMSC for an hour
/// under the new password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_of_the_password_a_reload_replaced_does_not_count() {
    rotate_the_mmsc_password(Duration::from_secs(1)).await;
}

/// A reload that raises an MMSC's `max_recipients` groups the next
/// campaign into one request, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mmscs_max_recipients_a_reload_raises_groups_the_next_campaign() {
    let mut s = setup(
        |c| c.max_recipients = Some(4),
        |c| {
            c.mmsc[0].name = "mmsc-lane".into();
            c.mmsc[0].max_recipients = 1;
            // One request at a time, so the campaign queues behind the first.
            c.mmsc[0].connections = 1;
        },
    )
    .await;
    let up = s.client.put_media("image/png", png(16, 16)).await.unwrap();
    s.mmsc.set_answer_delay(Duration::from_secs(1));
    s.client
        .submit(vec![mms("first", "+14155550160", "Before", &up.media_id)])
        .await
        .unwrap();
    eventually("first at the MMSC", Duration::from_secs(10), || {
        s.mmsc.stats().submits == 1
    })
    .await;
    let mut grouped = s.cfg.clone();
    grouped.mmsc[0].max_recipients = 4;
    let r = s.gw.reload(&grouped);
    assert_eq!(r.applied, ["mmsc.mmsc-lane"]);
    assert!(r.at_restart.is_empty() && r.refused.is_empty(), "{r:?}");
    let batch = (0..4)
        .map(|i| {
            mms(
                &format!("g{i}"),
                &format!("+1415555016{}", i + 1),
                "Sale!",
                &up.media_id,
            )
        })
        .collect();
    s.client.submit(batch).await.unwrap();
    s.mmsc.set_answer_delay(Duration::ZERO);
    eventually("all delivered", Duration::from_secs(20), || {
        s.got.terminal_count() == 5
    })
    .await;
    let st = s.mmsc.stats();
    assert_eq!((st.submits, st.most_recipients), (2, 4), "{st:?}");
    s.gw.shutdown().await;
}

/// A reload adds an MMSC (its queue, lane and callback listener) with MMS
/// routes that send a prefix to it, then removes the first MMSC while MMS
/// wait in its queue: its request in flight ends there (its delivery
/// report still comes to its listener), and what it queued goes to the
/// MMSC left, each MMS sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mmsc_a_reload_adds_takes_its_route_and_one_it_removes_hands_its_queue_on() {
    // One request at a time at the first MMSC, so MMS queue behind it.
    let mut s = setup(|_| {}, |c| c.mmsc[0].connections = 1).await;
    let callback = HeldPort::new();
    let second = mmsc::start(mmsc::MmscConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        callback_url: Some(format!("http://{}/mm7", callback.addr())),
        report_delay: Duration::from_millis(20),
        report_retry_delay: Duration::from_millis(100),
        ..mmsc::MmscConfig::default()
    })
    .await
    .unwrap();
    let route = |prefix: &str, mmsc: &str| sluice::config::RouteConfig {
        prefix: prefix.into(),
        carriers: vec![mmsc.into()],
    };

    // 1. Added, with the UK routed to it.
    let mut added = s.cfg.clone();
    added.mmsc.push(MmscConfig {
        vasp_id: Some("sluice".into()),
        timeout: Duration::from_secs(5),
        callback_listen: Some(callback.addr()),
        ..MmscConfig::new("mmsc-new", second.url())
    });
    added.mms.reachable_prefixes = vec!["+1".into(), "+44".into()];
    added.mms.routes = vec![route("+44", "mmsc-new"), route("+1", "mmsc")];
    let r = s.gw.reload(&added);
    assert_eq!(r.applied, ["mmsc.mmsc-new: added", "mms.routes"]);
    assert!(r.at_restart.is_empty() && r.refused.is_empty(), "{r:?}");
    assert_eq!(s.gw.mm7_callbacks()[1], callback.addr());
    let up = s.client.put_media("image/png", png(16, 16)).await.unwrap();
    let uk = (0..3)
        .map(|i| {
            mms(
                &format!("uk{i}"),
                &format!("+44770090012{i}"),
                "Hi",
                &up.media_id,
            )
        })
        .collect();
    let uk = accepted_ids(&s.client.submit(uk).await.unwrap());
    eventually("the UK MMS delivered", Duration::from_secs(20), || {
        s.got.terminal_count() == 3
    })
    .await;
    for id in &uk {
        assert_eq!(
            channel_of(&s.got, *id),
            Some(pb::DeliveryState::StateDelivered)
        );
        // Its delivery report came to the listener the reload started.
        assert_eq!(s.got.channels.lock()[id].0, pb::Channel::MmsUsed);
        assert_eq!(s.got.codes.lock()[id].1, "mmsc-new");
    }
    assert_eq!(second.stats().accepted, 3);

    // 2. The first MMSC removed while one MMS is at it and three wait.
    s.mmsc.set_answer_delay(Duration::from_secs(1));
    let us = submit_mms(&s, "us", 4, 170).await;
    eventually("one MMS at the first MMSC", Duration::from_secs(10), || {
        s.mmsc.stats().submits == 1
    })
    .await;
    let mut removed = added.clone();
    removed.mmsc.retain(|m| m.name != "mmsc");
    removed.mms.routes = vec![route("+44", "mmsc-new"), route("+1", "mmsc-new")];
    let r = s.gw.reload(&removed);
    assert_eq!(r.applied, ["mms.routes", "mmsc.mmsc: removed"]);
    assert!(r.at_restart.is_empty() && r.refused.is_empty(), "{r:?}");
    eventually("every MMS delivered", Duration::from_secs(20), || {
        s.got.terminal_count() == 7
    })
    .await;
    let mut at = std::collections::HashMap::<String, usize>::new();
    for id in &us {
        assert_eq!(
            channel_of(&s.got, *id),
            Some(pb::DeliveryState::StateDelivered)
        );
        assert_eq!(s.got.channels.lock()[id].0, pb::Channel::MmsUsed);
        *at.entry(s.got.codes.lock()[id].1.clone()).or_default() += 1;
    }
    assert_eq!(at.get("mmsc"), Some(&1), "{at:?}");
    assert_eq!(at.get("mmsc-new"), Some(&3), "{at:?}");
    assert_eq!((s.mmsc.stats().submits, s.mmsc.stats().accepted), (1, 1));
    assert_eq!(second.stats().accepted, 6);
    assert!(s.smsc.texts().is_empty(), "nothing fell back to SMS");

    // 3. The same file again changes nothing.
    let r = s.gw.reload(&removed);
    assert!(
        r.applied.is_empty() && r.at_restart.is_empty() && r.refused.is_empty(),
        "{r:?}"
    );
    s.gw.shutdown().await;
}

/// A reload that raises an MMSC's `connections` puts more requests in
/// flight at once; one that lowers it while they are in flight takes the
/// extra ones back as they end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mmscs_connections_a_reload_changes_bound_the_requests_in_flight() {
    let mut s = setup(
        |c| c.answer_delay = Duration::from_millis(400),
        |c| {
            c.mmsc[0].name = "mmsc-wide".into();
            c.mmsc[0].connections = 1;
        },
    )
    .await;
    submit_mms(&s, "narrow", 3, 180).await;
    eventually("3 delivered", Duration::from_secs(20), || {
        s.got.terminal_count() == 3
    })
    .await;
    assert_eq!(s.mmsc.stats().most_answering, 1);

    let mut wider = s.cfg.clone();
    wider.mmsc[0].connections = 4;
    let r = s.gw.reload(&wider);
    assert_eq!(r.applied, ["mmsc.mmsc-wide"]);
    assert!(r.at_restart.is_empty() && r.refused.is_empty(), "{r:?}");
    submit_mms(&s, "wide", 8, 190).await;
    eventually("4 in flight", Duration::from_secs(10), || {
        s.mmsc.stats().answering == 4
    })
    .await;
    let mut narrower = wider.clone();
    narrower.mmsc[0].connections = 2;
    assert_eq!(s.gw.reload(&narrower).applied, ["mmsc.mmsc-wide"]);
    // Once two of the four have ended, never more than two again.
    eventually("two of the four ended", Duration::from_secs(10), || {
        s.mmsc.stats().answering <= 2
    })
    .await;
    s.mmsc.reset_most_answering();
    eventually("all delivered", Duration::from_secs(20), || {
        s.got.terminal_count() == 11
    })
    .await;
    let st = s.mmsc.stats();
    assert_eq!((st.accepted, st.most_recipients), (11, 1), "{st:?}");
    assert_eq!(st.most_answering, 2, "{st:?}");
    s.gw.shutdown().await;
}

/// A reload that rotates the password an MMSC must use on its callbacks
/// checks the next callback against it: the MMSC, already on the new one,
/// has its delivery report refused until then, and taken after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_password_a_reload_rotates_is_checked_on_the_next_report() {
    let mut s = setup(
        |c| {
            c.callback_username = Some("mmsc".into());
            c.callback_password = Some("new-callback-pw".into());
            c.report_retries = 1000;
        },
        |c| {
            c.mmsc[0].name = "mmsc-cb".into();
            c.mmsc[0].callback_username = Some("mmsc".into());
            c.mmsc[0].callback_password = Some(sluice::config::Secret::new("old-callback-pw"));
        },
    )
    .await;
    let ids = submit_mms(&s, "cb", 1, 200).await;
    eventually("a report refused", Duration::from_secs(10), || {
        s.mmsc.stats().reports_sent >= 2
    })
    .await;
    assert_eq!(s.mmsc.stats().reports_acked, 0);
    assert_eq!(s.got.terminal_count(), 0);
    let mut rotated = s.cfg.clone();
    rotated.mmsc[0].callback_password = Some(sluice::config::Secret::new("new-callback-pw"));
    let r = s.gw.reload(&rotated);
    assert_eq!(r.applied, ["mmsc.mmsc-cb"]);
    // The secret applied is not named for the restart.
    assert!(r.at_restart.is_empty() && r.refused.is_empty(), "{r:?}");
    all_delivered_as_mms(&s, &ids).await;
    assert_eq!(s.mmsc.stats().reports_acked, 1);
    s.gw.shutdown().await;
}

/// A reload that widens `mms.fallback_before_expiry` sends to its fallback,
/// at the next look, an MMS waiting on an MMSC down whose validity now ends
/// within it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_before_expiry_a_reload_widens_takes_the_waiting_mms_to_sms() {
    // Nothing listens there: every connection is refused, so the MMSC is
    // down after the first try.
    let down = HeldPort::new();
    let mut s = setup(
        |_| {},
        |c| {
            c.mmsc[0].url = format!("http://{}/mm7", down.addr());
            c.mms.fallback_before_expiry = Duration::from_secs(1);
        },
    )
    .await;
    let up = s.client.put_media("image/png", png(16, 16)).await.unwrap();
    let mut m = mms("expiring", "+14155550210", "Sale ends soon", &up.media_id);
    m.validity_seconds = 120;
    let ids = accepted_ids(&s.client.submit(vec![m]).await.unwrap());
    // Tried, refused: it waits in the queue of the MMSC down (its validity
    // ends in 2 min, not within 1 s).
    let mut wider = s.cfg.clone();
    wider.mms.fallback_before_expiry = Duration::from_secs(600);
    let r = s.gw.reload(&wider);
    assert_eq!(r.applied, ["mms.fallback_before_expiry"]);
    assert!(r.at_restart.is_empty() && r.refused.is_empty(), "{r:?}");
    eventually("the MMS fell back to SMS", Duration::from_secs(20), || {
        s.got.terminal_count() == 1
    })
    .await;
    assert_eq!(
        channel_of(&s.got, ids[0]),
        Some(pb::DeliveryState::StateDelivered)
    );
    assert_eq!(s.got.channels.lock()[&ids[0]].0, pb::Channel::SmsUsed);
    assert_eq!(s.smsc.texts().len(), 1);
    s.gw.shutdown().await;
}

/// Rotates the MMSC's password (its refusals answered after `answer_delay`)
/// and checks the MMS waiting on it go out under the new one.
async fn rotate_the_mmsc_password(answer_delay: Duration) {
    let mut s = setup(
        |c| {
            c.username = Some("sluice".into());
            c.password = Some("rotated".into());
            c.answer_delay = answer_delay;
        },
        |c| {
            c.mmsc[0].name = "mmsc-rotate".into();
            c.mmsc[0].username = Some("sluice".into());
            c.mmsc[0].password = Some(sluice::config::Secret::new("old-password"));
            c.mmsc[0].auth_retry_min = Duration::from_secs(3600);
            c.mmsc[0].auth_retry_max = Duration::from_secs(3600);
        },
    )
    .await;
    let ids = submit_mms(&s, "rotate", 3, 140).await;
    eventually("the old password refused", Duration::from_secs(20), || {
        s.mmsc.stats().unauthorized >= 1
    })
    .await;

    let mut rotated = s.cfg.clone();
    rotated.mmsc[0].password = Some(sluice::config::Secret::new("rotated"));
    let r = s.gw.reload(&rotated);
    assert_eq!(r.applied, ["mmsc.mmsc-rotate"]);
    assert!(r.at_restart.is_empty() && r.refused.is_empty(), "{r:?}");
    assert!(
        s.gw.reload(&rotated).applied.is_empty(),
        "the same file again"
    );
    all_delivered_as_mms(&s, &ids).await;
    // Its callback listener's settings still wait for the restart.
    let mut elsewhere = rotated.clone();
    elsewhere.mmsc[0].callback_max_connections += 1;
    let r = s.gw.reload(&elsewhere);
    assert!(r.applied.is_empty(), "{r:?}");
    assert_eq!(r.at_restart, ["mmsc.mmsc-rotate"]);
    s.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mms_fail_over_to_the_second_mmsc_while_the_first_is_down() {
    // The first MMSC is down: its port is held by this test and nothing
    // listens there, so every connection is refused at once (as with a
    // stopped server), and no other process can take the port meanwhile.
    // (A listener that never accepts would not do: connections would sit
    // in its backlog and time out instead of being refused.)
    let down = HeldPort::new();
    let s = setup(
        |_| {},
        |c| {
            let dead = format!("http://{}/mm7", down.addr());
            c.mmsc.insert(
                0,
                MmscConfig {
                    vasp_id: Some("sluice".into()),
                    failover_after: Duration::from_secs(1),
                    ..MmscConfig::new("mmsc-down", dead)
                },
            );
        },
    )
    .await;
    let ids = submit_mms(&s, "fo", 5, 130).await;
    eventually("all delivered", Duration::from_secs(20), || {
        s.got.terminal_count() == 5
    })
    .await;
    for id in ids {
        assert_eq!(
            channel_of(&s.got, id),
            Some(pb::DeliveryState::StateDelivered)
        );
        assert_eq!(s.got.channels.lock()[&id].0, pb::Channel::MmsUsed);
        assert_eq!(s.got.codes.lock()[&id].1, "mmsc");
    }
    assert_eq!(s.mmsc.stats().accepted, 5);
    assert!(s.smsc.texts().is_empty(), "nothing fell back to SMS");
    s.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_expired_mms_carry_the_mm7_status_and_channel_mms() {
    // Refused for good (3001) with no fallback: failed, with the status.
    let s = setup(|c| c.fail_status = Some(3001), |_| {}).await;
    let up = s.client.put_media("image/png", png(16, 16)).await.unwrap();
    let mut none = mms("none", "+14155550140", "Hi", &up.media_id);
    none.fallback = pb::FallbackPolicy::FallbackNone as i32;
    let id = accepted_ids(&s.client.submit(vec![none]).await.unwrap())[0];
    eventually("failed", Duration::from_secs(20), || {
        s.got.terminal_count() == 1
    })
    .await;
    assert_eq!(channel_of(&s.got, id), Some(pb::DeliveryState::StateFailed));
    assert_eq!(s.got.channels.lock()[&id].0, pb::Channel::MmsUsed);
    assert_eq!(s.got.codes.lock()[&id], (3001, "mmsc".to_owned()));
    s.gw.shutdown().await;

    // Refused for now (4006) until the validity ends: expired, with the status.
    let s = setup(|c| c.fail_status = Some(4006), |_| {}).await;
    let up = s.client.put_media("image/png", png(16, 16)).await.unwrap();
    let mut short = mms("short", "+14155550141", "Hi", &up.media_id);
    short.validity_seconds = 2;
    let submitted = tokio::time::Instant::now();
    let id = accepted_ids(&s.client.submit(vec![short]).await.unwrap())[0];
    eventually("expired", Duration::from_secs(20), || {
        s.got.terminal_count() == 1
    })
    .await;
    // Expired when the validity ended, not one backoff early (the waits
    // 250, 500, 1000 ms reach 1.75 s; the next try is at 2 s).
    assert!(
        submitted.elapsed() >= Duration::from_millis(1950),
        "expired after {:?}",
        submitted.elapsed()
    );
    assert_eq!(
        channel_of(&s.got, id),
        Some(pb::DeliveryState::StateExpired)
    );
    assert_eq!(s.got.channels.lock()[&id].0, pb::Channel::MmsUsed);
    assert_eq!(s.got.codes.lock()[&id], (4006, "mmsc".to_owned()));
    s.gw.shutdown().await;
}

/// `sluice send --media FILE --subject S --wait`: the file is uploaded
/// once, the message goes as MMS to a reachable number, and the printed
/// event says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_with_media_uploads_once_and_goes_as_mms() {
    send_media_through(sluice::settings::MediaTransferEncoding::Binary).await;
}

/// `mmsc.media_encoding = "base64"`: the MMSC gets the media in base64
/// parts and decodes them to the very bytes uploaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base64_media_reaches_the_mmsc_as_the_same_bytes() {
    send_media_through(sluice::settings::MediaTransferEncoding::Base64).await;
}

async fn send_media_through(encoding: sluice::settings::MediaTransferEncoding) {
    let s = setup(|_| {}, |c| c.mmsc[0].media_encoding = encoding).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("product.png");
    let image = png(40, 30);
    std::fs::write(&file, &image).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["send", "--gateway", &s.gw.ingest_addr.to_string()])
        .args(["--tenant", TENANT, "--token", TOKEN, "--to", "+14155550142"])
        .args(["--text", "Back in stock", "--subject", "Acme"])
        .arg("--media")
        .arg(&file)
        .args(["--wait", "--timeout", "30s"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("uploaded as"), "{stderr}");
    let event: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(event["state"], "delivered", "{stdout}");
    assert_eq!(event["channel"], "mms", "{stdout}");
    assert_eq!(s.mmsc.stats().submits, 1, "one SubmitReq");
    let images: Vec<_> = s
        .mmsc
        .media()
        .into_iter()
        .filter(|(t, _)| t.starts_with("image/"))
        .collect();
    assert_eq!(images.len(), 1, "the image, once");
    assert_eq!(&images[0].1[..], &image[..]);
    let want = match encoding {
        sluice::settings::MediaTransferEncoding::Binary => "binary",
        sluice::settings::MediaTransferEncoding::Base64 => "base64",
    };
    assert_eq!(s.mmsc.media_encodings(), vec![want.to_owned()]);
    // Without text or media there is nothing to send.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["send", "--gateway", &s.gw.ingest_addr.to_string()])
        .args(["--tenant", TENANT, "--token", TOKEN, "--to", "+14155550142"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("give --text, --media or both"));
}

/// `mmsc.fallback_after = 2`: an MMS the MMSC refuses for now (4006) on
/// both submits takes the SMS fallback on the third, before its validity
/// ends; with 0 (the default) it would be retried until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_for_now_twice_falls_back_on_the_third() {
    let s = setup(
        |c| c.fail_status = Some(4006),
        |c| {
            c.mmsc[0].retry_min = Duration::from_millis(10);
            c.mmsc[0].retry_max = Duration::from_millis(50);
            c.mmsc[0].fallback_after = sluice::settings::FallbackAfter::Tries(2);
        },
    )
    .await;
    let up = s.client.put_media("image/png", png(32, 32)).await.unwrap();
    let id = accepted_ids(
        &s.client
            .submit(vec![mms("busy", "+14155550177", "Hi", &up.media_id)])
            .await
            .unwrap(),
    )[0];
    eventually("final", Duration::from_secs(20), || {
        s.got.terminal_count() == 1
    })
    .await;
    assert_eq!(
        channel_of(&s.got, id),
        Some(pb::DeliveryState::StateDelivered)
    );
    let ch = s.got.channels.lock()[&id].clone();
    assert_eq!(ch.0, pb::Channel::SmsUsed, "{ch:?}");
    assert!(ch.1.contains("refused for now 2 times"), "{ch:?}");
    assert!(ch.1.contains("4006"), "{ch:?}");
    assert_eq!(s.mmsc.stats().submits, 2, "two MM7 submits, then the SMS");
    assert!(s.smsc.texts().iter().any(|t| t.1 == "14155550177"));
    s.gw.shutdown().await;
}

/// `[mmsc.service]`: the service fields configured for an MMSC reach it in
/// every SubmitReq (checked on `ServiceCode`, `MessageClass`,
/// `ChargedParty` and `ReplyCharging`, as the simulator reads them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mmscs_service_fields_go_in_its_submits() {
    let s = setup(
        |_| {},
        |c| {
            c.mmsc[0].service.service_code = Some("acme-promo".into());
            c.mmsc[0].service.message_class =
                Some(sluice::settings::MmsMessageClass::Advertisement);
            c.mmsc[0].service.charged_party = Some(sluice::settings::MmsChargedParty::Sender);
            c.mmsc[0].service.reply_charging_size = Some(2000);
            c.mmsc[0].service.reply_deadline = Some(Duration::from_secs(3 * 86_400));
        },
    )
    .await;
    let up = s.client.put_media("image/png", png(32, 32)).await.unwrap();
    accepted_ids(
        &s.client
            .submit(vec![mms("svc", "+14155550178", "Hi", &up.media_id)])
            .await
            .unwrap(),
    );
    eventually("final", Duration::from_secs(20), || {
        s.got.terminal_count() == 1
    })
    .await;
    assert_eq!(s.mmsc.service_codes(), ["acme-promo"]);
    let fields = &s.mmsc.service_fields()[0];
    assert_eq!(fields[0].as_deref(), Some("Advertisement"));
    assert_eq!(fields[5].as_deref(), Some("Sender"));
    assert_eq!(
        fields[6].as_deref(),
        Some("size=2000 deadline=PT259200S"),
        "{fields:?}"
    );
    s.gw.shutdown().await;
}

/// A message's own ServiceCode (one its tenant may use) and LinkedID go in
/// its SubmitReq over the MMSC's; a ServiceCode the tenant may not use is
/// refused at admission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messages_own_service_code_and_linked_id_go_in_its_submit() {
    let s = setup(
        |_| {},
        |c| {
            c.mmsc[0].service.service_code = Some("acme-promo".into());
            c.tenants[0].mms_service_codes = vec!["acme-vip".into()];
        },
    )
    .await;
    let up = s.client.put_media("image/png", png(32, 32)).await.unwrap();
    let mut own = mms("own", "+14155550179", "Hi", &up.media_id);
    own.mms_service_code = "acme-vip".into();
    own.mms_linked_id = "mo-0000002A".into();
    let plain = mms("plain", "+14155550180", "Hi", &up.media_id);
    let mut foreign = mms("foreign", "+14155550181", "Hi", &up.media_id);
    foreign.mms_service_code = "other-brand".into();
    let mut bad = mms("bad", "+14155550182", "Hi", &up.media_id);
    bad.mms_linked_id = "line\nbreak".into();
    let ack = s.client.submit(vec![own]).await.unwrap();
    assert_eq!(accepted_ids(&ack).len(), 1);
    eventually("first", Duration::from_secs(20), || {
        s.got.terminal_count() == 1
    })
    .await;
    let ack = s.client.submit(vec![plain, foreign, bad]).await.unwrap();
    assert_eq!(
        ack.results[0].reason,
        pb::RejectReason::RejectNone as i32,
        "{ack:?}"
    );
    for r in &ack.results[1..] {
        assert_eq!(r.reason, pb::RejectReason::InvalidField as i32, "{r:?}");
    }
    assert!(
        ack.results[1].detail.contains("mms_service_codes"),
        "{ack:?}"
    );
    eventually("second", Duration::from_secs(20), || {
        s.got.terminal_count() == 2
    })
    .await;
    assert_eq!(s.mmsc.service_codes(), ["acme-vip", "acme-promo"]);
    assert_eq!(s.mmsc.linked_ids(), ["mo-0000002A", ""]);
    // An MMS MO carries its LinkedID to the tenant, which answers with it.
    s.mmsc
        .inject_mo("+14155550183", "12345", "Size M please")
        .await
        .unwrap();
    eventually("the MO", Duration::from_secs(10), || {
        !s.got.inbound.lock().is_empty()
    })
    .await;
    let mo = s.got.inbound.lock()[0].clone();
    assert!(mo.linked_id.starts_with("mo-"), "{mo:?}");
    let mut answer = mms("answer", &mo.from, "Size M it is", &up.media_id);
    answer.mms_linked_id = mo.linked_id.clone();
    assert_eq!(
        accepted_ids(&s.client.submit(vec![answer]).await.unwrap()).len(),
        1
    );
    eventually("answered", Duration::from_secs(20), || {
        s.got.terminal_count() == 3
    })
    .await;
    assert_eq!(s.mmsc.linked_ids()[2], mo.linked_id);
    s.gw.shutdown().await;
}

/// A message's own MessageClass, Priority, ReadReply, DistributionIndicator
/// and EarliestDeliveryTime go in its SubmitReq over the MMSC's defaults; a
/// message without them gets the defaults; an earliest delivery at or past
/// the message's expiry is refused at admission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messages_own_class_priority_replies_and_earliest_delivery_go_in_its_submit() {
    let s = setup(
        |_| {},
        |c| {
            let service = &mut c.mmsc[0].service;
            service.message_class = Some(sluice::model::MmsMessageClass::Advertisement);
            service.priority = Some(sluice::model::MmsPriority::Low);
            service.read_reply = Some(false);
        },
    )
    .await;
    let up = s.client.put_media("image/png", png(32, 32)).await.unwrap();
    // An hour from now, in whole seconds.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let at_ms = (now.as_secs() + 3600) * 1000;
    let at =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(at_ms))
            .to_string();
    let mut own = mms("own", "+14155550184", "Hi", &up.media_id);
    own.mms_message_class = pb::MmsMessageClass::Personal as i32;
    own.mms_priority = pb::MmsPriority::High as i32;
    own.mms_read_reply = Some(true);
    own.mms_distribution_indicator = Some(false);
    own.mms_earliest_delivery_ms = at_ms;
    own.validity_seconds = 2 * 3600;
    let plain = mms("plain", "+14155550185", "Hi", &up.media_id);
    let mut late = mms("late", "+14155550186", "Hi", &up.media_id);
    late.validity_seconds = 1800;
    late.mms_earliest_delivery_ms = at_ms;
    let ack = s.client.submit(vec![own]).await.unwrap();
    assert_eq!(accepted_ids(&ack).len(), 1, "{ack:?}");
    eventually("first", Duration::from_secs(20), || {
        s.got.terminal_count() == 1
    })
    .await;
    let ack = s.client.submit(vec![plain, late]).await.unwrap();
    assert_eq!(
        ack.results[0].reason,
        pb::RejectReason::RejectNone as i32,
        "{ack:?}"
    );
    assert_eq!(
        ack.results[1].reason,
        pb::RejectReason::InvalidField as i32,
        "{ack:?}"
    );
    assert!(
        ack.results[1].detail.contains("mms_earliest_delivery_ms"),
        "{ack:?}"
    );
    eventually("second", Duration::from_secs(20), || {
        s.got.terminal_count() == 2
    })
    .await;
    let some = |v: &str| Some(v.to_owned());
    assert_eq!(
        s.mmsc.service_fields(),
        [
            [
                some("Personal"),
                some("High"),
                some("true"),
                some("false"),
                Some(at),
                None,
                None
            ],
            [
                some("Advertisement"),
                some("Low"),
                some("false"),
                None,
                None,
                None,
                None
            ],
        ]
    );
    s.gw.shutdown().await;
}

/// `mmsc.fallback_after = "300ms"`: the time form. An MMS the MMSC keeps
/// refusing for now takes the SMS fallback at the first refusal after it
/// has waited that long, well before its validity ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_for_now_past_the_waiting_time_falls_back() {
    let s = setup(
        |c| c.fail_status = Some(4006),
        |c| {
            c.mmsc[0].retry_min = Duration::from_millis(20);
            c.mmsc[0].retry_max = Duration::from_millis(50);
            c.mmsc[0].fallback_after =
                sluice::settings::FallbackAfter::Waited(Duration::from_millis(300));
        },
    )
    .await;
    let up = s.client.put_media("image/png", png(32, 32)).await.unwrap();
    let id = accepted_ids(
        &s.client
            .submit(vec![mms("slow", "+14155550179", "Hi", &up.media_id)])
            .await
            .unwrap(),
    )[0];
    eventually("final", Duration::from_secs(20), || {
        s.got.terminal_count() == 1
    })
    .await;
    let ch = s.got.channels.lock()[&id].clone();
    assert_eq!(ch.0, pb::Channel::SmsUsed, "{ch:?}");
    assert!(ch.1.contains("refused for now"), "{ch:?}");
    assert!(
        s.mmsc.stats().submits >= 2,
        "retried while it had waited less than 300 ms"
    );
    s.gw.shutdown().await;
}

/// `mmsc.max_recipients = 4`: same-content MMS to several numbers share a
/// SubmitReq (at most 4 recipients, a different text never joins), the
/// recipient a `1100 Partial success` does not take ends on its own (no
/// fallback: failed with 1100), and each recipient taken ends by its own
/// delivery report, told apart by its Recipient under the one MessageID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_recipient_submit_gives_each_recipient_its_own_result_and_report() {
    use sluice::mm7::soap::{Address, DeliveryReportReq, Message, MmStatus};
    let s = setup(
        |c| {
            c.max_recipients = Some(4);
            // +1415555019x are not taken.
            c.refuse_recipients = Some("1415555019".into());
            // Reports are posted by the test, each with its own status.
            c.outcomes = "none".parse().unwrap();
        },
        |c| {
            c.mmsc[0].name = "mmsc-group".into();
            c.mmsc[0].max_recipients = 4;
            // One request at a time, so the campaign queues behind the first.
            c.mmsc[0].connections = 1;
        },
    )
    .await;
    let up = s.client.put_media("image/png", png(16, 16)).await.unwrap();
    // A first MMS held at the MMSC while the campaign is queued.
    s.mmsc.set_answer_delay(Duration::from_millis(500));
    let first = accepted_ids(
        &s.client
            .submit(vec![mms("first", "+14155550170", "Before", &up.media_id)])
            .await
            .unwrap(),
    )[0];
    eventually("first at the MMSC", Duration::from_secs(10), || {
        s.mmsc.stats().submits == 1
    })
    .await;
    s.mmsc.set_answer_delay(Duration::ZERO);
    let mut batch: Vec<pb::SubmitMessage> = (0..5)
        .map(|i| {
            mms(
                &format!("c{i}"),
                &format!("+1415555018{i}"),
                "Sale!",
                &up.media_id,
            )
        })
        .collect();
    let mut refused = mms("c-refused", "+14155550190", "Sale!", &up.media_id);
    refused.fallback = pb::FallbackPolicy::FallbackNone as i32;
    batch.push(refused);
    batch.push(mms("other", "+14155550186", "Not the same", &up.media_id));
    let ids = accepted_ids(&s.client.submit(batch).await.unwrap());
    assert_eq!(ids.len(), 7);
    // Every number reached the MMSC (the refused one was named, not taken).
    eventually("all submitted", Duration::from_secs(20), || {
        let st = s.mmsc.stats();
        st.recipients == 7 && st.recipients_refused == 1
    })
    .await;
    let requests = s.mmsc.accepted();
    let st = s.mmsc.stats();
    assert!(st.most_recipients <= 4, "{st:?}");
    assert_eq!(
        st.most_recipients, 4,
        "the campaign shared requests: {requests:?}"
    );
    assert!(
        st.submits <= 5,
        "7 messages in at most 1 + 4 requests: {st:?} {requests:?}"
    );
    assert_eq!(st.by_status.get(&1100), Some(&1), "{st:?}");
    assert_eq!(st.duplicates, 0, "{st:?}");
    for (_, to, bcc) in &requests {
        // Several recipients are blind copies: no handset sees the others
        // (the request of 0184 named 0190 too, which was not taken).
        if to.len() > 1 {
            assert_eq!(*bcc, to.len(), "{requests:?}");
        }
        if to.iter().any(|t| t == "+14155550186") {
            assert_eq!(
                (to.len(), *bcc),
                (1, 0),
                "a different text never joins: {requests:?}"
            );
        }
        if to.iter().any(|t| t == "+14155550170") {
            assert_eq!((to.len(), *bcc), (1, 0), "{requests:?}");
        }
    }
    // The recipient not taken ended at once, with the MMSC's status.
    let refused_id = ids[5];
    eventually("refused ended", Duration::from_secs(10), || {
        s.got.state_of(refused_id).is_some()
    })
    .await;
    assert_eq!(
        s.got.state_of(refused_id),
        Some(pb::DeliveryState::StateFailed)
    );
    assert_eq!(
        s.got.codes.lock()[&refused_id],
        (1100, "mmsc-group".to_owned())
    );
    assert_eq!(s.got.channels.lock()[&refused_id].0, pb::Channel::MmsUsed);
    assert!(s.smsc.texts().is_empty(), "no fallback was asked for");

    // Each taken recipient's report, each with its own status.
    let message_id_of = |to: &str| {
        requests
            .iter()
            .find(|(_, r, _)| r.iter().any(|t| t == to))
            .map(|(id, _, _)| id.clone())
            .unwrap()
    };
    let report = |to: &str, status: MmStatus| DeliveryReportReq {
        transaction_id: format!("dr-{to}"),
        message_id: message_id_of(to),
        recipient: Address::Number(to.into()),
        mm_status: status,
        ..Default::default()
    };
    let cb = s.gw.mm7_callbacks()[0];
    let mut expected = vec![(first, "+14155550170", MmStatus::Retrieved)];
    for (i, status) in [
        MmStatus::Retrieved,
        MmStatus::Rejected,
        MmStatus::Expired,
        MmStatus::Retrieved,
        MmStatus::Unrecognised,
    ]
    .into_iter()
    .enumerate()
    {
        expected.push((
            ids[i],
            [
                "+14155550180",
                "+14155550181",
                "+14155550182",
                "+14155550183",
                "+14155550184",
            ][i],
            status,
        ));
    }
    expected.push((ids[6], "+14155550186", MmStatus::Retrieved));
    // A number the request never named, under a shared MessageID: no
    // message ends.
    let (_, answer) = post_report(
        cb,
        &DeliveryReportReq {
            recipient: Address::Number("+14155550189".into()),
            ..report("+14155550180", MmStatus::Retrieved)
        },
    )
    .await;
    let Message::Rsp(rsp) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(rsp.status.code, 2005, "{rsp:?}");
    for (_, to, status) in &expected {
        let (code, answer) = post_report(cb, &report(to, status.clone())).await;
        let Message::Rsp(rsp) = answer else {
            panic!("{answer:?}")
        };
        assert_eq!((code, rsp.status.code), (200, 1000), "{to}: {rsp:?}");
    }
    eventually("every message final", Duration::from_secs(10), || {
        s.got.terminal_count() == 8
    })
    .await;
    for (id, to, status) in &expected {
        let want = match status {
            MmStatus::Retrieved => pb::DeliveryState::StateDelivered,
            MmStatus::Expired => pb::DeliveryState::StateExpired,
            _ => pb::DeliveryState::StateFailed,
        };
        assert_eq!(s.got.state_of(*id), Some(want), "{to} ({status:?})");
        assert_eq!(s.got.states.lock()[id].len(), 1, "{to}: one final event");
    }
    // The same report again ends nothing twice.
    let (_, answer) = post_report(cb, &report("+14155550181", MmStatus::Retrieved)).await;
    let Message::Rsp(rsp) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(rsp.status.code, 1000, "a repeat is answered, not applied");
    assert_eq!(s.got.state_of(ids[1]), Some(pb::DeliveryState::StateFailed));
    assert_eq!(s.got.states.lock()[&ids[1]].len(), 1);
    s.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracked_tenants_fallback_link_is_a_short_link_to_its_landing_page() {
    let s = setup(
        |_| {},
        |c| {
            c.tenants[0].track_links = true;
            c.tenants[0].link_url = Some("https://go.acme.test".into());
        },
    )
    .await;
    let up = s.client.put_media("image/png", png(64, 48)).await.unwrap();
    let mut m = mms("fb-1", "+447700900123", "Look!", &up.media_id);
    m.campaign_id = "spring".into();
    let id = accepted_ids(&s.client.submit(vec![m]).await.unwrap())[0];
    eventually("final", Duration::from_secs(20), || {
        s.got.terminal_count() == 1
    })
    .await;
    let sms = s.smsc.texts();
    assert_eq!(sms.len(), 1);
    let code = sms[0]
        .2
        .strip_prefix("Look!\nhttps://go.acme.test/")
        .unwrap_or_else(|| panic!("not a short link: {}", sms[0].2))
        .to_owned();
    assert_eq!(code.len(), 11, "{code}");
    // The short link leads to the landing page, and its visit is a click.
    let mut tcp = tokio::net::TcpStream::connect(s.gw.public_addr.unwrap())
        .await
        .unwrap();
    let req = format!(
        "GET /{code} HTTP/1.1\r\nhost: go.acme.test\r\nuser-agent: Mozilla/5.0 (iPhone) Safari/604.1\r\nconnection: close\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 302"), "{out}");
    let location = out
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap_or_default()
        .to_owned();
    assert!(location.starts_with("http://PUBLIC/p/"), "{out}");
    let page = location.trim_start_matches("http://PUBLIC");
    let (st, _, body) = http_get(s.gw.public_addr.unwrap(), page).await;
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&body).contains("Look!"));
    eventually("the click", Duration::from_secs(10), || {
        !s.got.clicks.lock().is_empty()
    })
    .await;
    let click = s.got.clicks.lock()[0].clone();
    assert_eq!(
        (click.message_id, click.campaign_id.as_str(), click.first),
        (id, "spring", true)
    );
    s.gw.shutdown().await;
}
