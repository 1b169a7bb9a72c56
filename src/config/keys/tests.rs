use super::*;

#[test]
fn every_struct_field_is_traced() {
    let keys = trace().unwrap_or_else(|(_, e)| panic!("tracing stopped: {e}"));
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
