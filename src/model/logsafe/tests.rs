use super::*;

fn show(v: LogSafe<'_>) -> String {
    v.to_string()
}

#[test]
fn plain_values_are_shown_as_they_are() {
    assert_eq!(show(LogSafe::new("acme")), "acme");
    assert_eq!(show(LogSafe::new("+14155550100")), "+14155550100");
    assert_eq!(show(LogSafe::new("café-ÜΩ")), "café-ÜΩ");
    assert_eq!(show(LogSafe::bytes(b"abc123")), "abc123");
}

#[test]
fn anything_that_could_forge_a_line_or_a_field_is_quoted_and_escaped() {
    assert_eq!(
        show(LogSafe::new("evil\n2025-01-01T00:00:00Z  INFO fake: x")),
        r#""evil\n2025-01-01T00:00:00Z  INFO fake: x""#
    );
    assert_eq!(show(LogSafe::new("a\r\nb\tc")), r#""a\r\nb\tc""#);
    assert_eq!(show(LogSafe::new("acme conn=5")), r#""acme conn=5""#);
    assert_eq!(show(LogSafe::new(r#"a"b\c"#)), r#""a\"b\\c""#);
    assert_eq!(show(LogSafe::new("")), r#""""#);
    // Escape sequences, DEL, C1 controls, Unicode line separators, bidi
    // overrides, zero-width characters.
    assert_eq!(
        show(LogSafe::new(
            "\u{1b}[31m\u{7f}\u{85}\u{2028}\u{202e}\u{200b}x"
        )),
        r#""\u{1b}[31m\u{7f}\u{85}\u{2028}\u{202e}\u{200b}x""#
    );
    // Bytes that are not UTF-8.
    assert_eq!(show(LogSafe::bytes(b"id\xff\xfe\n")), r#""id\xff\xfe\n""#);
}

#[test]
fn long_values_are_cut_at_the_cap_and_say_their_size() {
    let name = "a".repeat(1 << 20);
    let shown = show(LogSafe::new(&name));
    assert_eq!(
        shown,
        format!("\"{}…(1048576 bytes)\"", "a".repeat(DEFAULT_CAP))
    );
    let shown = show(LogSafe::new("abcdef").with_cap(3));
    assert_eq!(shown, r#""abc…(6 bytes)""#);
    // Exactly at the cap: not cut.
    assert_eq!(show(LogSafe::new("abc").with_cap(3)), "abc");
    // A worst case of escapes stays bounded: at most ~10 bytes a character.
    let nasty = "\u{202e}".repeat(1 << 18);
    assert!(show(LogSafe::new(&nasty)).len() < DEFAULT_CAP * 10 + 40);
}

#[test]
fn displayed_values_are_escaped_and_cut_too() {
    struct Quoting(String);
    impl fmt::Display for Quoting {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "cannot parse {:?} here: {}", 7, self.0)
        }
    }
    let e = Quoting("x\ny".into());
    assert_eq!(show(LogSafe::display(&e)), r#""cannot parse 7 here: x\ny""#);
    let e = Quoting("z".repeat(5000));
    let shown = show(LogSafe::display(&e).with_cap(10));
    assert_eq!(shown, r#""cannot par…(5021 bytes)""#);
}

#[test]
fn debug_is_as_safe_as_display() {
    assert_eq!(format!("{:?}", LogSafe::new("a\nb")), r#""a\nb""#);
}
