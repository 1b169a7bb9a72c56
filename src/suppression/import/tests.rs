use super::*;

fn n(s: &str) -> Msisdn {
    Msisdn::parse(s).unwrap()
}

fn read(input: &[u8]) -> ImportReport {
    read_all(input, ImportOptions::default(), |_| {}).unwrap()
}

fn bad(report: &ImportReport) -> Vec<(u64, &str, BadReason)> {
    report
        .bad
        .iter()
        .map(|b| (b.line, b.raw.as_str(), b.reason.clone()))
        .collect()
}

#[test]
fn one_column_without_header() {
    let r = read(b"+14155550100\n14155550101\n  +447700900123  \n");
    assert_eq!(
        r.unscoped,
        vec![n("+14155550100"), n("+14155550101"), n("+447700900123")]
    );
    assert!(r.scoped.is_empty());
    assert!(r.bad.is_empty());
    assert_eq!(r.header, None);
    assert_eq!(r.progress.rows, 3);
    assert_eq!(r.progress.lines, 3);
}

#[test]
fn header_and_scopes() {
    let input = "\u{FEFF}number,scope\r\n\
                 +14155550100,program:acme:12345\r\n\
                 +14155550101,\r\n\
                 +14155550102, program:acme:12345 \r\n\
                 \"+14155550103\",\"brand, \"\"x\"\"\"\r\n\
                 +14155550104\r\n\
                 \r\n\
                 +14155550105,,,\r\n";
    let r = read(input.as_bytes());
    assert_eq!(
        r.header,
        Some(vec!["number".to_owned(), "scope".to_owned()])
    );
    assert!(r.bad.is_empty(), "{:?}", r.bad);
    assert_eq!(
        r.unscoped,
        vec![n("+14155550101"), n("+14155550104"), n("+14155550105")]
    );
    assert_eq!(
        r.scoped.get("program:acme:12345"),
        Some(&vec![n("+14155550100"), n("+14155550102")])
    );
    assert_eq!(r.scoped.get("brand, \"x\""), Some(&vec![n("+14155550103")]));
    assert_eq!(r.progress.rows, 6);
    assert_eq!(r.progress.lines, 8);
}

#[test]
fn malformed_lines_are_reported_with_exact_line_numbers() {
    let mut input = Vec::new();
    input.extend_from_slice(b"msisdn\n"); // 1 header
    input.extend_from_slice(b"+14155550100\n"); // 2 ok
    input.extend_from_slice(b"+1 415 555 0101\n"); // 3 spaces inside
    input.extend_from_slice(b"\"+14155550102,prog\n"); // 4 unbalanced quote
    input.extend_from_slice(b"+14155550103\n"); // 5 ok: the quote did not swallow it
    input.extend_from_slice(b"+1415\xFF5550104\n"); // 6 invalid UTF-8
    input.extend_from_slice(b"+14155550105,a,b\n"); // 7 too many columns
    input.extend_from_slice(b"04155550106\n"); // 8 leading zero
    input.extend_from_slice(b"1.41555E+10\n"); // 9 spreadsheet form
    input.extend_from_slice(b"\n"); // 10 blank
    input.extend_from_slice(b",prog\n"); // 11 empty number
    input.extend_from_slice(b"\"+14155550107\"x,prog\n"); // 12 text after quote
    input.extend_from_slice(b"12345\n"); // 13 too short
    input.extend_from_slice(b"(415) 555-0108\n"); // 14 formatted
    input.extend_from_slice(b"+14155550109"); // 15 ok, no final newline
    let r = read(&input);
    assert_eq!(
        r.unscoped,
        vec![n("+14155550100"), n("+14155550103"), n("+14155550109")]
    );
    assert_eq!(r.header, Some(vec!["msisdn".to_owned()]));
    assert_eq!(
        bad(&r),
        vec![
            (
                3,
                "+1 415 555 0101",
                BadReason::Number(MsisdnError::NotDigits)
            ),
            (4, "\"+14155550102,prog", BadReason::UnbalancedQuote),
            (6, "+1415\u{FFFD}5550104", BadReason::InvalidUtf8),
            (7, "+14155550105,a,b", BadReason::TooManyColumns(3)),
            (
                8,
                "04155550106",
                BadReason::Number(MsisdnError::LeadingZero)
            ),
            (9, "1.41555E+10", BadReason::Number(MsisdnError::NotDigits)),
            (11, ",prog", BadReason::Number(MsisdnError::Empty)),
            (12, "\"+14155550107\"x,prog", BadReason::TextAfterQuote),
            (13, "12345", BadReason::Number(MsisdnError::Length(5))),
            (
                14,
                "(415) 555-0108",
                BadReason::Number(MsisdnError::NotDigits)
            ),
        ]
    );
    assert_eq!(r.progress.bad, 10);
    assert_eq!(r.progress.rows, 3);
    assert_eq!(r.progress.lines, 15);
    assert!(r.bad[0].to_string().starts_with("line 3: bad number"));
}

#[test]
fn a_bad_first_line_with_digits_is_not_a_header() {
    let r = read(b"+1415555010x\n+14155550100\n");
    assert_eq!(r.header, None);
    assert_eq!(r.bad.len(), 1);
    assert_eq!(r.bad[0].line, 1);
    assert_eq!(r.unscoped, vec![n("+14155550100")]);
}

#[test]
fn only_the_first_line_can_be_a_header() {
    let r = read(b"\n\nphone\nnumber\n+14155550100\n");
    assert_eq!(r.header, Some(vec!["phone".to_owned()]));
    assert_eq!(
        bad(&r),
        vec![(4, "number", BadReason::Number(MsisdnError::NotDigits))]
    );
}

#[test]
fn over_long_lines_are_skipped_without_buffering() {
    let mut input = b"+14155550100\n".to_vec();
    input.extend(std::iter::repeat_n(b'9', 1_000_000));
    input.extend_from_slice(b"\n+14155550101\n");
    let opts = ImportOptions {
        max_line_bytes: 100,
        ..ImportOptions::default()
    };
    let mut imp = CsvImport::with_options(&input[..], opts);
    let all: Vec<Parsed> = imp.by_ref().map(Result::unwrap).collect();
    assert_eq!(all.len(), 3);
    match &all[1] {
        Parsed::Bad(b) => {
            assert_eq!(b.line, 2);
            assert_eq!(b.reason, BadReason::LineTooLong(1_000_000));
            assert_eq!(b.raw.len(), 100);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        all[2],
        Parsed::Row(Row {
            line: 3,
            number: n("+14155550101"),
            scope: None
        })
    );
    assert_eq!(imp.lines_read(), 3);
    assert_eq!(imp.bytes_read(), input.len() as u64);
}

#[test]
fn iterator_yields_rows_with_lines_and_scopes() {
    let input = b"number,scope\n+14155550100,p1\nbad\n+14155550101\n";
    let rows: Vec<Parsed> = CsvImport::new(&input[..]).map(Result::unwrap).collect();
    assert_eq!(
        rows,
        vec![
            Parsed::Row(Row {
                line: 2,
                number: n("+14155550100"),
                scope: Some("p1".into())
            }),
            Parsed::Bad(BadRow {
                line: 3,
                raw: "bad".into(),
                reason: BadReason::Number(MsisdnError::NotDigits)
            }),
            Parsed::Row(Row {
                line: 4,
                number: n("+14155550101"),
                scope: None
            }),
        ]
    );
}

#[test]
fn io_errors_end_the_iterator() {
    struct Failing(usize);
    impl io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("disk gone"));
            }
            self.0 -= 1;
            let line = b"+14155550100\n";
            buf[..line.len()].copy_from_slice(line);
            Ok(line.len())
        }
    }
    let mut it = CsvImport::new(io::BufReader::new(Failing(2)));
    assert!(matches!(it.next(), Some(Ok(Parsed::Row(_)))));
    assert!(matches!(it.next(), Some(Ok(Parsed::Row(_)))));
    assert!(matches!(it.next(), Some(Err(_))));
    assert!(it.next().is_none());
    assert!(
        read_all(
            io::BufReader::new(Failing(1)),
            ImportOptions::default(),
            |_| {}
        )
        .is_err()
    );
}

#[test]
fn bad_rows_kept_are_capped_but_all_counted() {
    let input = "x1\n".repeat(5_000);
    let opts = ImportOptions {
        max_bad_rows: 10,
        ..ImportOptions::default()
    };
    let r = read_all(input.as_bytes(), opts, |_| {}).unwrap();
    assert_eq!(r.bad.len(), 10);
    assert_eq!(r.progress.bad, 5_000);
    assert_eq!(r.bad[9].line, 10);
}

#[test]
fn raw_is_truncated_on_a_char_boundary() {
    let line = format!("1{}\n", "é".repeat(500));
    let r = read(line.as_bytes());
    assert_eq!(r.bad[0].raw.chars().count(), RAW_CHARS);
}

#[test]
fn million_row_import_is_fast_and_compact() {
    use std::io::Write as _;
    const ROWS: u64 = 1_000_000;
    let mut input = Vec::with_capacity(16 * ROWS as usize);
    writeln!(input, "number").unwrap();
    for i in 0..ROWS {
        // Spread over the NANP range; every 100,000th row is bad.
        if i % 100_000 == 99_999 {
            writeln!(input, "+1-bad-{i}").unwrap();
        } else {
            writeln!(input, "+1{}", 2_000_000_000 + i * 7_919).unwrap();
        }
    }
    let started = tokio::time::Instant::now();
    let mut ticks = Vec::new();
    let r = read_all(&input[..], ImportOptions::default(), |p| {
        ticks.push(p.lines)
    })
    .unwrap();
    let parsed = started.elapsed();
    assert_eq!(r.progress.rows, ROWS - 10);
    assert_eq!(r.bad.len(), 10);
    assert_eq!(r.bad[0].line, 100_001);
    assert_eq!(ticks.len(), 11, "every 100,000 lines and at the end");
    assert_eq!(*ticks.last().unwrap(), ROWS + 1);

    let set = SuppressionSet::new();
    let s = set.scope("global");
    let added = set.bulk_insert(s, r.unscoped.iter().copied());
    let total = started.elapsed();
    assert_eq!(added, ROWS - 10);
    assert_eq!(set.len(), ROWS - 10);
    let per = set.memory_bytes() as f64 / set.len() as f64;
    assert!(per < 9.0, "{per:.2} bytes per entry");
    assert!(set.contains(s, n("+12000000000")));
    // Generous for an unoptimised build on a shared 2-vCPU machine.
    assert!(total.as_secs() < 30, "parse {parsed:?}, total {total:?}");
    eprintln!("1M-row import: parse {parsed:?}, parse+insert {total:?}, {per:.2} B/entry");
}

#[test]
fn export_round_trips_through_import() {
    let set = SuppressionSet::new();
    let s = set.scope("program:acme:12345, \"quoted\"");
    let xs = [n("+14155550100"), n("+447700900123"), n("+819012345678")];
    set.bulk_insert(s, xs);
    let mut out = Vec::new();
    assert_eq!(export_scope(&set, s, &mut out).unwrap(), 3);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.starts_with("number,scope\n"), "{text}");
    let r = read(&out);
    assert_eq!(
        r.header,
        Some(vec!["number".to_owned(), "scope".to_owned()])
    );
    assert!(r.bad.is_empty(), "{:?}", r.bad);
    let mut got = r
        .scoped
        .get("program:acme:12345, \"quoted\"")
        .unwrap()
        .clone();
    got.sort();
    let mut want = xs.to_vec();
    want.sort();
    assert_eq!(got, want);

    let mut plain = Vec::new();
    export(&mut plain, [(xs[0], "p")]).unwrap();
    assert_eq!(plain, b"number,scope\n+14155550100,p\n");
}
