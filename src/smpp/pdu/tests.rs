use super::*;

/// Octets from a hex string; whitespace is ignored.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn roundtrip(pdu: &Pdu) -> Pdu {
    let bytes = pdu.to_bytes();
    assert_eq!(bytes.len(), pdu.encoded_len(), "encoded_len of {pdu:?}");
    let decoded = Pdu::decode(bytes).unwrap_or_else(|e| panic!("{pdu:?}: {e}"));
    assert_eq!(&decoded, pdu);
    decoded
}

fn frame(command_id: u32, status: u32, seq: u32, body: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u32((HEADER_LEN + body.len()) as u32);
    b.put_u32(command_id);
    b.put_u32(status);
    b.put_u32(seq);
    b.put_slice(body);
    b.freeze()
}

fn sample_submit_sm() -> SubmitSm {
    SubmitSm {
        service_type: Bytes::from_static(b"CMT"),
        source_addr_ton: 5,
        source_addr_npi: 0,
        source_addr: Bytes::from_static(b"ACME"),
        dest_addr_ton: 1,
        dest_addr_npi: 1,
        destination_addr: Bytes::from_static(b"14155550100"),
        esm_class: 0x40,
        protocol_id: 0,
        priority_flag: 1,
        schedule_delivery_time: Bytes::new(),
        validity_period: Bytes::from_static(b"000000000100000R"),
        registered_delivery: 1,
        replace_if_present_flag: 0,
        data_coding: 8,
        sm_default_msg_id: 0,
        short_message: Bytes::from_static(&[0x05, 0x00, 0x03, 0x2A, 0x02, 0x01, 0x00, 0x48]),
        tlvs: vec![
            Tlv::from_u16(tag::SAR_MSG_REF_NUM, 0x1234),
            Tlv::from_u8(tag::SAR_TOTAL_SEGMENTS, 2),
            Tlv::from_u8(tag::SAR_SEGMENT_SEQNUM, 1),
            Tlv::new(0x1400, Bytes::from_static(b"vendor")),
        ],
    }
}

// === known byte vectors ===

#[test]
fn bind_transceiver_known_bytes() {
    let expected = hex("0000002F 00000009 00000000 00000001
         534D505033544553 5400
         7365637265743038 00
         5355424D49543100
         34 01 01
         00");
    let pdu = Pdu::new(
        1,
        Body::BindTransceiver(Bind {
            system_id: Bytes::from_static(b"SMPP3TEST"),
            password: Bytes::from_static(b"secret08"),
            system_type: Bytes::from_static(b"SUBMIT1"),
            interface_version: 0x34,
            addr_ton: 1,
            addr_npi: 1,
            address_range: Bytes::new(),
        }),
    );
    assert_eq!(pdu.to_bytes().as_ref(), expected.as_slice());
    assert_eq!(Pdu::decode(Bytes::from(expected)).unwrap(), pdu);
}

#[test]
fn submit_sm_known_bytes() {
    let expected = hex("0000003B 00000004 00000000 00000002
         00
         05 00 41434D4500
         01 01 3134313535353530313030 00
         00 00 00
         00
         00
         01 00 00 00
         05 48656C6C6F
         0204 0002 0007");
    let sm = SubmitSm {
        source_addr_ton: 5,
        source_addr: Bytes::from_static(b"ACME"),
        dest_addr_ton: 1,
        dest_addr_npi: 1,
        destination_addr: Bytes::from_static(b"14155550100"),
        short_message: Bytes::from_static(b"Hello"),
        tlvs: vec![Tlv::from_u16(tag::USER_MESSAGE_REFERENCE, 7)],
        ..SubmitSm::default()
    };
    let pdu = Pdu::new(2, Body::SubmitSm(sm));
    assert_eq!(pdu.encoded_len(), 0x3B);
    assert_eq!(pdu.to_bytes().as_ref(), expected.as_slice());
    assert_eq!(Pdu::decode(Bytes::from(expected)).unwrap(), pdu);
}

#[test]
fn header_only_pdus_known_bytes() {
    assert_eq!(
        Pdu::enquire_link(0x7FFF_FFFF).to_bytes().as_ref(),
        hex("00000010 00000015 00000000 7FFFFFFF").as_slice()
    );
    assert_eq!(
        Pdu::generic_nack(9, CommandStatus::ESME_RINVCMDLEN)
            .to_bytes()
            .as_ref(),
        hex("00000010 80000000 00000002 00000009").as_slice()
    );
    // An error submit_sm_resp carries no body (§4.4.2).
    assert_eq!(
        Pdu::submit_sm_resp(3, CommandStatus::ESME_RTHROTTLED, "")
            .to_bytes()
            .as_ref(),
        hex("00000010 80000004 00000058 00000003").as_slice()
    );
    // deliver_sm_resp: message_id is NULL.
    assert_eq!(
        Pdu::deliver_sm_resp(4, CommandStatus::ESME_ROK)
            .to_bytes()
            .as_ref(),
        hex("00000011 80000005 00000000 00000004 00").as_slice()
    );
}

// === round trips ===

#[test]
fn every_modelled_body_round_trips() {
    let bind = Bind {
        system_id: Bytes::from_static(b"sluice"),
        password: Bytes::from_static(b"pw"),
        system_type: Bytes::from_static(b"VMA"),
        interface_version: 0x34,
        addr_ton: 1,
        addr_npi: 1,
        address_range: Bytes::from_static(b"^1415"),
    };
    let bind_resp = BindResp {
        system_id: Bytes::from_static(b"SMSC"),
        tlvs: vec![Tlv::from_u8(tag::SC_INTERFACE_VERSION, 0x34)],
    };
    let mut receipt = sample_submit_sm();
    receipt.esm_class = 0x04;
    receipt.registered_delivery = 0;
    receipt.tlvs = vec![
        Tlv::from_c_string(tag::RECEIPTED_MESSAGE_ID, b"0A1B2C"),
        Tlv::from_u8(tag::MESSAGE_STATE, 2),
        Tlv::new(tag::NETWORK_ERROR_CODE, Bytes::from_static(&[3, 0, 0])),
        Tlv::new(tag::MESSAGE_PAYLOAD, Bytes::from(vec![b'x'; 1000])),
    ];
    let bodies = vec![
        Body::BindTransmitter(bind.clone()),
        Body::BindReceiver(bind.clone()),
        Body::BindTransceiver(bind),
        Body::BindTransmitterResp(bind_resp.clone()),
        Body::BindReceiverResp(bind_resp.clone()),
        Body::BindTransceiverResp(bind_resp),
        Body::BindTransceiverResp(BindResp {
            system_id: Bytes::from_static(b"SMSC"),
            tlvs: vec![],
        }),
        Body::SubmitSm(sample_submit_sm()),
        Body::SubmitSm(SubmitSm::default()),
        Body::SubmitSm(SubmitSm {
            short_message: Bytes::from(vec![0xAB; 255]),
            ..SubmitSm::default()
        }),
        Body::SubmitSmResp(SubmitSmResp {
            message_id: Bytes::from(vec![b'f'; 64]),
        }),
        Body::DeliverSm(receipt),
        Body::DeliverSmResp(DeliverSmResp::default()),
        Body::EnquireLink,
        Body::EnquireLinkResp,
        Body::Unbind,
        Body::UnbindResp,
        Body::GenericNack,
        Body::Outbind {
            system_id: Bytes::from_static(b"SMSC"),
            password: Bytes::from_static(b"pw"),
        },
        Body::Other {
            command_id: CommandId::DataSm.as_u32(),
            body: Bytes::from_static(b"\0\x01\x01src\0\x01\x01dst\0\0\0\0"),
        },
        Body::Other {
            command_id: 0x0001_0000,
            body: Bytes::new(),
        },
    ];
    for (i, body) in bodies.into_iter().enumerate() {
        let mut pdu = Pdu::new(i as u32 + 1, body);
        roundtrip(&pdu);
        if pdu.is_response() {
            pdu.command_status = CommandStatus(0x0000_0401);
            roundtrip(&pdu);
        }
    }
}

#[test]
fn decoded_fields_are_slices_of_the_frame() {
    let frame = Pdu::new(1, Body::SubmitSm(sample_submit_sm())).to_bytes();
    let range = frame.as_ptr_range();
    let pdu = Pdu::decode(frame.clone()).unwrap();
    let Body::SubmitSm(sm) = pdu.body else {
        panic!()
    };
    for field in [
        &sm.source_addr,
        &sm.destination_addr,
        &sm.short_message,
        &sm.tlvs[3].value,
    ] {
        assert!(range.contains(&field.as_ptr()), "{field:?} was copied");
    }
}

#[test]
fn encode_reserves_once_and_appends() {
    let pdu = Pdu::new(7, Body::SubmitSm(sample_submit_sm()));
    let mut dst = BytesMut::new();
    Pdu::enquire_link(1).encode(&mut dst);
    pdu.encode(&mut dst);
    assert_eq!(dst.len(), 16 + pdu.encoded_len());
    let second = dst.split_off(16).freeze();
    assert_eq!(Pdu::decode(second).unwrap(), pdu);
}

#[test]
fn convenience_constructors() {
    assert_eq!(Pdu::enquire_link(1).command(), Some(CommandId::EnquireLink));
    assert!(!Pdu::enquire_link(1).is_response());
    assert!(Pdu::enquire_link_resp(1).is_response());
    assert!(Pdu::generic_nack(1, CommandStatus::ESME_RSYSERR).is_response());
    assert_eq!(Pdu::unbind(5).command_id(), 6);
    assert_eq!(Pdu::unbind_resp(5).command_id(), 0x8000_0006);
    let resp = Pdu::submit_sm_resp(8, CommandStatus::ESME_ROK, "abc");
    assert_eq!(resp.command(), Some(CommandId::SubmitSmResp));
    assert_eq!(roundtrip(&resp).sequence_number, 8);
    let resp = Pdu::deliver_sm_resp(9, CommandStatus::ESME_RX_T_APPN);
    assert_eq!(resp.encoded_len(), 16);
    roundtrip(&resp);
}

#[test]
fn default_submit_sm_requests_a_receipt() {
    assert_eq!(SubmitSm::default().registered_delivery, 1);
}

// === header types ===

#[test]
fn command_ids_convert_both_ways() {
    for id in CommandId::ALL {
        assert_eq!(CommandId::try_from(id.as_u32()), Ok(id));
        assert_eq!(
            id.is_response(),
            id.name() == "generic_nack" || id.name().ends_with("_resp")
        );
    }
    assert_eq!(
        CommandId::SubmitSm.response(),
        Some(CommandId::SubmitSmResp)
    );
    assert_eq!(
        CommandId::BindTransceiver.response(),
        Some(CommandId::BindTransceiverResp)
    );
    assert_eq!(CommandId::Outbind.response(), None);
    assert_eq!(CommandId::AlertNotification.response(), None);
    assert_eq!(CommandId::SubmitSmResp.response(), None);
    assert_eq!(
        CommandId::try_from(0x0000_000A),
        Err(UnknownCommandId(0x0A))
    );
    assert_eq!(CommandId::DataSmResp.as_u32(), 0x8000_0103);
    assert_eq!(CommandId::EnquireLink.to_string(), "enquire_link");
}

#[test]
fn command_status_names_and_classes() {
    assert!(CommandStatus::ESME_ROK.is_ok());
    assert!(!CommandStatus::ESME_RSYSERR.is_ok());
    assert_eq!(CommandStatus::ESME_RTHROTTLED.0, 0x58);
    assert_eq!(CommandStatus::ESME_RMSGQFUL.0, 0x14);
    assert_eq!(CommandStatus::ESME_RINVDCS.0, 0x104);
    assert_eq!(CommandStatus(0x58).name(), Some("ESME_RTHROTTLED"));
    assert_eq!(CommandStatus(0x0E).name(), Some("ESME_RINVPASWD"));
    assert_eq!(CommandStatus(0x0400_0001).name(), None);
    for temporary in [0x14, 0x58, 0x08, 0x64] {
        assert!(CommandStatus(temporary).is_temporary(), "{temporary:#x}");
    }
    for permanent in [0x00, 0x0A, 0x0B, 0x45, 0x104, 0x0400_0001] {
        assert!(!CommandStatus(permanent).is_temporary(), "{permanent:#x}");
    }
    assert_eq!(
        format!("{:?}", CommandStatus::ESME_RTHROTTLED),
        "CommandStatus(ESME_RTHROTTLED)"
    );
    assert_eq!(
        format!("{:?}", CommandStatus(0x401)),
        "CommandStatus(0x00000401)"
    );
    assert_eq!(
        CommandStatus::ESME_RMSGQFUL.to_string(),
        "ESME_RMSGQFUL (0x14)"
    );
}

#[test]
fn unknown_command_status_is_not_an_error() {
    let f = frame(0x8000_0004, 0xDEAD_BEEF, 12, b"");
    let pdu = Pdu::decode(f).unwrap();
    assert_eq!(pdu.command_status, CommandStatus(0xDEAD_BEEF));
    assert_eq!(pdu.body, Body::SubmitSmResp(SubmitSmResp::default()));
}

// === TLV helpers ===

#[test]
fn tlv_helpers() {
    let sm = sample_submit_sm();
    assert_eq!(
        sm.tlv(tag::SAR_MSG_REF_NUM).and_then(Tlv::as_u16),
        Some(0x1234)
    );
    assert_eq!(
        sm.tlv(tag::SAR_TOTAL_SEGMENTS).and_then(Tlv::as_u8),
        Some(2)
    );
    assert_eq!(sm.tlv(tag::SAR_MSG_REF_NUM).and_then(Tlv::as_u8), None);
    assert_eq!(sm.tlv(tag::SAR_TOTAL_SEGMENTS).and_then(Tlv::as_u16), None);
    assert!(sm.tlv(tag::MESSAGE_PAYLOAD).is_none());
    assert_eq!(
        find_tlv(&sm.tlvs, 0x1400).unwrap().value.as_ref(),
        b"vendor"
    );

    let id = Tlv::from_c_string(tag::RECEIPTED_MESSAGE_ID, b"abc");
    assert_eq!(id.value.as_ref(), b"abc\0");
    assert_eq!(id.as_c_string().as_ref(), b"abc");
    // Some SMSCs forget the NUL.
    assert_eq!(
        Tlv::new(tag::RECEIPTED_MESSAGE_ID, "abc")
            .as_c_string()
            .as_ref(),
        b"abc"
    );
}

#[test]
fn bind_resp_carries_sc_interface_version() {
    let body = hex("534D534300 0210 0001 34");
    let pdu = Pdu::decode(frame(0x8000_0009, 0, 1, &body)).unwrap();
    let Body::BindTransceiverResp(resp) = pdu.body else {
        panic!()
    };
    assert_eq!(resp.system_id.as_ref(), b"SMSC");
    assert_eq!(
        resp.tlv(tag::SC_INTERFACE_VERSION).and_then(Tlv::as_u8),
        Some(0x34)
    );
}

// === errors ===

#[test]
fn truncated_header() {
    for len in 0..16 {
        let f = Bytes::from(hex("00000010 00000015 00000000 00000001")).slice(..len);
        let err = Pdu::decode(f).unwrap_err();
        assert!(matches!(err, PduError::TruncatedHeader { .. }), "{err}");
        assert_eq!(err.sequence_number(), None);
        assert_eq!(err.command_id(), (len >= 8).then_some(0x15));
        assert_eq!(err.command_status(), CommandStatus::ESME_RINVCMDLEN);
    }
}

#[test]
fn command_length_below_16_or_disagreeing() {
    let mut f = BytesMut::from(&frame(0x15, 0, 77, b"")[..]);
    f[3] = 8;
    let err = Pdu::decode(f.freeze()).unwrap_err();
    assert_eq!(
        err,
        PduError::LengthMismatch {
            command_length: 8,
            frame_len: 16,
            command_id: 0x15,
            sequence_number: 77
        }
    );
    assert_eq!(err.command_status(), CommandStatus::ESME_RINVCMDLEN);
    let nack = err.generic_nack();
    assert_eq!(nack.sequence_number, 77);
    assert_eq!(nack.command_status, CommandStatus::ESME_RINVCMDLEN);
    assert_eq!(nack.body, Body::GenericNack);

    let mut f = BytesMut::from(&frame(0x15, 0, 78, b"")[..]);
    f[3] = 17;
    assert!(matches!(
        Pdu::decode(f.freeze()),
        Err(PduError::LengthMismatch { .. })
    ));
}

#[test]
fn missing_nul() {
    // bind_transmitter whose system_id runs to the end of the body.
    let err = Pdu::decode(frame(2, 0, 5, b"sluice")).unwrap_err();
    assert_eq!(
        err,
        PduError::MissingNul {
            command_id: 2,
            sequence_number: 5,
            field: "system_id"
        }
    );
    assert_eq!(err.sequence_number(), Some(5));
    assert_eq!(err.command_id(), Some(2));
    assert_eq!(err.command_status(), CommandStatus::ESME_RINVCMDLEN);
    // An OK submit_sm_resp whose message_id lacks its NUL.
    let err = Pdu::decode(frame(0x8000_0004, 0, 6, b"abc")).unwrap_err();
    assert!(matches!(
        err,
        PduError::MissingNul {
            field: "message_id",
            ..
        }
    ));
}

#[test]
fn c_strings_slightly_over_the_limit_are_tolerated() {
    // system_id is 16 octets with its NUL; 20 characters is accepted...
    let mut body = b"ABCDEFGHIJKLMNOPQRST\0pw\0\0\x34\0\0\0".to_vec();
    let pdu = Pdu::decode(frame(9, 0, 1, &body)).unwrap();
    let Body::BindTransceiver(bind) = pdu.body else {
        panic!()
    };
    assert_eq!(bind.system_id.len(), 20);
    // ...but twice the maximum is not.
    body.splice(0..0, *b"ABCDEFGHIJKL");
    let err = Pdu::decode(frame(9, 0, 1, &body)).unwrap_err();
    assert!(
        matches!(
            err,
            PduError::TooLong {
                field: "system_id",
                max: 16,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.command_status(), CommandStatus::ESME_RINVSYSID);

    // A 64-character message id is within the spec.
    let id = vec![b'7'; 64];
    let pdu = Pdu::decode(frame(0x8000_0004, 0, 1, &[&id[..], b"\0"].concat())).unwrap();
    assert_eq!(
        pdu.body,
        Body::SubmitSmResp(SubmitSmResp {
            message_id: id.into()
        })
    );
}

#[test]
fn overlong_address_maps_to_address_error() {
    let mut body = vec![0u8, 1, 1];
    body.extend_from_slice(&[b'1'; 50]);
    body.push(0);
    let err = Pdu::decode(frame(4, 0, 3, &body)).unwrap_err();
    assert!(
        matches!(
            err,
            PduError::TooLong {
                field: "source_addr",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.command_status(), CommandStatus::ESME_RINVSRCADR);
}

#[test]
fn truncated_mandatory_field() {
    let full = Pdu::new(1, Body::SubmitSm(SubmitSm::default())).to_bytes();
    // Cut the body just before sm_length: every field up to there is present.
    let body = &full[16..full.len() - 1];
    let err = Pdu::decode(frame(4, 0, 1, body)).unwrap_err();
    assert_eq!(
        err,
        PduError::Truncated {
            command_id: 4,
            sequence_number: 1,
            field: "sm_length"
        }
    );
    // Every shorter cut is an error too, never a panic.
    for cut in 16..full.len() {
        assert!(
            Pdu::decode(frame(4, 0, 1, &full[16..cut])).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn sm_length_too_long() {
    let mut sm = Pdu::new(
        1,
        Body::SubmitSm(SubmitSm {
            short_message: Bytes::from_static(b"Hello"),
            ..SubmitSm::default()
        }),
    )
    .to_bytes()
    .to_vec();
    let sm_length_at = sm.len() - 6;
    assert_eq!(sm[sm_length_at], 5);
    sm[sm_length_at] = 6;
    let err = Pdu::decode(Bytes::from(sm)).unwrap_err();
    assert!(
        matches!(
            err,
            PduError::SmLength {
                sm_length: 6,
                remaining: 5,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.command_status(), CommandStatus::ESME_RINVMSGLEN);
}

#[test]
fn truncated_tlv() {
    let full = Pdu::new(
        1,
        Body::SubmitSm(SubmitSm {
            tlvs: vec![Tlv::new(tag::MESSAGE_PAYLOAD, "payload")],
            ..SubmitSm::default()
        }),
    )
    .to_bytes();
    let tlv_at = full.len() - 11;
    for cut in tlv_at + 1..full.len() {
        let err = Pdu::decode(frame(4, 0, 9, &full[16..cut])).unwrap_err();
        let PduError::TruncatedTlv { tag, offset, .. } = err else {
            panic!("cut at {cut}: {err}")
        };
        assert_eq!(offset, tlv_at);
        assert_eq!(tag, (cut >= tlv_at + 2).then_some(0x0424));
        assert_eq!(err.command_status(), CommandStatus::ESME_RINVOPTPARSTREAM);
        assert_eq!(err.sequence_number(), Some(9));
    }
    // A TLV whose length is larger than what is left.
    let mut bad = full.to_vec();
    let len_at = tlv_at + 3;
    bad[len_at] = 8;
    assert!(matches!(
        Pdu::decode(Bytes::from(bad)),
        Err(PduError::TruncatedTlv { .. })
    ));
}

#[test]
fn unknown_command_id_is_kept_as_other() {
    let f = frame(0x0000_1234, 0, 42, b"\x01\x02\x03");
    let pdu = Pdu::decode(f.clone()).unwrap();
    assert_eq!(
        pdu.body,
        Body::Other {
            command_id: 0x1234,
            body: Bytes::from_static(b"\x01\x02\x03")
        }
    );
    assert_eq!(pdu.sequence_number, 42);
    assert_eq!(pdu.to_bytes(), f);
    // Known but unmodelled commands too.
    let pdu = Pdu::decode(frame(0x8000_0103, 0, 1, b"id\0")).unwrap();
    assert!(matches!(
        pdu.body,
        Body::Other {
            command_id: 0x8000_0103,
            ..
        }
    ));
}

#[test]
fn error_resp_with_empty_body() {
    let pdu = Pdu::decode(frame(0x8000_0004, 0x58, 3, b"")).unwrap();
    assert_eq!(
        pdu,
        Pdu::submit_sm_resp(3, CommandStatus::ESME_RTHROTTLED, Bytes::new())
    );
    // With a NUL message_id, as some SMSCs send it, too.
    let pdu = Pdu::decode(frame(0x8000_0004, 0x45, 3, b"\0")).unwrap();
    assert_eq!(pdu.body, Body::SubmitSmResp(SubmitSmResp::default()));
    // A failed bind.
    let pdu = Pdu::decode(frame(0x8000_0009, 0x0E, 1, b"")).unwrap();
    assert_eq!(pdu.body, Body::BindTransceiverResp(BindResp::default()));
    assert_eq!(pdu.command_status, CommandStatus::ESME_RINVPASWD);
    // An OK deliver_sm_resp without its NUL message_id.
    let pdu = Pdu::decode(frame(0x8000_0005, 0, 1, b"")).unwrap();
    assert_eq!(pdu.body, Body::DeliverSmResp(DeliverSmResp::default()));
}

#[test]
fn trailing_octets_after_resp_fields_are_ignored() {
    // An SMPP 5.0 SMSC appending a TLV to submit_sm_resp.
    let body = hex("61626300 0425 0001 01");
    let pdu = Pdu::decode(frame(0x8000_0004, 0, 1, &body)).unwrap();
    assert_eq!(
        pdu.body,
        Body::SubmitSmResp(SubmitSmResp {
            message_id: "abc".into()
        })
    );
    let pdu = Pdu::decode(frame(0x15, 0, 1, b"\0\0")).unwrap();
    assert_eq!(pdu.body, Body::EnquireLink);
}

#[test]
fn errors_display_the_command_name() {
    let err = Pdu::decode(frame(2, 0, 5, b"sluice")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bind_transmitter: C-octet string `system_id` has no NUL terminator"
    );
    let err = PduError::Truncated {
        command_id: 0x77,
        sequence_number: 1,
        field: "x",
    };
    assert!(
        err.to_string().starts_with("command_id 0x00000077"),
        "{err}"
    );
}

#[test]
#[should_panic(expected = "short_message longer than 255")]
fn encoding_an_oversized_short_message_panics() {
    Pdu::new(
        1,
        Body::SubmitSm(SubmitSm {
            short_message: Bytes::from(vec![0; 256]),
            ..SubmitSm::default()
        }),
    )
    .to_bytes();
}

// === pseudo-random decoding ("if we panic, we lose") ===

/// xorshift64*: tiny, deterministic, good enough to shake a decoder.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn bytes(&mut self, max: usize) -> Bytes {
        let n = self.below(max + 1);
        (0..n).map(|_| self.byte()).collect::<Vec<u8>>().into()
    }

    /// A C-octet string value: no NULs, mostly short.
    fn c_string(&mut self, max: usize) -> Bytes {
        let n = self.below(max + 1);
        (0..n)
            .map(|_| self.byte().max(1))
            .collect::<Vec<u8>>()
            .into()
    }

    fn tlvs(&mut self) -> Vec<Tlv> {
        (0..self.below(4))
            .map(|_| {
                let tag = [
                    tag::MESSAGE_PAYLOAD,
                    tag::RECEIPTED_MESSAGE_ID,
                    tag::MESSAGE_STATE,
                ]
                .get(self.below(5))
                .copied()
                .unwrap_or(self.next() as u16);
                Tlv::new(tag, self.bytes(40))
            })
            .collect()
    }

    fn submit_sm(&mut self) -> SubmitSm {
        SubmitSm {
            service_type: self.c_string(5),
            source_addr_ton: self.byte(),
            source_addr_npi: self.byte(),
            source_addr: self.c_string(20),
            dest_addr_ton: self.byte(),
            dest_addr_npi: self.byte(),
            destination_addr: self.c_string(20),
            esm_class: self.byte(),
            protocol_id: self.byte(),
            priority_flag: self.byte(),
            schedule_delivery_time: self.c_string(16),
            validity_period: self.c_string(16),
            registered_delivery: self.byte(),
            replace_if_present_flag: self.byte(),
            data_coding: self.byte(),
            sm_default_msg_id: self.byte(),
            short_message: self.bytes(160),
            tlvs: self.tlvs(),
        }
    }

    fn bind(&mut self) -> Bind {
        Bind {
            system_id: self.c_string(15),
            password: self.c_string(8),
            system_type: self.c_string(12),
            interface_version: self.byte(),
            addr_ton: self.byte(),
            addr_npi: self.byte(),
            address_range: self.c_string(40),
        }
    }

    fn pdu(&mut self) -> Pdu {
        let body = match self.below(14) {
            0 => Body::BindTransmitter(self.bind()),
            1 => Body::BindReceiver(self.bind()),
            2 => Body::BindTransceiver(self.bind()),
            3 => Body::BindTransceiverResp(BindResp {
                system_id: self.c_string(15),
                tlvs: self.tlvs(),
            }),
            4 | 5 => Body::SubmitSm(self.submit_sm()),
            6 | 7 => Body::DeliverSm(self.submit_sm()),
            8 => Body::SubmitSmResp(SubmitSmResp {
                message_id: self.c_string(64),
            }),
            9 => Body::DeliverSmResp(DeliverSmResp::default()),
            10 => Body::EnquireLink,
            11 => Body::Outbind {
                system_id: self.c_string(15),
                password: self.c_string(8),
            },
            12 => Body::GenericNack,
            _ => Body::Other {
                command_id: 0x0001_0000 | self.next() as u32,
                body: self.bytes(30),
            },
        };
        let status = if self.below(4) == 0 {
            self.next() as u32
        } else {
            0
        };
        Pdu {
            command_status: CommandStatus(status),
            sequence_number: self.next() as u32,
            body,
        }
    }

    /// Damages an encoded PDU: flip, overwrite, insert or remove octets, or
    /// truncate; then usually fix command_length so the body gets parsed.
    fn mutate(&mut self, mut b: Vec<u8>) -> Vec<u8> {
        for _ in 0..=self.below(3) {
            match self.below(6) {
                0 if !b.is_empty() => {
                    let i = self.below(b.len());
                    b[i] ^= 1 << self.below(8);
                }
                1 if !b.is_empty() => {
                    let i = self.below(b.len());
                    b[i] = [0, 0xFF, self.byte()][self.below(3)];
                }
                2 => {
                    let i = self.below(b.len() + 1);
                    b.insert(i, self.byte());
                }
                3 if !b.is_empty() => {
                    let i = self.below(b.len());
                    b.remove(i);
                }
                4 => {
                    let n = self.below(b.len() + 1);
                    b.truncate(n);
                }
                _ => {}
            }
        }
        if b.len() >= 4 && self.below(4) != 0 {
            let len = b.len() as u32;
            b[..4].copy_from_slice(&len.to_be_bytes());
        }
        b
    }
}

/// Decodes `bytes` directly and through the codec; whatever decodes must
/// re-encode and decode to the same PDU.
fn check_decode(bytes: &[u8]) -> Result<(), PduError> {
    use tokio_util::codec::Decoder;

    let direct = Pdu::decode(Bytes::copy_from_slice(bytes));
    if let Ok(pdu) = &direct {
        let again = Pdu::decode(pdu.to_bytes()).expect("re-encoded PDU must decode");
        assert_eq!(&again, pdu, "round trip of {bytes:02x?}");
    }
    let mut codec = crate::smpp::codec::SmppCodec::new(1024);
    let mut src = BytesMut::from(bytes);
    let whole_frame = bytes.len() >= 4
        && u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize == bytes.len();
    if let Ok(Some(framed)) = codec.decode(&mut src)
        && whole_frame
    {
        assert_eq!(framed, direct);
    }
    direct.map(drop)
}

#[test]
fn random_and_mutated_pdus_never_panic_and_round_trip() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut ok, mut total) = (0, 0);
    let mut seen = std::collections::BTreeSet::new();
    let mut tally = |result: Result<(), PduError>| {
        total += 1;
        match result {
            Ok(()) => ok += 1,
            Err(e) => {
                let name = format!("{e:?}");
                seen.insert(name[..name.find(' ').unwrap_or(name.len())].to_owned());
            }
        }
    };
    for _ in 0..100_000 {
        // A valid PDU round trips exactly.
        let pdu = rng.pdu();
        let bytes = pdu.to_bytes();
        assert_eq!(Pdu::decode(bytes.clone()).as_ref(), Ok(&pdu));
        // Damaged copies of it must not panic.
        for _ in 0..2 {
            let damaged = rng.mutate(bytes.to_vec());
            tally(check_decode(&damaged));
        }
        // Plain garbage with a plausible header.
        let mut garbage = rng.bytes(80).to_vec();
        if garbage.len() >= 8 && rng.below(2) == 0 {
            let len = garbage.len() as u32;
            garbage[..4].copy_from_slice(&len.to_be_bytes());
            let id = CommandId::ALL[rng.below(CommandId::ALL.len())].as_u32();
            garbage[4..8].copy_from_slice(&id.to_be_bytes());
        }
        tally(check_decode(&garbage));
    }
    // Every kind of malformation was reached.
    let expected = [
        "LengthMismatch",
        "MissingNul",
        "SmLength",
        "TooLong",
        "Truncated",
        "TruncatedHeader",
        "TruncatedTlv",
    ];
    assert_eq!(
        seen.iter().map(String::as_str).collect::<Vec<_>>(),
        expected
    );
    // The mutations must reach the body parsers, not just the length check.
    assert!(ok > total / 10, "only {ok} of {total} decoded");
    assert!(ok < total, "nothing failed to decode");
}
