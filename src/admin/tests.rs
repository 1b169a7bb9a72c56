use super::*;

#[test]
fn bearer_scheme_is_case_insensitive() {
    assert_eq!(bearer("Bearer abc"), Some("abc"));
    assert_eq!(bearer("bearer abc"), Some("abc"));
    assert_eq!(bearer("BEARER   abc  "), Some("abc"));
    assert_eq!(bearer("Bearer"), None);
    assert_eq!(bearer("Bearer "), None);
    assert_eq!(bearer("Basic abc"), None);
    assert_eq!(bearer("Bearerabc"), None);
}

#[test]
fn logged_paths_are_capped() {
    let long = "é".repeat(500);
    assert_eq!(for_log(&long).chars().count(), 120);
    assert_eq!(for_log("/admin/x"), "/admin/x");
}

#[test]
fn history_queries_name_one_lookup_and_read_a_plus_sent_as_a_space() {
    use crate::history::Query as Q;
    let q = |client_ref: Option<&str>,
             carrier_id: Option<&str>,
             to: Option<&str>,
             since: Option<&str>| {
        history_query(
            &HistoryQuery {
                client_ref: client_ref.map(String::from),
                carrier_id: carrier_id.map(String::from),
                to: to.map(String::from),
                since: since.map(String::from),
                until: None,
            },
            10_000_000,
        )
    };
    assert_eq!(
        q(Some("acme:order:1"), None, None, None),
        Ok(Q::ClientRef {
            tenant: "acme".into(),
            client_ref: "order:1".into()
        })
    );
    assert_eq!(
        q(None, Some("smsc-a:00AB12"), None, None),
        Ok(Q::CarrierId {
            carrier: "smsc-a".into(),
            id: "ab12".into()
        })
    );
    // `+` unencoded in a query string arrives as a space.
    assert_eq!(
        q(None, None, Some(" 14155550100"), Some("1h")),
        Ok(Q::Recipient {
            to: 14155550100,
            since_ms: 10_000_000 - 3_600_000,
            until_ms: 10_000_000
        })
    );
    assert!(q(None, None, Some("+1415"), None).is_err());
    assert!(q(None, None, Some("+14155550100"), Some("soon")).is_err());
    assert!(q(Some("no-colon"), None, None, None).is_err());
    assert!(q(Some("a:b"), Some("c:d"), None, None).is_err());
    assert!(q(None, None, None, None).is_err());
}
