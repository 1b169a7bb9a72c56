//! Interop with a third-party SMPP implementation: sluice's carrier side
//! binds to an SMSC built on the `smpp` npm package (node-smpp,
//! `tests/interop/smsc.js`), submits GSM-7, extension-character, Unicode and
//! multi-part texts, and correlates node-smpp's delivery receipts. The peer
//! reports what it decoded; the test reassembles the parts from their UDH
//! and compares them with what was sent. And the other way round: node-smpp's
//! client binds to sluice's SMPP server (`tests/interop/esme.js`).
//!
//! Needs `node` and `npm`: the test runs `npm ci` in `tests/interop` when
//! `node_modules` is missing (`.ci/run` installs Node.js). Without Node.js
//! the test says so and passes, unless `SLUICE_REQUIRE_EXTERNAL` is set, as
//! `.ci/run` sets it, where it fails (`sluice::external`).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use parking_lot::Mutex;
use sluice::ingest::pb;

/// One submit_sm as node-smpp decoded it.
#[derive(Debug, serde::Deserialize)]
struct Seen {
    dst: String,
    data_coding: u8,
    udh: Vec<Vec<u8>>,
    text: String,
}

struct Peer {
    child: Child,
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tests/interop` with node-smpp installed (`npm ci` when missing);
/// `None` (the test says it is skipped) when Node.js is not installed and
/// `SLUICE_REQUIRE_EXTERNAL` is not set.
fn node_smpp() -> Option<PathBuf> {
    use sluice::external::{NODE, NPM, require};
    if !require(&[&NODE, &NPM]) {
        return None;
    }
    Some(node_packages("smpp"))
}

/// Starts the node-smpp SMSC, installing its package first if needed;
/// `None` (the test says it is skipped) when Node.js is not installed and
/// `SLUICE_REQUIRE_EXTERNAL` is not set.
fn start_peer() -> Option<Peer> {
    let dir = node_smpp()?;
    let mut child = Command::new("node")
        .arg("smsc.js")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("node starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let first = lines
        .next()
        .expect("the peer prints its port")
        .expect("readable");
    let port: u16 = first
        .strip_prefix("LISTEN ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from the peer: {first:?}"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let s: Seen =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("peer line {line:?}: {e}"));
            sink.lock().push(s);
        }
    });
    Some(Peer { child, port, seen })
}

/// Texts as the peer received them: parts joined in order by their
/// concatenation UDH (8- or 16-bit reference), per destination.
fn reassembled(seen: &[Seen]) -> (Vec<String>, usize) {
    let mut whole = Vec::new();
    let mut parts: BTreeMap<(String, u16), (u8, BTreeMap<u8, String>)> = BTreeMap::new();
    for s in seen {
        let concat = s.udh.iter().find_map(|ie| match ie.as_slice() {
            [0x00, 3, r, total, seq] => Some((u16::from(*r), *total, *seq)),
            [0x08, 4, hi, lo, total, seq] => Some((u16::from_be_bytes([*hi, *lo]), *total, *seq)),
            _ => None,
        });
        match concat {
            None => whole.push(s.text.clone()),
            Some((r, total, seq)) => {
                let e = parts.entry((s.dst.clone(), r)).or_default();
                e.0 = total;
                e.1.insert(seq, s.text.clone());
            }
        }
    }
    let multipart = parts.len();
    for ((dst, r), (total, ps)) in parts {
        assert_eq!(
            ps.len(),
            usize::from(total),
            "message to {dst} ref {r}: parts {:?} of {total}",
            ps.keys()
        );
        whole.push(ps.into_values().collect());
    }
    (whole, multipart)
}

/// How many texts are complete so far (parts may still be on their way).
fn complete_texts(seen: &[Seen]) -> usize {
    let mut complete = 0;
    let mut parts: BTreeMap<(String, u16), (u8, usize)> = BTreeMap::new();
    for s in seen {
        match s.udh.iter().find_map(|ie| match ie.as_slice() {
            [0x00, 3, r, total, _] => Some((u16::from(*r), *total)),
            [0x08, 4, hi, lo, total, _] => Some((u16::from_be_bytes([*hi, *lo]), *total)),
            _ => None,
        }) {
            None => complete += 1,
            Some((r, total)) => {
                let e = parts.entry((s.dst.clone(), r)).or_default();
                e.0 = total;
                e.1 += 1;
            }
        }
    }
    complete += parts
        .values()
        .filter(|(t, n)| usize::from(*t) == *n)
        .count();
    complete
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_interoperates_with_node_smpp() {
    let Some(peer) = start_peer() else { return };
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", peer.port).parse().unwrap();
    let cfg = sluice::demo::embedded_config(dir.path(), addr, 2, 16);
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;

    let long_gsm = "Spring sale: everything 25% off until Sunday, free delivery over $40. \
        Use code SPRING25 at checkout. Reply STOP to opt out. See acme.example/s for details; \
        offer ends Sunday at midnight.";
    let long_ucs2 = "Grüße aus Zürich! Ваш заказ №4815 отправлен 🚚 и прибудет завтра. \
        Спасибо, что выбрали нас ❤️";
    let texts = [
        "Your ACME code is 481516.",
        "Braces {} and [brackets], tilde ~ and euro € count twice",
        "Café crème à 3€ — déjà vu? ¿Sí?",
        "日本語のメッセージ",
        long_gsm,
        long_ucs2,
    ];
    assert!(long_gsm.chars().count() > 160);
    assert!(long_ucs2.chars().count() > 70);
    let batch: Vec<pb::SubmitMessage> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| msg(&format!("interop-{i}"), &format!("+1415888{i:04}"), t))
        .collect();
    let ids = accepted_ids(&client.submit(batch).await.unwrap());
    assert_eq!(ids.len(), texts.len());

    eventually(
        "every message delivered by node-smpp's receipts",
        Duration::from_secs(20),
        || got.terminal_count() == texts.len(),
    )
    .await;
    for id in &ids {
        assert_eq!(
            got.state_of(*id),
            Some(pb::DeliveryState::StateDelivered),
            "message {id:x}: {:?}",
            got.states.lock().get(id)
        );
    }

    // The peer's stdout is read on another thread: wait until it has
    // reported every part (reassembly then finds every text whole).
    eventually(
        "the peer reported every part",
        Duration::from_secs(10),
        || complete_texts(&peer.seen.lock()) >= texts.len(),
    )
    .await;
    let seen = std::mem::take(&mut *peer.seen.lock());
    let (received, multipart) = reassembled(&seen);
    let sent: HashSet<&str> = texts.iter().copied().collect();
    let received_set: HashSet<&str> = received.iter().map(String::as_str).collect();
    assert_eq!(received.len(), texts.len(), "{received:#?}");
    assert_eq!(received_set, sent, "what node-smpp decoded");
    assert_eq!(
        multipart, 2,
        "the two long texts went as concatenated parts"
    );
    // GSM-7 texts as data_coding 0, the others as UCS-2 (8).
    for s in &seen {
        let gsm = s.text.chars().all(|c| c.is_ascii() || c == '€');
        assert_eq!(s.data_coding, if gsm { 0 } else { 8 }, "{s:?}");
    }
    gw.shutdown().await;
}

/// One step the node-smpp ESME reported.
#[derive(Debug, serde::Deserialize)]
struct Step {
    step: String,
    #[serde(default)]
    status: Option<u32>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    esm_class: Option<u8>,
    #[serde(default)]
    receipted_message_id: Option<String>,
    #[serde(default)]
    message_state: Option<u8>,
    #[serde(default)]
    text: Option<String>,
}

/// The other direction: node-smpp's client binds to sluice's SMPP server
/// (`tests/interop/esme.js`), is refused with a wrong password, submits a
/// short, a Unicode, a `message_payload` and a two-part UDH text, gets each
/// answered with an id (both parts the same), receives one receipt per
/// message naming that id, and unbinds; the SMSC gets every text whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_smpp_binds_to_sluices_smpp_server() {
    let Some(dir) = node_smpp() else { return };
    let smsc = smsc(|_| {}).await;
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(data.path(), &smsc);
    cfg.smpp_server.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.tenants[0].smpp_system_id = Some("demo".into());
    cfg.tenants[0].smpp_password = Some(sluice::config::Secret::new("pw-demo"));
    let gw = sluice::gateway::start(cfg).await.unwrap();
    let port = gw.smpp_server_addr.unwrap().port().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(["esme.js", &port, "demo", "pw-demo"])
            .current_dir(&dir)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the ESME failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let steps: Vec<Step> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("ESME line {l:?}: {e}")))
        .collect();
    let one = |name: &str| {
        steps
            .iter()
            .find(|s| s.step == name)
            .unwrap_or_else(|| panic!("no {name} step in {steps:?}"))
    };
    assert_eq!(one("badbind").status, Some(0x0E), "ESME_RINVPASWD");
    assert_eq!(one("bind").status, Some(0));
    let ids: BTreeMap<String, String> = steps
        .iter()
        .filter(|s| s.step == "submit")
        .map(|s| {
            assert_eq!(s.status, Some(0), "{s:?}");
            (s.label.clone().unwrap(), s.id.clone().unwrap())
        })
        .collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert_eq!(
        ids["part1"], ids["part2"],
        "both parts answered with one id"
    );
    let receipts: BTreeMap<String, &Step> = steps
        .iter()
        .filter(|s| s.step == "deliver")
        .map(|s| {
            (
                s.receipted_message_id
                    .clone()
                    .expect("receipted_message_id"),
                s,
            )
        })
        .collect();
    assert_eq!(receipts.len(), 4, "{steps:?}");
    for label in ["short", "unicode", "payload", "part1"] {
        let r = receipts
            .get(&ids[label])
            .unwrap_or_else(|| panic!("no receipt for {label}: {steps:?}"));
        assert_eq!(r.esm_class, Some(0x04));
        assert_eq!(r.message_state, Some(2));
        let text = r.text.as_deref().unwrap_or_default();
        assert!(
            text.starts_with(&format!("id:{} ", ids[label])) && text.contains("stat:DELIVRD"),
            "{text}"
        );
    }
    assert_eq!(one("unbind").status, Some(0));
    let texts: HashSet<String> = smsc.texts().into_iter().map(|t| t.2).collect();
    for t in [
        "Hello from node smpp".to_owned(),
        "Привет, 世界 ✓".to_owned(),
        "A long text in message payload. "
            .repeat(8)
            .trim()
            .to_owned(),
        "Part text for concatenation from node smpp. "
            .repeat(6)
            .trim()
            .to_owned(),
    ] {
        assert!(texts.contains(&t), "{t:?} not in {texts:?}");
    }
    gw.shutdown().await;
}
