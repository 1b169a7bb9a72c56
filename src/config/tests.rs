use super::*;
use std::time::Duration;

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

fn problems(text: &str) -> Vec<String> {
    let c: Config = toml::from_str(text).unwrap();
    c.problems()
}

#[test]
fn half_set_credentials_are_config_errors() {
    let p = problems(
        r#"
        [[mmsc]]
        name = "m"
        url = "http://mmsc"
        callback_listen = "127.0.0.1:9701"
        callback_username = "mmsc"
        [[mmsc]]
        name = "n"
        url = "http://mmsc"
        callback_listen = "127.0.0.1:9702"
        callback_password = "pw"
        password = "pw"
    "#,
    );
    let joined = p.join("\n");
    assert_eq!(
        p.iter()
            .filter(|l| l.contains("callback_username and callback_password must be set together"))
            .count(),
        2,
        "{joined}"
    );
    assert!(
        joined.contains("mmsc \"n\": username and password"),
        "{joined}"
    );
}

#[test]
fn half_set_tls_files_are_config_errors() {
    let p = problems(
        r#"
        [ingest]
        tls_cert_file = "a.pem"
        [http]
        tls_key_file = "a.key"
        [public]
        tls_client_ca_file = "ca.pem"
        [[mmsc]]
        name = "m"
        url = "http://mmsc"
        callback_tls_cert_file = "a.pem"
    "#,
    )
    .join("\n");
    for needle in [
        "ingest: tls_cert_file is set without tls_key_file",
        "http: tls_key_file is set without tls_cert_file",
        "public: tls_client_ca_file needs",
        "callback_tls_cert_file is set without callback_tls_key_file",
    ] {
        assert!(p.contains(needle), "{needle:?} missing in {p}");
    }
}

#[test]
fn doors_beyond_loopback_need_authentication() {
    let open = problems("[http]\nlisten = \"0.0.0.0:9700\"\n").join("\n");
    assert!(
        open.contains("http.listen 0.0.0.0:9700 is beyond loopback"),
        "{open}"
    );
    assert!(
        problems("[http]\nlisten = \"0.0.0.0:9700\"\nallow_unauthenticated = true\n").is_empty()
    );
    assert!(
        problems("[http]\nlisten = \"0.0.0.0:9700\"\nadmin_token = \"0123456789abcdef\"\n")
            .is_empty()
    );
    assert!(problems("[http]\nlisten = \"127.0.0.1:9700\"\n").is_empty());
    assert!(problems("[http]\nlisten = \"[::1]:9700\"\n").is_empty());
    let mm7 = |extra: &str| {
        problems(&format!(
            "[[mmsc]]\nname = \"m\"\nurl = \"http://mmsc\"\ncallback_listen = \"0.0.0.0:9701\"\n{extra}"
        ))
    };
    assert!(
        mm7("")
            .join("\n")
            .contains("callback_listen 0.0.0.0:9701 is beyond loopback")
    );
    assert!(mm7("callback_allow_unauthenticated = true").is_empty());
    assert!(mm7("callback_allow = [\"10.0.0.0/8\"]").is_empty());
    assert!(mm7("callback_username = \"u\"\ncallback_password = \"p\"").is_empty());
    // A bad network is a parse problem on its line, naming the key.
    let bad = super::check::check(
        "[[mmsc]]\nname = \"m\"\nurl = \"http://mmsc\"\ncallback_allow = [\"10.0.0.0/33\"]\n",
    )
    .unwrap_err()
    .join("\n");
    assert!(bad.contains("line 4: "), "{bad}");
    assert!(bad.contains("callback_allow"), "{bad}");
}

#[test]
fn admin_tokens_are_long_and_distinct() {
    let p = problems(
        r#"
        [http]
        admin_token = "0123456789abcdef"
        [[tenants]]
        name = "a"
        token = "tenant-a-token"
        admin_token = "0123456789abcdef"
        [[tenants]]
        name = "b"
        token = "tenant-b-token"
        admin_token = "short"
    "#,
    )
    .join("\n");
    assert!(
        p.contains("tenant \"a\": admin_token is the same as http.admin_token"),
        "{p}"
    );
    assert!(
        p.contains("tenant \"b\": admin_token must have at least 16"),
        "{p}"
    );
}

#[test]
fn listener_defaults_are_loopback_and_bounded() {
    let c: Config = toml::from_str("").unwrap();
    assert!(c.public.listen.unwrap().ip().is_loopback());
    assert_eq!(c.mms.public_url, "http://127.0.0.1:9702");
    assert!(c.http.max_connections > 0 && c.public.max_connections > 0);
    assert!(c.http.header_timeout < c.http.idle_timeout);
    assert!(c.ingest.tls().is_none() && c.http.tls().is_none() && c.public.tls().is_none());
    assert!(c.problems().is_empty());
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

/// Dotted key paths of a TOML table (arrays of tables without indices;
/// free-form tables without their children).
fn toml_keys(prefix: &str, t: &toml::Table, out: &mut std::collections::BTreeSet<String>) {
    for (k, v) in t {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        out.insert(path.clone());
        if keys::is_free_form(&path) {
            continue;
        }
        match v {
            toml::Value::Table(t) => toml_keys(&path, t, out),
            toml::Value::Array(a) => {
                for v in a {
                    if let toml::Value::Table(t) = v {
                        toml_keys(&path, t, out);
                    }
                }
            }
            _ => {}
        }
    }
}

#[test]
fn every_config_key_is_in_the_example_with_a_comment_and_in_the_readme() {
    let text = include_str!("../../deploy/sluice.toml");
    let table: toml::Table = text.parse().unwrap();
    let mut in_file = std::collections::BTreeSet::new();
    toml_keys("", &table, &mut in_file);
    let missing: Vec<_> = keys::known_keys()
        .into_iter()
        .filter(|k| !in_file.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "keys of the config structs missing from deploy/sluice.toml: {missing:?}"
    );
    // Every `key = value` line says what it means: a comment on the line or
    // right above it.
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with('[') || !t.contains('=') {
            continue;
        }
        let above = i > 0 && lines[i - 1].trim().starts_with('#');
        assert!(
            t.contains('#') || above,
            "deploy/sluice.toml line {}: `{t}` has no comment saying what it means",
            i + 1
        );
    }
    // The README's configuration table names every key.
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Configuration reference")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a configuration reference");
    let all = keys::known_keys();
    let is_table = |k: &str| all.iter().any(|o| o.starts_with(&format!("{k}.")));
    let undocumented: Vec<_> = all
        .iter()
        .filter(|k| !is_table(k))
        .filter(|k| {
            let leaf = k.rsplit('.').next().unwrap_or(k);
            !(section.contains(&format!("`{k}`"))
                || section.contains(&format!("`{leaf}`"))
                || section.contains(&format!(".{leaf}`")))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "keys missing from the README's configuration reference: {undocumented:?}"
    );
}

#[test]
fn default_country_must_be_a_country_with_a_plan() {
    let text = r#"
        [[tenants]]
        name = "a"
        token = "long-enough-token"
        default_country = "ZZ"
    "#;
    let err = Config::parse(text, Path::new("c.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("default_country"), "{err}");
    let ok = text.replace("ZZ", "us");
    let c = Config::parse(&ok, Path::new("c.toml")).unwrap();
    assert_eq!(
        c.tenants[0].default_country().map(|c| c.to_string()),
        Some("US".into())
    );
}

#[test]
fn mmsc_retry_waits_must_be_positive_and_ordered() {
    let p = problems(
        r#"
        [[mmsc]]
        name = "zero"
        url = "http://mmsc"
        retry_min = "0s"
        [[mmsc]]
        name = "upside"
        url = "http://mmsc"
        retry_min = "1m"
        retry_max = "1s"
        [[mmsc]]
        name = "fine"
        url = "http://mmsc"
        retry_min = "50ms"
        retry_max = "5s"
    "#,
    )
    .join("\n");
    assert!(
        p.contains("mmsc \"zero\": retry_min must be above 0"),
        "{p}"
    );
    assert!(
        p.contains("mmsc \"upside\": retry_min exceeds retry_max"),
        "{p}"
    );
    assert!(!p.contains("\"fine\""), "{p}");
}

#[test]
fn grpc_door_settings_have_defaults_and_are_checked() {
    let c = Config::parse("", Path::new("empty.toml")).unwrap();
    assert_eq!(c.grpc.listen, None);
    assert_eq!(c.grpc.max_message_bytes, 4 << 20);
    assert_eq!(c.grpc.max_concurrent_streams, 128);
    let example = include_str!("../../deploy/sluice.toml");
    let c = Config::parse(example, Path::new("deploy/sluice.toml")).unwrap();
    assert!(c.grpc.listen.is_some() && c.grpc.tls().is_some());
    let text = r#"
        [grpc]
        listen = "127.0.0.1:9704"
        tls_key_file = "k.pem"
        max_connections = 0
        max_message_bytes = 1000
        max_concurrent_streams = 0
        [[tenants]]
        name = "a"
        token = "same-token-0001"
        [[tenants]]
        name = "b"
        token = "same-token-0001"
    "#;
    let err = Config::parse(text, Path::new("bad.toml"))
        .unwrap_err()
        .to_string();
    for want in [
        "grpc: tls_key_file is set without tls_cert_file",
        "grpc.max_connections must be at least 1",
        "grpc.max_message_bytes must be at least 64 KiB",
        "grpc.max_concurrent_streams must be at least 1",
        "with grpc.listen a token must name one tenant",
    ] {
        assert!(err.contains(want), "{want:?} missing from:\n{err}");
    }
}

#[test]
fn webhook_endpoints_are_checked_at_load() {
    let p = problems(
        r#"
        [[tenants]]
        name = "acme"
        token = "acme-token-000001"
        stream_events = false
        [[tenants.webhooks]]
        name = "crm"
        url = "ftp://hooks.example.com/x"
        secret = "short"
        events = []
        concurrency = 0
        batch = 5000
        retry_min = "1m"
        retry_max = "1s"
        [[tenants.webhooks]]
        name = "crm"
        url = "https://hooks.example.com/sluice"
        secret = "0123456789abcdef"
        events = ["delivery", "opt_out"]
    "#,
    )
    .join("\n");
    for want in [
        "url must be http://host/… or https://host/…",
        "secret must be at least 16 characters",
        "events must name at least one kind",
        "concurrency must be 1 to 256",
        "batch must be 1 to 1000",
        "retry_min must be above 0 and not exceed retry_max",
        "names must be unique and not empty",
    ] {
        assert!(p.contains(want), "{want}: {p}");
    }
    assert_eq!(
        p.matches("tenant \"acme\" webhook \"crm\"").count(),
        7,
        "{p}"
    );
    let bad_kind = toml::from_str::<Config>(
        r#"
        [[tenants]]
        name = "acme"
        token = "acme-token-000001"
        [[tenants.webhooks]]
        name = "crm"
        url = "https://hooks.example.com/sluice"
        secret = "0123456789abcdef"
        events = ["clicks"]
    "#,
    )
    .unwrap_err()
    .to_string();
    assert!(bad_kind.contains("unknown variant `clicks`"), "{bad_kind}");
}

#[test]
fn fallback_after_is_a_number_of_tries_or_a_duration() {
    use crate::settings::FallbackAfter;
    #[derive(serde::Deserialize)]
    struct T {
        f: FallbackAfter,
    }
    let f = |v: &str| toml::from_str::<T>(&format!("f = {v}")).map(|t| t.f);
    assert_eq!(f("0").unwrap(), FallbackAfter::Off);
    assert_eq!(f("3").unwrap(), FallbackAfter::Tries(3));
    assert_eq!(
        f("\"10m\"").unwrap(),
        FallbackAfter::Waited(std::time::Duration::from_secs(600))
    );
    assert_eq!(f("\"0s\"").unwrap(), FallbackAfter::Off);
    assert!(f("\"soon\"").is_err());
    assert!(f("-1").is_err());
}

// === secrets from the environment and files ===

/// A test's environment and files for `env:`/`file:` references.
#[derive(Default)]
struct FakeSource {
    vars: std::collections::HashMap<&'static str, &'static str>,
    files: std::collections::HashMap<&'static str, &'static [u8]>,
}

impl secrets::SecretSource for FakeSource {
    fn var(&self, name: &str) -> Option<std::ffi::OsString> {
        self.vars.get(name).map(|v| (*v).into())
    }

    fn read(&self, path: &Path, _limit: u64) -> std::io::Result<Vec<u8>> {
        self.files
            .get(path.to_str().unwrap())
            .map(|b| b.to_vec())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

const WITH_REFERENCES: &str = r#"
    [http]
    admin_token = "file:/run/secrets/admin"
    [[tenants]]
    name = "acme"
    token = "env:ACME_TOKEN"
    smpp_system_id = "acme"
    smpp_password = "env:ACME_SMPP"
    [[tenants.webhooks]]
    name = "crm"
    url = "https://hooks.example/x"
    secret = "file:/run/secrets/crm"
    [[carriers]]
    name = "c"
    [[carriers.binds]]
    address = "127.0.0.1:2775"
    system_id = "sluice"
    password = "literal1"
"#;

#[test]
fn secrets_are_read_from_the_environment_and_files() {
    let source = FakeSource {
        vars: [
            ("ACME_TOKEN", "acme-token-from-env"),
            ("ACME_SMPP", "pw8chars"),
        ]
        .into(),
        files: [
            ("/run/secrets/admin", &b"operator-admin-token-0001\n"[..]),
            ("/run/secrets/crm", &b"whsec_from_a_file_0123\r\n"[..]),
        ]
        .into(),
    };
    let c = Config::parse_with(WITH_REFERENCES, Path::new("s.toml"), &source).unwrap();
    let t = &c.tenants[0];
    assert_eq!(t.token.expose(), "acme-token-from-env");
    assert_eq!(t.smpp_password.as_ref().unwrap().expose(), "pw8chars");
    // One trailing line break dropped, LF or CRLF.
    assert_eq!(t.webhooks[0].secret.expose(), "whsec_from_a_file_0123");
    assert_eq!(
        c.http.admin_token.as_ref().unwrap().expose(),
        "operator-admin-token-0001"
    );
    // A literal stays itself.
    assert_eq!(c.carriers[0].binds[0].password.expose(), "literal1");
    // Resolved values are secrets like any other.
    let dump = format!("{c:?}");
    assert!(!dump.contains("acme-token-from-env"), "{dump}");
    assert!(!dump.contains("operator-admin-token-0001"), "{dump}");
}

#[test]
fn an_unresolvable_secret_names_its_key_and_never_a_value() {
    let source = FakeSource {
        // ACME_TOKEN unset, ACME_SMPP empty, the admin file readable, the
        // webhook's file missing.
        vars: [("ACME_SMPP", "")].into(),
        files: [("/run/secrets/admin", &b"operator-admin-token-0001"[..])].into(),
    };
    let err = Config::parse_with(WITH_REFERENCES, Path::new("s.toml"), &source)
        .unwrap_err()
        .to_string();
    for needle in [
        "tenant \"acme\": `tenants.token` = \"env:ACME_TOKEN\": environment variable ACME_TOKEN is not set",
        "`tenants.smpp_password` = \"env:ACME_SMPP\": environment variable ACME_SMPP is empty",
        "tenant \"acme\" webhook \"crm\": `tenants.webhooks.secret` = \"file:/run/secrets/crm\": cannot read /run/secrets/crm",
    ] {
        assert!(err.contains(needle), "{needle:?} missing in {err}");
    }
    assert!(err.starts_with("s.toml"), "{err}");
    assert!(err.contains("(3 problems)"), "{err}");
    // The secret that did resolve, and the literal, are not shown.
    assert!(!err.contains("operator-admin-token-0001"), "{err}");
    assert!(!err.contains("literal1"), "{err}");
}

#[test]
fn a_secret_file_must_be_text_short_and_not_empty() {
    let text = "[http]\nadmin_token = \"file:/s/a\"\n";
    for (bytes, why) in [
        (&b"\n"[..], "/s/a is empty"),
        (&b"\xff\xfe-not-utf8"[..], "/s/a is not UTF-8 text"),
    ] {
        let source = FakeSource {
            files: [("/s/a", bytes)].into(),
            ..FakeSource::default()
        };
        let err = Config::parse_with(text, Path::new("s.toml"), &source)
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{why:?} missing in {err}");
    }
    // The real file system: a file past the limit is refused unread.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; secrets::MAX_FILE_BYTES as usize + 1]).unwrap();
    let ok = dir.path().join("ok");
    std::fs::write(&ok, "operator-admin-token-0001\n").unwrap();
    let err = Config::parse(
        &format!("[http]\nadmin_token = \"file:{}\"\n", big.display()),
        Path::new("s.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("longer than 64 KiB"), "{err}");
    let c = Config::parse(
        &format!("[http]\nadmin_token = \"file:{}\"\n", ok.display()),
        Path::new("s.toml"),
    )
    .unwrap();
    assert_eq!(
        c.http.admin_token.unwrap().expose(),
        "operator-admin-token-0001"
    );
}

#[test]
fn an_unresolved_reference_is_one_problem_not_more() {
    // The reference is longer than an SMPP password may be; only the
    // missing variable is reported.
    let text = r#"
        [[carriers]]
        name = "c"
        [[carriers.binds]]
        address = "127.0.0.1:2775"
        system_id = "sluice"
        password = "env:A_LONG_VARIABLE_NAME"
    "#;
    let err = Config::parse_with(text, Path::new("s.toml"), &FakeSource::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("(1 problem)"), "{err}");
    assert!(err.contains("A_LONG_VARIABLE_NAME is not set"), "{err}");
}

#[test]
fn checks_run_on_resolved_secrets() {
    // The token's reference is long enough; the value it names is not.
    let text = "[[tenants]]\nname = \"a\"\ntoken = \"env:A_TOKEN_THAT_IS_LONG\"\n";
    let source = FakeSource {
        vars: [("A_TOKEN_THAT_IS_LONG", "short")].into(),
        ..FakeSource::default()
    };
    let err = Config::parse_with(text, Path::new("s.toml"), &source)
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 8"), "{err}");
}

#[test]
fn every_secret_key_may_be_a_reference() {
    // The walk that resolves references visits every key of type Secret
    // (deploy/sluice.toml has every key).
    let text = include_str!("../../deploy/sluice.toml");
    let mut c = Config::parse(text, Path::new("deploy/sluice.toml")).unwrap();
    let walked: std::collections::BTreeSet<String> = secrets::present_keys(&mut c)
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(walked, keys::secret_keys());
}

#[test]
fn log_format_is_text_or_json() {
    let c = Config::parse("", Path::new("l.toml")).unwrap();
    assert_eq!(c.log_format, LogFormat::Text);
    let c = Config::parse("log_format = \"json\"\n", Path::new("l.toml")).unwrap();
    assert_eq!(c.log_format, LogFormat::Json);
    let err = Config::parse("log_format = \"xml\"\n", Path::new("l.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 1") && err.contains("log_format"),
        "{err}"
    );
}
