use super::*;

#[test]
fn example_config_parses() {
    let text = include_str!("../../deploy/sluice.toml");
    let c = Config::parse(text, Path::new("deploy/sluice.toml")).unwrap();
    assert_eq!(c.tenants.len(), 2);
    assert_eq!(c.carriers[0].binds[0].window, 256);
    assert_eq!(c.carriers[1].concat, ConcatMode::Sar);
    assert_eq!(c.ingest.dedupe_window, Duration::from_secs(86400));
    assert_eq!(c.journal_dir(), PathBuf::from("/var/lib/sluice/journal"));
}

#[test]
fn secrets_never_show_in_debug() {
    let text = include_str!("../../deploy/sluice.toml");
    let c = Config::parse(text, Path::new("x.toml")).unwrap();
    let dump = format!("{c:?}");
    assert!(!dump.contains("change-me-acme-token"));
    assert!(!dump.contains("secret1"));
    assert!(dump.contains("Secret(***)"));
}

#[test]
fn every_problem_is_reported() {
    let text = r#"
        [[tenants]]
        name = "a"
        token = "short"
        [[tenants]]
        name = "a"
        token = "long-enough-token"
        [[carriers]]
        name = "c"
        binds = []
        [[routes]]
        prefix = "1"
        carriers = ["nope"]
    "#;
    let err = Config::parse(text, Path::new("bad.toml"))
        .unwrap_err()
        .to_string();
    for needle in [
        "at least 8",
        "defined twice",
        "no binds",
        "'+' and digits",
        "unknown carrier",
    ] {
        assert!(err.contains(needle), "{needle:?} missing in {err}");
    }
    assert!(err.starts_with("bad.toml"));
}

#[test]
fn unknown_keys_are_refused() {
    let err = Config::parse("[ingest]\nlisten_addr = \"x\"\n", Path::new("k.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("listen_addr"), "{err}");
}
