use super::*;

const OUT: Option<Keyword> = Some(Keyword::OptOut { all: false });
const ALL: Option<Keyword> = Some(Keyword::OptOut { all: true });
const IN: Option<Keyword> = Some(Keyword::OptIn);
const HELP: Option<Keyword> = Some(Keyword::Help);

#[test]
fn default_keywords_table() {
    let k = Keywords::new();
    let cases: &[(&str, Option<Keyword>)] = &[
        // every default word
        ("STOP", OUT),
        ("STOPALL", ALL),
        ("STOP ALL", ALL),
        ("UNSUBSCRIBE", OUT),
        ("CANCEL", OUT),
        ("END", OUT),
        ("QUIT", OUT),
        ("REVOKE", OUT),
        ("OPTOUT", OUT),
        ("OPT-OUT", OUT),
        ("START", IN),
        ("UNSTOP", IN),
        ("YES", IN),
        ("HELP", HELP),
        ("INFO", HELP),
        // case
        ("stop", OUT),
        ("Stop", OUT),
        ("sToP", OUT),
        ("Stop All", ALL),
        ("opt-out", OUT),
        ("Unsubscribe", OUT),
        ("help", HELP),
        // surrounding whitespace and punctuation
        (" Stop. ", OUT),
        ("stop!!", OUT),
        ("¡STOP!", OUT),
        ("¿Stop?", OUT),
        ("\"stop\"", OUT),
        ("'STOP'", OUT),
        ("(stop)", OUT),
        ("...stop...", OUT),
        ("\tSTOP\r\n", OUT),
        ("«STOP»", OUT),
        ("“Stop”", OUT),
        ("STOP…", OUT),
        ("STOP‼️", OUT),
        ("STOP 🛑", OUT),
        ("✋ stop", OUT),
        ("\u{200B}STOP\u{FEFF}", OUT),
        ("\u{3000}STOP。", OUT),
        ("STOP！", OUT),
        ("-STOP-", OUT),
        ("*HELP*", HELP),
        ("yes!", IN),
        // inner whitespace collapses, inner dashes are unified
        ("STOP   ALL", ALL),
        ("stop\tall", ALL),
        (" stop \n all ! ", ALL),
        ("OPT–OUT", OUT),
        ("opt—out", OUT),
        // fullwidth ASCII
        ("ＳＴＯＰ", OUT),
        ("ｓｔｏｐ　ａｌｌ", ALL),
        // not keywords
        ("Stop please", None),
        ("please stop", None),
        ("STOPP", None),
        ("STO P", None),
        ("S T O P", None),
        ("STOP STOP", None),
        ("STOP, ALL", None),
        ("OPT OUT", None),
        ("OPTOUT2", None),
        ("", None),
        ("   ", None),
        ("!!!", None),
        ("🛑", None),
        ("yes please", None),
        ("What is this?", None),
    ];
    for &(text, want) in cases {
        assert_eq!(k.classify(text), want, "{text:?}");
    }
}

#[test]
fn long_messages_are_not_keywords() {
    let k = Keywords::new();
    let long = "stop ".repeat(1_000);
    assert_eq!(long.chars().count(), 5_000);
    assert_eq!(k.classify(&long), None);
    let spaces = format!("STOP{}ALL", " ".repeat(5_000));
    assert_eq!(k.classify(&spaces), ALL);
    let padded = format!("{}STOP{}", "!".repeat(2_500), ".".repeat(2_500));
    assert_eq!(k.classify(&padded), OUT);
    let unicode = "停".repeat(5_000);
    assert_eq!(k.classify(&unicode), None);
    let x = "x".repeat(5_000);
    assert_eq!(k.classify(&x), None);
}

#[test]
fn unicode_is_handled_without_panics() {
    let k = Keywords::new();
    for text in [
        "é",
        "ß",
        "İ",
        "ﬀ",
        "\u{0301}",
        "a\u{0301}",
        "🛑🛑",
        "\u{10FFFF}",
        "\0",
        "STOP\0",
        "Σ",
        "ΐ",
        "\u{202E}STOP",
        "ŞTOP",
    ] {
        let _ = k.classify(text);
        let _ = normalize(text);
    }
    // A NUL or right-to-left mark at the edges is trimmed.
    assert_eq!(k.classify("STOP\0"), OUT);
    assert_eq!(k.classify("\u{202E}STOP"), OUT);
    // Long s folds to s.
    assert_eq!(k.classify("ſtop"), OUT);
}

#[test]
fn per_program_words_in_any_language() {
    let k = Keywords::new()
        .with("ARRET", Keyword::OptOut { all: false })
        .unwrap()
        .with("ARRÊT", Keyword::OptOut { all: false })
        .unwrap()
        .with("AIDE", Keyword::Help)
        .unwrap()
        .with("СТОП", Keyword::OptOut { all: false })
        .unwrap()
        .with("停止", Keyword::OptOut { all: false })
        .unwrap()
        .with("STRASSE", Keyword::Help)
        .unwrap()
        .with("Stop please", Keyword::OptOut { all: false })
        .unwrap()
        .with("ΤΕΛΟΣ", Keyword::OptOut { all: false })
        .unwrap();
    assert_eq!(k.classify("arret"), OUT);
    assert_eq!(k.classify("Arrêt !"), OUT);
    assert_eq!(k.classify("ARRÊT"), OUT);
    assert_eq!(k.classify("aide?"), HELP);
    assert_eq!(k.classify("стоп"), OUT);
    assert_eq!(k.classify(" Стоп! "), OUT);
    assert_eq!(k.classify("「停止」"), OUT);
    assert_eq!(k.classify("straße"), HELP);
    assert_eq!(k.classify("STOP  PLEASE!"), OUT);
    assert_eq!(k.classify("τελος"), OUT);
    assert_eq!(k.classify("τέλος"), None, "accents are not stripped");
    // Defaults still there.
    assert_eq!(k.classify("stop"), OUT);
    // The matched word is reported for the opt-out proof.
    let m = k.matched("¡Стоп!").unwrap();
    assert_eq!(m.word, "стоп");
    assert_eq!(k.matched("Stop All").unwrap().word, "stop all");
    // Other programs keep the defaults only.
    assert_eq!(Keywords::new().classify("arret"), None);
}

#[test]
fn long_configured_words_use_the_slow_path() {
    let phrase = "please do not send me any more messages from this program thank you";
    assert!(phrase.len() > STACK);
    let k = Keywords::new()
        .with(phrase, Keyword::OptOut { all: false })
        .unwrap();
    assert_eq!(k.classify(&phrase.to_uppercase()), OUT);
    assert_eq!(k.classify("stop"), OUT);
    assert_eq!(k.classify(&"stop ".repeat(1_000)), None);
}

#[test]
fn configuration_errors() {
    let mut k = Keywords::new();
    assert!(matches!(
        k.add(" !! ", Keyword::Help),
        Err(KeywordError::Empty(_))
    ));
    assert!(matches!(
        k.add("", Keyword::Help),
        Err(KeywordError::Empty(_))
    ));
    assert!(matches!(
        k.add("stop", Keyword::Help),
        Err(KeywordError::WeakensOptOut { .. })
    ));
    assert!(matches!(
        k.add("Opt-Out", Keyword::OptIn),
        Err(KeywordError::WeakensOptOut { .. })
    ));
    assert_eq!(k.classify("stop"), OUT);
    // Strengthening is allowed: YES as an opt-out, STOP as stop-all.
    k.add("yes", Keyword::OptOut { all: false }).unwrap();
    assert_eq!(k.classify("YES"), OUT);
    k.add("STOP", Keyword::OptOut { all: true }).unwrap();
    assert_eq!(k.classify("stop"), ALL);
    // Redefining a non-opt-out default is allowed.
    k.add("info", Keyword::OptIn).unwrap();
    assert_eq!(k.classify("INFO"), IN);
}

#[test]
fn keyword_kinds_parse_from_config() {
    for kw in [
        Keyword::OptOut { all: false },
        Keyword::OptOut { all: true },
        Keyword::OptIn,
        Keyword::Help,
    ] {
        assert_eq!(kw.as_str().parse::<Keyword>(), Ok(kw));
        assert_eq!(kw.to_string(), kw.as_str());
    }
    assert_eq!(
        "STOP".parse::<Keyword>(),
        Ok(Keyword::OptOut { all: false })
    );
    assert!("maybe".parse::<Keyword>().is_err());
}

#[test]
fn empty_table_matches_nothing() {
    let k = Keywords::empty();
    assert_eq!(k.classify("STOP"), None);
    assert_eq!(k.classify(""), None);
}

#[test]
fn normalize_examples() {
    assert_eq!(normalize(" ¡Stop  All! ").as_deref(), Some("stop all"));
    assert_eq!(normalize("ＯＰＴ－ＯＵＴ").as_deref(), Some("opt-out"));
    assert_eq!(normalize("Straße").as_deref(), Some("strasse"));
    assert_eq!(normalize("?!"), None);
}
