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
