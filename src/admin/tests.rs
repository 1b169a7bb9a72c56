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
