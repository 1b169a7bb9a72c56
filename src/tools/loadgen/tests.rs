use std::collections::{BTreeMap, HashSet};

use super::mix::{Kind, Mix, Templates};
use super::*;

#[test]
fn mix_parses_and_prints() {
    let m: Mix = "gsm7=70, unicode=20,multipart=10".parse().unwrap();
    assert_eq!(m.to_string(), "gsm7=70,unicode=20,multipart=10");
    assert_eq!(m, Mix::default());
    let m: Mix = "gsm7,invalid=0".parse().unwrap();
    assert_eq!(m.weights(), &[(Kind::Gsm7, 1)]);
    assert!(
        "mms=5"
            .parse::<Mix>()
            .unwrap_err()
            .contains("not supported")
    );
    assert!("sms=5".parse::<Mix>().unwrap_err().contains("unknown kind"));
    assert!("gsm7=1,gsm7=2".parse::<Mix>().is_err());
    assert!("gsm7=0".parse::<Mix>().is_err());
    assert!("gsm7=x".parse::<Mix>().is_err());
    assert!("gsm7=20000".parse::<Mix>().is_err());
}

#[test]
fn templates_follow_the_mix_closely() {
    let t = Templates::new(&Mix::default(), "r1");
    let mut counts = BTreeMap::new();
    for seq in 0..10 {
        *counts.entry(t.kind(seq)).or_insert(0) += 1;
    }
    // Any ten consecutive messages follow 70/20/10 exactly.
    assert_eq!(counts[&Kind::Gsm7], 7);
    assert_eq!(counts[&Kind::Unicode], 2);
    assert_eq!(counts[&Kind::Multipart], 1);
}

#[test]
fn stamped_messages_are_unique_and_valid() {
    let mix: Mix = "gsm7=1,unicode=1,multipart=1,invalid=1".parse().unwrap();
    let t = Templates::new(&mix, "abc");
    let mut refs = HashSet::new();
    let mut triples = HashSet::new();
    for seq in [0u64, 1, 2, 3, 41, 9_999_999, 10_000_000, 12_345_678_901] {
        let m = t.message(seq);
        assert!(m.client_ref.starts_with("bench-abc-"), "{}", m.client_ref);
        assert!(refs.insert(m.client_ref.clone()));
        assert!(triples.insert((m.from.clone(), m.to.clone(), m.text.clone())));
        let digits = format!("{:010}", seq % 10_000_000_000);
        assert!(m.client_ref.ends_with(&digits));
        assert!(m.text.contains(&digits), "{}", m.text);
        match t.kind(seq) {
            Kind::Invalid => assert_eq!(m.to, "+1555"),
            _ => {
                assert_eq!(m.to.len(), 12);
                assert!(m.to.ends_with(&digits[3..]), "{}", m.to);
            }
        }
        assert_eq!(
            m.priority == pb::PriorityClass::PriorityTransactional as i32,
            seq % 20 == 0
        );
    }
    assert_eq!(t.batch(5, 3).len(), 3);
    assert!(t.message(2).text.chars().count() > 160, "multipart is long");
}

#[test]
fn prometheus_samples_parse() {
    let text = "# HELP a_total A.\n# TYPE a_total counter\n\
                a_total{tenant=\"demo\",state=\"delivered\"} 5\n\
                a_total{tenant=\"demo\",state=\"failed\"} 2\n\
                a_total{tenant=\"other\",state=\"failed\"} 7\n\
                b{x=\"q\\\"uo,te\"} 1.5e3\n\
                c 3\n\
                h_bucket{le=\"+Inf\"} 4\n";
    let s = prom::Scrape::parse(text);
    assert_eq!(s.sum("a_total", &[("tenant", "demo")]), 7.0);
    assert_eq!(s.sum("a_total", &[]), 14.0);
    let by = s.sum_by("a_total", "state", &[("tenant", "demo")]);
    assert_eq!(by["delivered"], 5.0);
    assert_eq!(by["failed"], 2.0);
    assert_eq!(s.sum("b", &[("x", "q\"uo,te")]), 1500.0);
    assert_eq!(s.sum("c", &[]), 3.0);
    assert_eq!(s.sum("h_bucket", &[("le", "+Inf")]), 4.0);
    assert!(prom::parse_sample("x{a=\"unterminated} 1").is_none());
}

#[test]
fn proc_files_parse() {
    let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0";
    assert_eq!(procfs::parse_stat(stat), Some((250, 75)));
    let status = "Name:\tx\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
    assert_eq!(procfs::status_kib(status, "VmHWM:"), Some(204_800));
    assert_eq!(procfs::status_kib(status, "VmRSS:"), Some(102_400));
    let r = procfs::Proc::This.read().expect("/proc/self on Linux");
    assert!(r.peak_rss_bytes >= r.rss_bytes && r.rss_bytes > 0);
}

#[test]
fn nice_axes() {
    assert_eq!(svg::nice_axis(97_000.0), (20_000.0, 100_000.0));
    assert_eq!(svg::nice_axis(3.0), (1.0, 3.0));
    assert_eq!(svg::nice_axis(0.0), (1.0, 1.0));
    assert_eq!(svg::nice_axis(21.0), (5.0, 25.0));
}

#[test]
fn svg_draws_every_series() {
    let series: Vec<SecondSample> = (0..5)
        .map(|t| SecondSample {
            t_s: t,
            accepted: 1000 * t,
            terminal: 900 * t,
            ack_p99_ms: (t != 2).then_some(1.5),
            terminal_p99_ms: Some(25.0),
        })
        .collect();
    let svg = svg::render(&series, "a <title> & more");
    assert!(svg.starts_with("<svg"));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("a &lt;title&gt; &amp; more"));
    // accepted, terminal, two ack runs (gap at t=2), terminal p99.
    assert_eq!(svg.matches("<polyline").count(), 5);
    let empty = svg::render(&[], "empty");
    assert!(empty.starts_with("<svg"));
}

#[test]
fn count_check_agrees_and_disagrees() {
    let terminal: BTreeMap<String, u64> =
        [("delivered".to_owned(), 9), ("rejected".to_owned(), 1)].into();
    let c = CountCheck::new(
        10,
        &terminal,
        Some(10),
        Some(terminal.clone()),
        Some((9, 0)),
        true,
    );
    assert!(c.agree, "{c:?}");
    assert_eq!(c.simulator_expected, Some(9));
    let c = CountCheck::new(
        10,
        &terminal,
        Some(10),
        Some(terminal.clone()),
        Some((9, 1)),
        true,
    );
    assert!(!c.agree);
    let c = CountCheck::new(10, &terminal, Some(11), None, None, true);
    assert!(!c.agree);
    let c = CountCheck::new(10, &terminal, None, None, None, false);
    assert!(c.agree && c.notes[0].contains("--metrics-url"), "{c:?}");
}

#[test]
fn default_options_match_the_cli() {
    let o = BenchOptions::default();
    assert!(!o.embedded);
    assert_eq!(o.mix, Mix::default());
    assert_eq!(o.limits(), (Some(DEFAULT_DURATION), u64::MAX));
    let o = BenchOptions {
        messages: 5,
        ..BenchOptions::default()
    };
    assert_eq!(o.limits(), (None, 5));
    assert_eq!(thousands(1_234_567), "1,234,567");
    assert_eq!(thousands(12), "12");
}
