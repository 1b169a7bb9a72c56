//! Inbound message text: arbitrary user data with every data_coding,
//! UDH flag and packing decoded; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::smpp::text;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (head, body) = data.split_at(2);
    let incoming = text::Incoming {
        data_coding: head[0],
        esm_class_udhi: head[1] & 1 != 0,
        short_message: body,
        sar: None,
        message_payload: None,
        gsm7_packed: head[1] & 2 != 0,
    };
    let _ = incoming.decode();
    let _ = text::parse_udh(body);
    if let Ok(s) = std::str::from_utf8(body) {
        for concat in [text::Concat::Udh8, text::Concat::Udh16, text::Concat::Sar, text::Concat::Payload] {
            let opts = text::TextOptions { concat, gsm7_packed: head[1] & 2 != 0 };
            if let Ok(parts) = text::encode(s, &opts, 7) {
                assert!(!parts.is_empty());
            }
        }
    }
});
