use super::*;

#[test]
fn every_struct_field_is_traced() {
    let (keys, _) = trace().unwrap_or_else(|(_, e)| panic!("tracing stopped: {e}"));
    for k in [
        "node_id",
        "ingest.listen",
        "journal.path",
        "http.admin_token",
        "receipts.receipt_grace",
        "receipts.multipart_grace",
        "tls.ca_file",
        "tenants.default_country",
        "tenants.programs.keywords",
        "carriers.binds.window",
        "carriers.binds.reconnect_max",
        "routes.prefix",
        "senders.overrides.brand",
        "senders.brands.daily_cap",
        "mms.public_url",
        "mmsc.callback_listen",
        "mmsc.version",
    ] {
        assert!(keys.contains(k), "{k} missing from {keys:?}");
    }
    // Tables are keys too; array indices and free-form children are not.
    assert!(keys.contains("carriers.binds"));
    assert!(!keys.iter().any(|k| k.contains('[') || k.starts_with('.')));
    assert!(
        !keys
            .iter()
            .any(|k| k.starts_with("tenants.programs.keywords."))
    );
    assert!(is_free_form("tenants.programs.keywords"));
}

#[test]
fn secret_keys_are_the_secret_typed_fields() {
    let (keys, secrets) = trace().unwrap_or_else(|(_, e)| panic!("tracing stopped: {e}"));
    for k in [
        "http.admin_token",
        "tenants.token",
        "tenants.admin_token",
        "tenants.smpp_password",
        "tenants.webhooks.secret",
        "carriers.binds.password",
        "mmsc.password",
        "mmsc.callback_password",
    ] {
        assert!(secrets.contains(k), "{k} missing from {secrets:?}");
    }
    assert!(secrets.is_subset(&keys));
    // Names and plain strings are not secrets.
    assert!(!secrets.contains("tenants.name"));
    assert!(!secrets.contains("mmsc.username"));
}
