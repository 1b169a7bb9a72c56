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

#[test]
fn door_and_media_limits_have_defaults_and_are_checked() {
    let c = Config::parse("", Path::new("empty.toml")).unwrap();
    assert_eq!(c.ingest.hello_timeout, Duration::from_secs(2));
    assert_eq!(c.ingest.max_connections_per_ip, 64);
    assert_eq!(c.ingest.max_unauthenticated, 128);
    assert_eq!(c.mms.media_quota_bytes, 1 << 30);
    assert_eq!(c.mms.max_uploads_per_tenant, 4);
    let example = include_str!("../../deploy/sluice.toml");
    let c = Config::parse(example, Path::new("deploy/sluice.toml")).unwrap();
    assert_eq!(c.tenants[1].media_quota_bytes, Some(5 << 30));
    assert_eq!(c.tenants[0].media_quota_bytes, None);
    let text = r#"
        [ingest]
        hello_timeout = "0s"
        max_connections = 10
        max_unauthenticated = 20
        max_connections_per_ip = 0
        auth_failure_delay = "10s"
        auth_failure_delay_max = "1s"
        auth_failures_per_minute = 0
        [mms]
        max_uploads = 0
    "#;
    let err = Config::parse(text, Path::new("bad.toml"))
        .unwrap_err()
        .to_string();
    for want in [
        "hello_timeout must be above 0",
        "max_connections_per_ip and max_unauthenticated must be at least 1",
        "max_unauthenticated must not exceed max_connections",
        "auth_failures_per_minute must be at least 1",
        "auth_failure_delay exceeds auth_failure_delay_max",
        "mms.max_uploads_per_tenant and mms.max_uploads must be at least 1",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
}
