use super::*;

const THREE_MISTAKES_AND_A_TYPO: &str = r#"node_id = "n1"

[ingest]
listen_adr = "127.0.0.1:7700"

[[tenants]]
name = "acme"
token = "short"

[[carriers]]
name = "c"

[[carriers.binds]]
address = "127.0.0.1:2775"
system_id = "sluice"
password = "pw"
window = "big"

[[routes]]
prefix = "+1"
carriers = ["nope"]
this line is not TOML
"#;

#[test]
fn every_problem_is_reported_in_one_run() {
    let problems = check(THREE_MISTAKES_AND_A_TYPO).unwrap_err();
    let all = problems.join("\n");
    let expect = [
        "line 4: unknown key `ingest.listen_adr`; did you mean `ingest.listen`?",
        "line 17: invalid type: string \"big\", expected u32",
        "line 22: ",
        "tenant \"acme\": token must have at least 8 characters",
        "route \"+1\" names unknown carrier \"nope\"",
    ];
    for e in expect {
        assert!(all.contains(e), "{e:?} missing in:\n{all}");
    }
    assert_eq!(problems.len(), 5, "{all}");
    // Parse problems come in file order, before the semantic ones.
    assert!(problems[0].starts_with("line 4:"), "{all}");
    assert!(problems[1].starts_with("line 17:"), "{all}");
    assert!(problems[2].starts_with("line 22:"), "{all}");
}

#[test]
fn a_key_in_the_wrong_table_is_found_by_its_name() {
    let text = "[ingest]\nreceipt_grace = \"2m\"\n";
    let problems = check(text).unwrap_err();
    assert_eq!(
        problems,
        vec![
            "line 2: unknown key `ingest.receipt_grace`; did you mean `receipts.receipt_grace`?"
                .to_owned()
        ]
    );
}

#[test]
fn nested_tables_and_arrays_name_their_keys() {
    let text = r#"
[[carriers]]
name = "c"
[[carriers.binds]]
address = "127.0.0.1:2775"
system_id = "sluice"
password = "pw"
windw = 8
"#;
    let problems = check(text).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .contains("unknown key `carriers.binds.windw`; did you mean `carriers.binds.window`?"),
        "{problems:?}"
    );
}

#[test]
fn missing_keys_are_reported() {
    let text = "[[tenants]]\nname = \"acme\"\n";
    let problems = check(text).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("missing field `token`")),
        "{problems:?}"
    );
}

#[test]
fn a_clean_file_passes() {
    let c = check("node_id = \"x\"\n[receipts]\nmultipart_grace = \"5s\"\n").unwrap();
    assert_eq!(
        c.receipts.multipart_grace,
        std::time::Duration::from_secs(5)
    );
    check(include_str!("../../../deploy/sluice.toml")).unwrap();
    check("").unwrap();
}

#[test]
fn garbage_does_not_panic() {
    for text in [
        "[",
        "[[",
        "a = ",
        "\u{feff}x = 1",
        "é = 1\n[é]\n",
        "a = \"unterminated\nb = 2\n",
        "[ingest]\nlisten = 5\nlisten = 6\n",
        "a = [1,\n2,\n",
    ] {
        let _ = check(text);
    }
}
