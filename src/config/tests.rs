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
fn a_sender_belongs_to_one_tenant() {
    let text = r#"
        [[tenants]]
        name = "acme"
        token = "long-enough-token"
        senders = ["12345", "+14155550100", "ACME"]
        sender_patterns = ["SHOP*"]
        [[tenants.programs]]
        name = "p"
        senders = ["67890"]
        [[tenants]]
        name = "globex"
        token = "long-enough-token"
        senders = ["12345", "14155550100", "acme", "SHOPNOW"]
        sender_patterns = ["SHO*", "bad-pattern"]
    "#;
    let err = Config::parse(text, Path::new("s.toml"))
        .unwrap_err()
        .to_string();
    for needle in [
        "sender \"12345\" belongs to tenants \"acme\" and \"globex\"",
        "program \"p\": sender \"67890\" is not one of the tenant's senders",
        "sender pattern \"bad-pattern\"",
    ] {
        assert!(err.contains(needle), "{needle:?} missing in {err}");
    }
    // The number in two spellings and the alphanumeric id in two cases are
    // one sender each; so are overlapping patterns.
    let text = r#"
        [[tenants]]
        name = "acme"
        token = "long-enough-token"
        senders = ["+14155550100"]
        [[tenants]]
        name = "globex"
        token = "long-enough-token"
        senders = ["14155550100"]
    "#;
    let err = Config::parse(text, Path::new("s.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("belongs to tenants"), "{err}");
    for (a, b) in [
        (r#"senders = ["ACME"]"#, r#"senders = ["acme"]"#),
        (r#"sender_patterns = ["SHOP*"]"#, r#"senders = ["shopnow"]"#),
        (
            r#"sender_patterns = ["SHOP*"]"#,
            r#"sender_patterns = ["SH*"]"#,
        ),
    ] {
        let text = format!(
            "[[tenants]]\nname = \"acme\"\ntoken = \"long-enough-token\"\n{a}\n[[tenants]]\nname = \"globex\"\ntoken = \"long-enough-token\"\n{b}\n"
        );
        let err = Config::parse(&text, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("belongs to tenants"), "{a} / {b}: {err}");
    }
}
