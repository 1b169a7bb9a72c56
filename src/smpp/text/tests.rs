use super::*;

const ALL_CONCATS: [Concat; 4] = [Concat::Udh8, Concat::Udh16, Concat::Sar, Concat::Payload];

fn opts(concat: Concat, gsm7_packed: bool) -> TextOptions {
    TextOptions {
        concat,
        gsm7_packed,
    }
}

fn segments(text: &str) -> usize {
    let n = encode(text, &TextOptions::default(), 7).unwrap().len();
    assert_eq!(plan(text).unwrap().segments, n, "plan and encode disagree");
    n
}

/// The text of each segment after its UDH (no UDH, SAR or single part: all
/// of it).
fn payloads(segs: &[Segment]) -> Vec<&[u8]> {
    segs.iter()
        .map(|s| match parse_udh(&s.short_message) {
            Some((_, off)) if s.esm_class_udhi => &s.short_message[off..],
            _ => &s.short_message[..],
        })
        .collect()
}

/// Small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

// === alphabet ===

#[test]
fn default_alphabet_table_matches_lookup() {
    let mut seen = std::collections::HashSet::new();
    for (i, &c) in GSM7_DEFAULT.iter().enumerate() {
        if i == usize::from(ESC) {
            continue;
        }
        assert_eq!(gsm7_code(c), i as u8, "{c:?} at 0x{i:02X}");
        assert!(seen.insert(c), "{c:?} twice in the table");
    }
    assert_eq!(seen.len(), 127);
    for (code, c) in GSM7_EXTENSION {
        assert_eq!(gsm7_code(c), EXT | code, "extension {c:?}");
    }
}

#[test]
fn default_alphabet_has_the_gsm_characters() {
    let expected = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                    ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    let bytes: Vec<u8> = (0u8..128).filter(|&b| b != ESC).collect();
    assert_eq!(decode(0x00, &bytes, false).unwrap(), expected);
    let a = plan(expected).unwrap();
    assert_eq!(a.encoding, Encoding::Gsm7);
    assert_eq!(a.units, 127);
    // Positions that differ from ASCII.
    assert_eq!(
        decode(0x00, &[0x00, 0x02, 0x11, 0x24, 0x40, 0x60], false).unwrap(),
        "@$_¤¡¿"
    );
}

#[test]
fn extension_characters_take_two_septets() {
    for c in ['^', '{', '}', '\\', '[', '~', ']', '|', '€', '\u{0C}'] {
        let p = plan(&c.to_string()).unwrap();
        assert_eq!((p.encoding, p.units), (Encoding::Gsm7, 2), "{c:?}");
        let seg = &encode(&c.to_string(), &TextOptions::default(), 0).unwrap()[0];
        assert_eq!(seg.short_message[0], ESC, "{c:?}");
        assert_eq!(decode(0, &seg.short_message, false).unwrap(), c.to_string());
    }
    assert_eq!(segments(&"€".repeat(80)), 1);
    assert_eq!(segments(&"€".repeat(81)), 2);
    assert_eq!(
        &encode("€", &TextOptions::default(), 0).unwrap()[0].short_message[..],
        &[0x1B, 0x65]
    );
}

#[test]
fn encoding_choice() {
    for gsm in [
        "hello",
        "@£$¥ ÄÖÑÜ§¿äöñüà ΔΦΓΛΩΠΨΣΘΞ",
        "a{b}c[d]e~f|g^h\\€",
        "",
    ] {
        assert_eq!(plan(gsm).unwrap().encoding, Encoding::Gsm7, "{gsm:?}");
    }
    // Characters outside GSM 03.38: accents it lacks, backtick, tab,
    // Cyrillic, CJK, emoji, lowercase ç (GSM has only Ç).
    for ucs2 in ["ê", "`", "\t", "Ж", "中", "😀", "ç", "hello 😀"] {
        let p = plan(ucs2).unwrap();
        assert_eq!(p.encoding, Encoding::Ucs2, "{ucs2:?}");
        assert_eq!(p.units, ucs2.encode_utf16().count());
    }
    assert_eq!(Encoding::Gsm7.data_coding(), 0x00);
    assert_eq!(Encoding::Ucs2.data_coding(), 0x08);
    let seg = &encode("Ж😀", &TextOptions::default(), 0).unwrap()[0];
    assert_eq!(seg.data_coding, 0x08);
    assert_eq!(
        &seg.short_message[..],
        &[0x04, 0x16, 0xD8, 0x3D, 0xDE, 0x00]
    );
}

// === limits ===

#[test]
fn gsm7_segment_boundaries() {
    assert_eq!(segments(&"a".repeat(160)), 1);
    assert_eq!(segments(&"a".repeat(161)), 2);
    assert_eq!(segments(&"a".repeat(153 * 2)), 2);
    assert_eq!(segments(&"a".repeat(153 * 2 + 1)), 3);
    let segs = encode(&"a".repeat(161), &TextOptions::default(), 0).unwrap();
    assert_eq!(
        payloads(&segs).iter().map(|p| p.len()).collect::<Vec<_>>(),
        [153, 8]
    );
}

#[test]
fn escape_pair_is_never_split() {
    let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
    let segs = encode(&text, &TextOptions::default(), 0).unwrap();
    assert_eq!(segs.len(), 2);
    let p = payloads(&segs);
    assert_eq!(p[0], "a".repeat(152).as_bytes());
    assert_eq!(&p[1][..2], &[0x1B, 0x65]);
    assert_eq!(p[1].len(), 12);
}

#[test]
fn ucs2_segment_boundaries() {
    assert_eq!(segments(&"Ж".repeat(70)), 1);
    assert_eq!(segments(&"Ж".repeat(71)), 2);
    assert_eq!(segments(&"Ж".repeat(67 * 2)), 2);
    assert_eq!(segments(&"Ж".repeat(67 * 2 + 1)), 3);
    // 35 emoji are 70 units: one message; 36 are 72.
    assert_eq!(segments(&"😀".repeat(35)), 1);
    assert_eq!(segments(&"😀".repeat(36)), 2);
}

#[test]
fn surrogate_pair_is_never_split() {
    let text = format!("{}😀{}", "Ж".repeat(66), "Ж".repeat(10));
    let segs = encode(&text, &TextOptions::default(), 0).unwrap();
    assert_eq!(segs.len(), 2);
    let p = payloads(&segs);
    assert_eq!(p[0].len(), 132, "66 units, the emoji would make 68");
    assert_eq!(&p[1][..4], &[0xD8, 0x3D, 0xDE, 0x00]);
    assert!(segs.iter().all(|s| s.short_message.len() <= 140));
}

#[test]
fn udh16_parts_are_one_unit_shorter() {
    let o = opts(Concat::Udh16, false);
    let count = |t: &str| encode(t, &o, 0).unwrap().len();
    assert_eq!(count(&"a".repeat(152 * 2)), 2);
    assert_eq!(count(&"a".repeat(152 * 2 + 1)), 3);
    assert_eq!(count(&"Ж".repeat(66 * 2)), 2);
    assert_eq!(count(&"Ж".repeat(66 * 2 + 1)), 3);
    assert_eq!(plan_with(&"a".repeat(305), &o).unwrap().segments, 3);
}

#[test]
fn sar_parts_are_sized_for_the_air_interface_udh() {
    // The SMSC adds a UDH over the air, so SAR parts leave room for it.
    let o = opts(Concat::Sar, false);
    let segs = encode(&"a".repeat(161), &o, 0).unwrap();
    assert_eq!(
        segs.iter()
            .map(|s| s.short_message.len())
            .collect::<Vec<_>>(),
        [153, 8]
    );
    let segs = encode(&"Ж".repeat(71), &o, 0).unwrap();
    assert_eq!(
        segs.iter()
            .map(|s| s.short_message.len())
            .collect::<Vec<_>>(),
        [134, 8]
    );
}

#[test]
fn max_text_chars() {
    assert_eq!(MAX_TEXT_CHARS, 1600);
    let ok = "a".repeat(1600);
    assert_eq!(segments(&ok), 11);
    // 1,600 emoji: 3,200 units, still accepted; 33 pairs (66 units) per part.
    let p = plan(&"😀".repeat(1600)).unwrap();
    assert_eq!((p.units, p.segments), (3200, 49));

    let err = plan(&"a".repeat(1601)).unwrap_err();
    assert_eq!(
        err,
        TextError::TooLong {
            chars: 1601,
            max: 1600
        }
    );
    assert_eq!(
        err.to_string(),
        "text is too long: 1601 characters, at most 1600 are allowed"
    );
    // Counted in characters, not bytes or units.
    assert!(encode(&"😀".repeat(1601), &TextOptions::default(), 0).is_err());
    for concat in ALL_CONCATS {
        assert!(encode(&"a".repeat(1601), &opts(concat, false), 0).is_err());
    }
}

#[test]
fn empty_text_is_one_empty_segment() {
    for concat in [Concat::Udh8, Concat::Udh16, Concat::Sar] {
        let segs = encode("", &opts(concat, true), 0).unwrap();
        assert_eq!(segs.len(), 1);
        assert!(segs[0].short_message.is_empty());
        assert!(!segs[0].esm_class_udhi);
        assert_eq!(segs[0].data_coding, 0);
    }
    let segs = encode("", &opts(Concat::Payload, false), 0).unwrap();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].message_payload, None);
    assert_eq!(plan("").unwrap().segments, 1);
}

// === concatenation ===

#[test]
fn udh8_header() {
    let segs = encode(&"a".repeat(400), &TextOptions::default(), 0x1234).unwrap();
    assert_eq!(segs.len(), 3);
    for (i, s) in segs.iter().enumerate() {
        assert!(s.esm_class_udhi);
        assert_eq!(s.sar, None);
        assert_eq!(s.message_payload, None);
        assert_eq!(
            &s.short_message[..6],
            &[0x05, 0x00, 0x03, 0x34, 3, i as u8 + 1]
        );
        let (info, off) = parse_udh(&s.short_message).unwrap();
        assert_eq!(
            (info, off),
            (
                ConcatInfo {
                    reference: 0x34,
                    total: 3,
                    seq: i as u8 + 1
                },
                6
            )
        );
    }
}

#[test]
fn udh16_header() {
    let segs = encode(&"Ж".repeat(100), &opts(Concat::Udh16, false), 0x1234).unwrap();
    assert_eq!(segs.len(), 2);
    for (i, s) in segs.iter().enumerate() {
        assert!(s.esm_class_udhi);
        assert_eq!(s.data_coding, 0x08);
        assert_eq!(
            &s.short_message[..7],
            &[0x06, 0x08, 0x04, 0x12, 0x34, 2, i as u8 + 1]
        );
        let (info, off) = parse_udh(&s.short_message).unwrap();
        assert_eq!(
            (info.reference, info.total, info.seq, off),
            (0x1234, 2, i as u8 + 1, 7)
        );
    }
}

#[test]
fn sar_carries_no_udh() {
    let segs = encode(&"a".repeat(200), &opts(Concat::Sar, false), 0xBEEF).unwrap();
    assert_eq!(segs.len(), 2);
    for (i, s) in segs.iter().enumerate() {
        assert!(!s.esm_class_udhi);
        assert_eq!(
            s.sar,
            Some(ConcatInfo {
                reference: 0xBEEF,
                total: 2,
                seq: i as u8 + 1
            })
        );
        assert!(s.short_message.iter().all(|&b| b == b'a'));
    }
}

#[test]
fn payload_is_one_segment() {
    let text = "Ж".repeat(500);
    let o = opts(Concat::Payload, false);
    let segs = encode(&text, &o, 0).unwrap();
    assert_eq!(segs.len(), 1);
    assert_eq!(plan_with(&text, &o).unwrap().segments, 1);
    let s = &segs[0];
    assert!(s.short_message.is_empty());
    assert!(!s.esm_class_udhi);
    assert_eq!(s.sar, None);
    let payload = s.message_payload.as_ref().unwrap();
    assert_eq!(payload.len(), 1000);
    assert_eq!(decode(0x08, payload, false).unwrap(), text);
}

#[test]
fn single_part_carries_no_concatenation() {
    for concat in [Concat::Udh8, Concat::Udh16, Concat::Sar] {
        for text in ["hi", &"a".repeat(160), &"Ж".repeat(70)] {
            let segs = encode(text, &opts(concat, false), 9).unwrap();
            assert_eq!(segs.len(), 1);
            assert!(!segs[0].esm_class_udhi);
            assert_eq!(segs[0].sar, None);
            assert_eq!(
                decode(segs[0].data_coding, &segs[0].short_message, false).unwrap(),
                text
            );
        }
    }
}

// === packed GSM-7 ===

#[test]
fn packed_known_vectors() {
    let o = opts(Concat::Udh8, true);
    let packed = |t: &str| encode(t, &o, 0).unwrap()[0].short_message.to_vec();
    assert_eq!(packed("hello"), [0xE8, 0x32, 0x9B, 0xFD, 0x06]);
    assert_eq!(
        packed("hellohello"),
        [0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37]
    );
    assert_eq!(
        decode(0, &packed("hellohello"), true).unwrap(),
        "hellohello"
    );
    // 160 septets in 140 octets.
    assert_eq!(packed(&"a".repeat(160)).len(), 140);
}

#[test]
fn packed_seven_spare_bits_hold_cr() {
    let o = opts(Concat::Udh8, true);
    let sm = encode("1234567", &o, 0).unwrap()[0].short_message.clone();
    assert_eq!(sm.len(), 7);
    assert_eq!(sm[6] >> 1, CR, "padding septet is CR");
    assert_eq!(decode(0, &sm, true).unwrap(), "1234567");
    // Without the padding rule the decoder would show a trailing '@'.
    assert_eq!(
        decode(0, &[0xE8, 0x32, 0x9B, 0xFD, 0x06], true).unwrap(),
        "hello"
    );
}

#[test]
fn packed_udh_fill_bits() {
    // 8-bit UDH: 6 octets = 48 bits, one fill bit to reach 49 = 7 septets.
    let segs = encode(&"a".repeat(200), &opts(Concat::Udh8, true), 1).unwrap();
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[0].short_message.len(), 140, "153 septets after UDH");
    assert_eq!(segs[0].short_message[6], 0x61 << 1);
    assert_eq!(fill_bits(6), 1);
    let (_, off) = parse_udh(&segs[0].short_message).unwrap();
    assert_eq!(
        decode_user_data(0, &segs[0].short_message, off, true).unwrap(),
        "a".repeat(153)
    );
    // 16-bit UDH: 7 octets = 56 bits, already a septet boundary.
    let segs = encode(&"a".repeat(200), &opts(Concat::Udh16, true), 1).unwrap();
    assert_eq!(segs[0].short_message.len(), 140, "152 septets after UDH");
    assert_eq!(segs[0].short_message[7] & 0x7F, 0x61);
    assert_eq!(fill_bits(7), 0);
}

#[test]
fn packed_cr_that_fills_an_interior_part_moves_to_the_next_part() {
    // Part 1 would be 152 'a' + CR = 153 septets, exactly 140 octets: the CR
    // would read as padding, so it opens part 2 instead.
    let text = format!("{}\r{}", "a".repeat(152), "b".repeat(10));
    let o = opts(Concat::Udh8, true);
    let segs = encode(&text, &o, 3).unwrap();
    assert_eq!(plan_with(&text, &o).unwrap().segments, segs.len());
    let mut out = String::new();
    for s in &segs {
        let (_, off) = parse_udh(&s.short_message).unwrap();
        out.push_str(&decode_user_data(0, &s.short_message, off, true).unwrap());
    }
    assert_eq!(out, text);
    // Unpacked keeps the CR in part 1.
    let segs = encode(&text, &TextOptions::default(), 3).unwrap();
    assert_eq!(segs[0].short_message.last(), Some(&CR));
}

#[test]
fn packed_trailing_cr_on_an_octet_boundary_is_read_as_padding() {
    // Documented corner: 8 septets fill 7 octets exactly, the final CR is
    // indistinguishable from padding (TS 23.038 §6.1.2.3.1).
    let o = opts(Concat::Udh8, true);
    let sm = &encode("aaaaaaa\r", &o, 0).unwrap()[0].short_message;
    assert_eq!(decode(0, sm, true).unwrap(), "aaaaaaa");
    // Anywhere else a CR survives.
    let sm = &encode("aaaaaa\r", &o, 0).unwrap()[0].short_message;
    assert_eq!(decode(0, sm, true).unwrap(), "aaaaaa\r");
    let sm = &encode("aaaaaaa\rb", &o, 0).unwrap()[0].short_message;
    assert_eq!(decode(0, sm, true).unwrap(), "aaaaaaa\rb");
}

// === round trip ===

fn random_text(rng: &mut Rng) -> String {
    const EXT_CHARS: [char; 10] = ['^', '{', '}', '\\', '[', '~', ']', '|', '€', '\u{0C}'];
    const BMP: [char; 9] = ['Ж', '中', 'ê', 'ç', '`', '\t', 'й', '\u{E000}', '\u{FFFD}'];
    const ASTRAL: [char; 4] = ['😀', '🎉', '𝄞', '\u{10FFFF}'];
    let gsm_only = rng.below(2) == 0;
    let max = rng.pick(&[5, 170, 400, MAX_TEXT_CHARS]);
    let len = rng.below(max + 1);
    (0..len)
        .map(|_| match rng.below(if gsm_only { 10 } else { 14 }) {
            0..=6 => {
                let i = rng.below(127);
                GSM7_DEFAULT[if i >= usize::from(ESC) { i + 1 } else { i }]
            }
            7..=9 => rng.pick(&EXT_CHARS),
            10 | 11 => rng.pick(&BMP),
            _ => rng.pick(&ASTRAL),
        })
        .collect()
}

/// Decodes segments as a receiver would, part by part.
fn decode_segments(segs: &[Segment], o: &TextOptions, reference: u16) -> String {
    let mut out = String::new();
    let n = segs.len();
    for (i, s) in segs.iter().enumerate() {
        let packed = o.gsm7_packed;
        if o.concat == Concat::Payload {
            assert_eq!(n, 1);
            assert!(s.short_message.is_empty());
            let payload = s.message_payload.as_deref().unwrap_or_default();
            out.push_str(&decode(s.data_coding, payload, packed).unwrap());
            continue;
        }
        let limit = if s.data_coding == 0 && !packed {
            160
        } else {
            140
        };
        assert!(
            s.short_message.len() <= limit,
            "part of {} octets",
            s.short_message.len()
        );
        let offset = if n == 1 {
            assert!(!s.esm_class_udhi && s.sar.is_none());
            0
        } else if o.concat == Concat::Sar {
            assert!(!s.esm_class_udhi);
            let info = s.sar.unwrap();
            assert_eq!((info.reference, usize::from(info.total)), (reference, n));
            assert_eq!(usize::from(info.seq), i + 1);
            0
        } else {
            assert!(s.esm_class_udhi);
            let (info, off) = parse_udh(&s.short_message).unwrap();
            let expected = if o.concat == Concat::Udh8 {
                reference & 0xFF
            } else {
                reference
            };
            assert_eq!((info.reference, usize::from(info.total)), (expected, n));
            assert_eq!(usize::from(info.seq), i + 1);
            off
        };
        out.push_str(&decode_user_data(s.data_coding, &s.short_message, offset, packed).unwrap());
    }
    out
}

#[test]
fn round_trip_random_texts_every_mode() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut multipart = 0;
    for round in 0..300 {
        let text = random_text(&mut rng);
        let reference = rng.next() as u16;
        for concat in ALL_CONCATS {
            for packed in [false, true] {
                let o = opts(concat, packed);
                let segs = encode(&text, &o, reference).unwrap();
                assert_eq!(plan_with(&text, &o).unwrap().segments, segs.len());
                multipart += usize::from(segs.len() > 1);
                let decoded = decode_segments(&segs, &o, reference);
                let gsm_packed = packed && segs[0].data_coding == 0;
                // Packed corner: a final CR on an octet boundary reads as padding.
                let ok = decoded == text
                    || (gsm_packed && text.strip_suffix('\r') == Some(decoded.as_str()));
                assert!(ok, "round {round} {o:?}: {text:?} came back as {decoded:?}");

                let mut r = Reassembler::new(4);
                let mut whole = None;
                for (i, s) in segs.iter().enumerate() {
                    let got = r.push("peer", &s.as_incoming(packed)).unwrap();
                    assert_eq!(got.is_some(), i + 1 == segs.len());
                    whole = whole.or(got);
                }
                assert_eq!(whole.as_deref(), Some(decoded.as_str()), "{o:?}");
                assert!(r.is_empty());
            }
        }
    }
    assert!(multipart > 500, "the generator must exercise concatenation");
}

// === decoding ===

#[test]
fn decode_never_panics_on_arbitrary_bytes() {
    let mut rng = Rng(42);
    for _ in 0..5000 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let any = rng.next() as u8;
        let dc = rng.pick(&[0x00, 0x01, 0x03, 0x08, 0x04, 0xF0, any]);
        let packed = rng.below(2) == 0;
        let udh_len = rng.below(len + 3);
        let _ = decode(dc, &bytes, packed);
        let _ = decode_user_data(dc, &bytes, udh_len, packed);
        let _ = split_udh(&bytes);
        let _ = parse_udh(&bytes);
        let incoming = Incoming {
            data_coding: dc,
            esm_class_udhi: rng.below(2) == 0,
            short_message: &bytes,
            sar: None,
            message_payload: None,
            gsm7_packed: packed,
        };
        let _ = incoming.decode();
    }
}

#[test]
fn decode_errors_and_replacements() {
    assert_eq!(
        decode(0x08, &[0x00, 0x41, 0x00], false),
        Err(TextError::Malformed("odd number of octets in UCS-2 text"))
    );
    // Lone surrogates become U+FFFD.
    assert_eq!(
        decode(0x08, &[0xD8, 0x3D, 0x00, 0x41], false).unwrap(),
        "\u{FFFD}A"
    );
    assert_eq!(decode(0x08, &[0xDE, 0x00], false).unwrap(), "\u{FFFD}");
    assert_eq!(
        decode(0x08, &[0xD8, 0x3D, 0xDE, 0x00], false).unwrap(),
        "😀"
    );
    let err = decode(0x04, b"x", false).unwrap_err();
    assert_eq!(err, TextError::InvalidEncoding { data_coding: 0x04 });
    assert_eq!(err.to_string(), "unsupported data_coding 0x04");
    assert!(matches!(
        decode(0x00, &[0x80], false),
        Err(TextError::Malformed(_))
    ));
    assert!(matches!(
        decode(0x01, &[0xE9], false),
        Err(TextError::Malformed(_))
    ));
    assert_eq!(decode(0x01, b"Hi {x}", false).unwrap(), "Hi {x}");
    assert_eq!(decode(0x03, &[0x48, 0xE9, 0xFF], false).unwrap(), "Héÿ");
    assert!(matches!(
        decode_user_data(0x00, &[1, 2], 3, false),
        Err(TextError::Malformed(_))
    ));
    assert_eq!(decode(0x00, &[], true).unwrap(), "");
    assert_eq!(decode(0x08, &[], false).unwrap(), "");
}

#[test]
fn decode_escape_edge_cases() {
    assert_eq!(
        decode(0, &[0x41, ESC], false).unwrap(),
        "A ",
        "dangling escape"
    );
    assert_eq!(
        decode(0, &[ESC, 0x41], false).unwrap(),
        "A",
        "unknown extension code"
    );
    assert_eq!(
        decode(0, &[ESC, ESC], false).unwrap(),
        " ",
        "escape to a further table"
    );
    assert_eq!(decode(0, &[ESC, 0x0A, 0x0A], false).unwrap(), "\u{0C}\n");
}

// === UDH parsing ===

#[test]
fn parse_udh_skips_other_information_elements() {
    // National language single shift (0x24) before the 8-bit concat IE.
    let sm = [0x08, 0x24, 0x01, 0x00, 0x00, 0x03, 0x07, 0x02, 0x01, b'x'];
    assert_eq!(
        parse_udh(&sm),
        Some((
            ConcatInfo {
                reference: 7,
                total: 2,
                seq: 1
            },
            9
        ))
    );
    // 16-bit concat after an application port IE (0x05).
    let sm = [
        0x0C, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x08, 0x04, 0xAB, 0xCD, 0x03, 0x03, b'y',
    ];
    assert_eq!(
        parse_udh(&sm),
        Some((
            ConcatInfo {
                reference: 0xABCD,
                total: 3,
                seq: 3
            },
            13
        ))
    );
    // No concat IE: no info, but split_udh still finds the text.
    let sm = [0x03, 0x24, 0x01, 0x00, b'z'];
    assert_eq!(parse_udh(&sm), None);
    assert_eq!(split_udh(&sm), Ok((None, 4)));
}

#[test]
fn parse_udh_rejects_malformed_headers() {
    assert_eq!(parse_udh(&[]), None);
    assert!(split_udh(&[]).is_err());
    // UDHL beyond the data.
    assert_eq!(parse_udh(&[0x05, 0x00, 0x03, 0x01]), None);
    assert!(split_udh(&[0x05, 0x00, 0x03, 0x01]).is_err());
    // IE length beyond the header.
    assert!(split_udh(&[0x03, 0x00, 0x05, 0x01, 0x02, 0x03]).is_err());
    // A lone octet after the last IE.
    assert!(split_udh(&[0x01, 0x00, b'x']).is_err());
    // Sequence number 0 or above total: the IE is ignored.
    assert_eq!(parse_udh(&[0x05, 0x00, 0x03, 0x01, 0x02, 0x00]), None);
    assert_eq!(parse_udh(&[0x05, 0x00, 0x03, 0x01, 0x02, 0x03]), None);
    // Wrong IE length for IEI 0x00: skipped.
    assert_eq!(parse_udh(&[0x04, 0x00, 0x02, 0x01, 0x02]), None);
}

// === reassembly ===

fn udh_part(reference: u8, total: u8, seq: u8, text: &[u8]) -> Vec<u8> {
    let mut v = vec![0x05, 0x00, 0x03, reference, total, seq];
    v.extend_from_slice(text);
    v
}

fn incoming(sm: &[u8]) -> Incoming<'_> {
    Incoming {
        data_coding: 0,
        esm_class_udhi: true,
        short_message: sm,
        ..Incoming::default()
    }
}

#[test]
fn reassembler_out_of_order_and_duplicates() {
    let mut r = Reassembler::new(10);
    let p1 = udh_part(9, 3, 1, b"one ");
    let p2 = udh_part(9, 3, 2, b"two ");
    let p3 = udh_part(9, 3, 3, b"three");
    assert_eq!(r.push(1, &incoming(&p3)), Ok(None));
    assert_eq!(r.push(1, &incoming(&p1)), Ok(None));
    assert_eq!(r.push(1, &incoming(&p1)), Ok(None), "duplicate ignored");
    assert_eq!(r.len(), 1);
    assert_eq!(r.push(1, &incoming(&p2)), Ok(Some("one two three".into())));
    assert!(r.is_empty());
}

#[test]
fn reassembler_keeps_keys_and_references_apart() {
    let mut r = Reassembler::new(10);
    let a1 = udh_part(1, 2, 1, b"A1");
    let a2 = udh_part(1, 2, 2, b"A2");
    let b1 = udh_part(2, 2, 1, b"B1");
    let b2 = udh_part(2, 2, 2, b"B2");
    assert_eq!(r.push("x", &incoming(&a1)), Ok(None));
    assert_eq!(r.push("y", &incoming(&a2)), Ok(None), "other key");
    assert_eq!(r.push("x", &incoming(&b2)), Ok(None), "other reference");
    assert_eq!(r.push("x", &incoming(&a2)), Ok(Some("A1A2".into())));
    assert_eq!(r.push("x", &incoming(&b1)), Ok(Some("B1B2".into())));
    assert_eq!(r.len(), 1);
}

#[test]
fn reassembler_evicts_the_oldest_when_full() {
    let mut r = Reassembler::new(2);
    for reference in 1..=3u8 {
        let p = udh_part(reference, 2, 1, b"x");
        assert_eq!(r.push((), &incoming(&p)), Ok(None));
    }
    assert_eq!(r.len(), 2);
    assert_eq!(r.evicted(), 1);
    // Reference 1 was evicted: its second part starts a new message.
    assert_eq!(r.push((), &incoming(&udh_part(1, 2, 2, b"y"))), Ok(None));
    assert_eq!(r.evicted(), 2, "which evicted reference 2");
    assert_eq!(
        r.push((), &incoming(&udh_part(3, 2, 2, b"y"))),
        Ok(Some("xy".into()))
    );
}

#[test]
fn reassembler_single_sar_and_payload() {
    let mut r = Reassembler::new(2);
    let single = Incoming {
        data_coding: 0,
        short_message: b"hi",
        ..Incoming::default()
    };
    assert_eq!(r.push(0, &single), Ok(Some("hi".into())));
    let payload = Incoming {
        data_coding: 0x08,
        message_payload: Some(&[0x04, 0x16]),
        ..Incoming::default()
    };
    assert_eq!(r.push(0, &payload), Ok(Some("Ж".into())));
    let sar = |seq, sm| Incoming {
        data_coding: 0,
        short_message: sm,
        sar: Some(ConcatInfo {
            reference: 300,
            total: 2,
            seq,
        }),
        ..Incoming::default()
    };
    assert_eq!(r.push(0, &sar(2, b"lo")), Ok(None));
    assert_eq!(r.push(0, &sar(1, b"hel")), Ok(Some("hello".into())));
    assert!(matches!(
        r.push(0, &sar(3, b"x")),
        Err(TextError::Malformed(_))
    ));
    let bad = Incoming {
        data_coding: 0x04,
        ..sar(1, b"x")
    };
    assert_eq!(
        r.push(0, &bad),
        Err(TextError::InvalidEncoding { data_coding: 0x04 })
    );
}

#[test]
fn reassembler_repairs_pairs_split_by_the_sender() {
    // A sloppy sender split a surrogate pair, then a GSM escape pair.
    let mut r = Reassembler::new(2);
    let ucs2 = |seq, text: &[u8]| {
        let mut v = vec![0x05, 0x00, 0x03, 5, 2, seq];
        v.extend_from_slice(text);
        v
    };
    let p1 = ucs2(1, &[0x00, 0x41, 0xD8, 0x3D]);
    let p2 = ucs2(2, &[0xDE, 0x00, 0x00, 0x42]);
    let part = |sm| Incoming {
        data_coding: 0x08,
        ..incoming(sm)
    };
    assert_eq!(r.push(0, &part(&p1)), Ok(None));
    assert_eq!(r.push(0, &part(&p2)), Ok(Some("A😀B".into())));
    assert_eq!(
        r.push(0, &incoming(&udh_part(6, 2, 1, &[b'a', ESC]))),
        Ok(None)
    );
    assert_eq!(
        r.push(0, &incoming(&udh_part(6, 2, 2, &[0x65, b'b']))),
        Ok(Some("a€b".into()))
    );
}

#[test]
fn error_messages_are_readable() {
    assert_eq!(
        TextError::TooManySegments { segments: 300 }.to_string(),
        "text needs 300 parts, at most 255 fit in a concatenated message"
    );
    assert_eq!(
        TextError::Malformed("odd number of octets in UCS-2 text").to_string(),
        "malformed message text: odd number of octets in UCS-2 text"
    );
}

/// The comparisons `analyze_ascii` counts with say of every ASCII byte
/// what the table says (extension: two septets; outside: none), and long
/// texts of extension characters count whole (its counters are per block).
#[test]
fn ascii_predicates_agree_with_the_septet_table() {
    for b in 0..128u8 {
        let septets = ASCII_SEPTETS[usize::from(b)];
        assert_eq!(is_ascii_extension(b), septets == 2, "{b:#04x}");
        assert_eq!(is_ascii_outside_gsm7(b), septets == 0, "{b:#04x}");
    }
    for len in [239, 240, 241, 480, 481, MAX_TEXT_CHARS] {
        let text = "{".repeat(len);
        let a = analyze_ascii(text.as_bytes()).unwrap();
        assert_eq!((a.encoding, a.units), (Encoding::Gsm7, 2 * len), "{len}");
        let text = format!("{}`", "a".repeat(len - 1));
        let a = analyze_ascii(text.as_bytes()).unwrap();
        assert_eq!((a.encoding, a.units), (Encoding::Ucs2, len), "{len}");
    }
}

/// The byte-by-byte paths for ASCII texts measure, split and write exactly
/// as the character-by-character paths do, for every ASCII character
/// (extension characters, characters outside GSM 03.38, CRs at part ends)
/// and every option.
#[test]
fn ascii_texts_take_the_byte_paths_to_the_same_result() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for round in 0..3000 {
        let len = rng.below(500);
        // Mostly letters, sometimes any ASCII at all, sometimes CRs.
        let text: String = (0..len)
            .map(|_| match rng.below(20) {
                0 => rng.below(128) as u8 as char,
                1 => '\r',
                2 => '{',
                _ => (b'a' + rng.below(26) as u8) as char,
            })
            .collect();
        // Half the texts stay within GSM 03.38 (no character outside it).
        let text: String = if round % 2 == 0 {
            text.chars()
                .filter(|&c| ASCII_TO_GSM7[c as usize] != NOT_GSM7)
                .collect()
        } else {
            text
        };
        let (fast, slow) = (analyze_ascii(text.as_bytes()), analyze_chars(&text));
        assert_eq!(
            fast.as_ref().map(|a| (a.encoding, a.units)),
            slow.as_ref().map(|a| (a.encoding, a.units)),
            "{text:?}"
        );
        let Ok(a) = fast else { continue };
        for concat in [Concat::Udh8, Concat::Udh16, Concat::Sar] {
            for gsm7_packed in [false, true] {
                let opts = TextOptions {
                    concat,
                    gsm7_packed,
                };
                let bytes = Parts::new(&text, a.encoding, &opts);
                let chars = Parts {
                    ascii: false,
                    ..bytes.clone()
                };
                assert!(bytes.ascii);
                assert_eq!(
                    bytes.collect::<Vec<_>>(),
                    chars.collect::<Vec<_>>(),
                    "{text:?} {opts:?}"
                );
            }
        }
        if a.encoding == Encoding::Gsm7 {
            let (mut fast, mut slow) = (BytesMut::new(), BytesMut::new());
            write_ascii_gsm7(&mut fast, &text);
            write_gsm7_chars(&mut slow, &text);
            assert_eq!(fast, slow, "{text:?}");
        }
    }
}
