use super::*;
use crate::model::{ChannelPref, FallbackPolicy, Msisdn, Priority, Sender};

fn cfg() -> JournalConfig {
    JournalConfig {
        segment_bytes: 1 << 20,
        ..JournalConfig::default()
    }
}

fn msg(id: u64, client_ref: &str) -> Message {
    Message {
        id: MessageId(id),
        tenant: "acme".into(),
        client_ref: client_ref.into(),
        to: Msisdn::parse("+14155550100").unwrap(),
        from: Sender::parse("12345").unwrap(),
        text: format!("hello {id}").into(),
        media: Box::default(),
        channel: ChannelPref::Auto,
        fallback: FallbackPolicy::SmsTextOnly,
        campaign_id: "c1".into(),
        expires_at_ms: 99,
        priority: Priority::Transactional,
        tags: Box::new(["t".into()]),
        accepted_at_ms: 7,
        auto_reply: false,
        mms: None,
    }
}

fn event(event_id: u64, message_id: u64) -> PendingEvent {
    PendingEvent {
        event_id,
        message_id: MessageId(message_id),
        tenant: "acme".into(),
        payload: Bytes::from(vec![event_id as u8; 3]),
        sink: if event_id.is_multiple_of(2) {
            String::new()
        } else {
            "crm".into()
        },
        created_ms: 1_700_000_000_000 + event_id,
    }
}

#[tokio::test]
async fn replay_restores_progress_of_each_message() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, rec) = Journal::open(dir.path(), &cfg()).unwrap();
        assert_eq!(rec.next_message_id, 1);
        let first = j.allocate_message_ids(4);
        let ms: Vec<_> = (first..first + 4)
            .map(|i| msg(i, &format!("r{i}")))
            .collect();
        j.accept(&ms).wait().await.unwrap();
        // 1: queued; 2: written, no answer; 3: submitted; 4: final, event pending
        j.written(
            "smsc",
            [
                (MessageId(2), 0, 1),
                (MessageId(3), 0, 2),
                (MessageId(3), 1, 2),
                (MessageId(4), 0, 1),
            ],
        )
        .wait()
        .await
        .unwrap();
        j.submitted([
            (MessageId(3), 0, "abc"),
            (MessageId(3), 1, "abd"),
            (MessageId(4), 0, "x"),
        ]);
        let ev = j.allocate_event_ids(2);
        j.events([&event(ev, 4), &event(ev + 1, 0)])
            .wait()
            .await
            .unwrap();
        j.event_ack(&[ev + 1]);
        j.events([]).wait().await.unwrap();
    }
    let (j, rec) = Journal::open(dir.path(), &cfg()).unwrap();
    let ids: Vec<u64> = rec
        .messages
        .iter()
        .map(|m| m.message().unwrap().id.0)
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    assert_eq!(rec.messages[0].message().unwrap(), msg(1, "r1"));
    assert_eq!(rec.messages[0].carrier(), None);
    assert!(!rec.messages[0].written);
    assert_eq!(rec.messages[1].carrier(), Some("smsc"));
    assert!(rec.messages[1].written);
    assert!(rec.messages[1].carrier_ids().is_empty());
    assert_eq!(rec.messages[2].parts(), 2);
    assert_eq!(
        rec.messages[2].carrier_ids(),
        vec!["abc".to_string(), "abd".to_string()]
    );
    assert_eq!(rec.events, vec![event(1, 4)]);
    assert_eq!(rec.dedupe.len(), 4);
    assert_eq!(rec.next_message_id, 5);
    assert_eq!(rec.next_event_id, 3);
    assert_eq!(j.allocate_message_ids(1), 5);
}

#[tokio::test]
async fn undispatch_returns_message_to_queue() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, _) = Journal::open(dir.path(), &cfg()).unwrap();
        j.accept(&[msg(1, "a")]).wait().await.unwrap();
        j.written("smsc", [(MessageId(1), 0, 1)])
            .wait()
            .await
            .unwrap();
        j.undispatch([MessageId(1)]);
        j.events([]).wait().await.unwrap();
    }
    let (_, rec) = Journal::open(dir.path(), &cfg()).unwrap();
    assert_eq!(rec.messages[0].carrier(), None);
    assert!(!rec.messages[0].written);
}

#[tokio::test]
async fn a_dispatch_record_of_an_older_journal_counts_as_written() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, _) = Journal::open(dir.path(), &cfg()).unwrap();
        j.accept(&[msg(1, "a")]).wait().await.unwrap();
        j.legacy_dispatch([(MessageId(1), "smsc", 2)])
            .wait()
            .await
            .unwrap();
    }
    let (_, rec) = Journal::open(dir.path(), &cfg()).unwrap();
    assert_eq!(rec.messages[0].carrier(), Some("smsc"));
    assert_eq!(rec.messages[0].parts(), 2);
    assert!(rec.messages[0].written, "may have reached the carrier");
}

/// What `accept_then` makes live is seen by compaction only after the
/// `Accept` was sent (a carry of it follows the `Accept`), and a rotation
/// cannot be asked for in between (what went to the old head is live
/// before compaction looks, so it is carried).
#[tokio::test]
async fn a_batch_is_made_live_after_its_accept_is_sent_and_before_any_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), &cfg()).unwrap();
    let m = msg(1, "a");
    let mut carried = None;
    let durable = j.accept_then([&m], || {
        assert!(
            j.shared.rotation.try_write().is_none(),
            "no rotation while the batch is made live"
        );
        // A compaction that sees the batch now writes its Carry.
        carried = Some(j.carry([CarriedMessage {
            message: &m,
            carrier: None,
            parts: 0,
            carrier_ids: &[],
            written: false,
        }]));
    });
    durable.wait().await.unwrap();
    carried.expect("made live").wait().await.unwrap();
    assert!(j.shared.rotation.try_write().is_some());
    assert_eq!(
        stored_ids(dir.path()),
        [
            (1, StoredIds::Accepted(vec![1])),
            (1, StoredIds::Carried(vec![1]))
        ]
    );
}

#[tokio::test]
async fn compaction_keeps_whether_a_dispatched_message_was_written() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, _) = Journal::open(dir.path(), &cfg()).unwrap();
        j.accept(&[msg(1, "a"), msg(2, "b")]).wait().await.unwrap();
        let head = j.rotate().await.unwrap();
        let (m1, m2) = (msg(1, "a"), msg(2, "b"));
        j.carry([
            CarriedMessage {
                message: &m1,
                carrier: Some("smsc"),
                parts: 1,
                carrier_ids: &[],
                written: false,
            },
            CarriedMessage {
                message: &m2,
                carrier: Some("smsc"),
                parts: 1,
                carrier_ids: &[],
                written: true,
            },
        ])
        .wait()
        .await
        .unwrap();
        j.delete_before(head).await.unwrap();
    }
    let (_, rec) = Journal::open(dir.path(), &cfg()).unwrap();
    let written: Vec<(u64, bool)> = rec
        .messages
        .iter()
        .map(|m| (m.message().unwrap().id.0, m.written))
        .collect();
    assert_eq!(written, vec![(1, false), (2, true)]);
}

#[tokio::test]
async fn a_segment_cut_short_by_a_crash_while_it_was_deleted_is_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, _) = Journal::open(dir.path(), &cfg()).unwrap();
        j.accept(&[msg(1, "a")]).wait().await.unwrap();
        let head = j.rotate().await.unwrap();
        j.accept(&[msg(2, "b")]).wait().await.unwrap();
        j.delete_before(head).await.unwrap();
    }
    // Deleted segments are gone, nothing half deleted is left.
    let names = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert!(
        names().iter().all(|n| !n.ends_with(".del")),
        "{:?}",
        names()
    );
    // A crash in the middle of a deletion: the segment was renamed out of
    // replay's sight, then cut mid-record. The start ignores it (it would
    // be damage in an old segment as a .log) and removes it.
    let segs = replay::list_segments(dir.path()).unwrap();
    let live = writer::segment_path(dir.path(), segs[0].0);
    let mut cut = std::fs::read(&live).unwrap();
    cut.truncate(cut.len() - 3);
    let doomed = dir.path().join("00000000000000000001.del");
    std::fs::write(&doomed, &cut).unwrap();
    let (_, rec) = Journal::open(dir.path(), &cfg()).unwrap();
    let ids: Vec<u64> = rec
        .messages
        .iter()
        .map(|m| m.message().unwrap().id.0)
        .collect();
    assert_eq!(ids, vec![2]);
    for _ in 0..500 {
        if !doomed.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!doomed.exists(), "{:?}", names());
}

#[tokio::test]
async fn torn_tail_is_truncated_and_earlier_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, _) = Journal::open(dir.path(), &cfg()).unwrap();
        j.accept(&[msg(1, "a"), msg(2, "b")]).wait().await.unwrap();
    }
    let segs = replay::list_segments(dir.path()).unwrap();
    let path = writer::segment_path(dir.path(), segs.last().unwrap().0);
    let mut data = std::fs::read(&path).unwrap();
    let good = data.len();
    data.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, 2, 9, 9]); // half a record
    std::fs::write(&path, &data).unwrap();
    let (_, rec) = Journal::open(dir.path(), &cfg()).unwrap();
    assert_eq!(rec.messages.len(), 2);
    assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, good);
}

#[tokio::test]
async fn corruption_before_the_tail_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, _) = Journal::open(dir.path(), &cfg()).unwrap();
        j.accept(&[msg(1, "a")]).wait().await.unwrap();
    }
    // A second open starts a new head segment, so the first is no longer last.
    drop(Journal::open(dir.path(), &cfg()).unwrap());
    let first = replay::list_segments(dir.path()).unwrap()[0].0;
    let path = writer::segment_path(dir.path(), first);
    let mut data = std::fs::read(&path).unwrap();
    let n = data.len();
    data[n - 3] ^= 0xff;
    std::fs::write(&path, &data).unwrap();
    let err = Journal::open(dir.path(), &cfg()).unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { .. }), "{err}");
}

#[tokio::test]
async fn group_commit_serves_many_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), &cfg()).unwrap();
    let mut tasks = Vec::new();
    for t in 0..50u64 {
        let j = j.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..20u64 {
                let id = j.allocate_message_ids(1);
                j.accept(&[msg(id, &format!("{t}-{k}"))])
                    .wait()
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    drop(j);
    let (_, rec) = Journal::open(dir.path(), &cfg()).unwrap();
    assert_eq!(rec.messages.len(), 1000);
}

#[tokio::test]
async fn rotation_and_compaction_keep_carried_messages() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, _) = Journal::open(dir.path(), &cfg()).unwrap();
        j.accept(&[msg(1, "a"), msg(2, "b")]).wait().await.unwrap();
        j.written("smsc", [(MessageId(2), 0, 1)])
            .wait()
            .await
            .unwrap();
        j.submitted([(MessageId(2), 0, "cid")]);
        let head = j.rotate().await.unwrap();
        let m2 = msg(2, "b");
        let ids = vec!["cid".to_string()];
        j.carry([CarriedMessage {
            message: &m2,
            carrier: Some("smsc"),
            parts: 1,
            carrier_ids: &ids,
            written: true,
        }])
        .wait()
        .await
        .unwrap();
        j.delete_before(head).await.unwrap();
        assert_eq!(j.segments(), 1);
    }
    let (_, rec) = Journal::open(dir.path(), &cfg()).unwrap();
    // Message 1 was not carried, so compaction dropped it: only 2 remains.
    assert_eq!(rec.messages.len(), 1);
    assert_eq!(rec.messages[0].carrier_ids(), vec!["cid".to_string()]);
    assert_eq!(rec.next_message_id, 3);
}

#[test]
fn hand_encoded_accept_matches_the_prost_encoding() {
    use prost::Message as _;
    let mut ms = vec![msg(1, "a"), msg(2, "b"), msg(3, "c")];
    ms[1].from = Sender::parse("+14155550199").unwrap();
    ms[1].media = Box::new(["ab".repeat(32).into()]);
    ms[1].auto_reply = true;
    ms[1].mms = Some(Box::new(crate::model::MmsFields {
        subject: Some("subj".into()),
        service_code: Some("acme-vip".into()),
        linked_id: Some("mo-7".into()),
        message_class: Some(crate::model::MmsMessageClass::Personal),
        priority: Some(crate::model::MmsPriority::High),
        read_reply: Some(false),
        distribution_indicator: Some(true),
        earliest_delivery_ms: 1_800_000_000_000,
    }));
    ms[2].mms = Some(Box::new(crate::model::MmsFields {
        linked_id: Some("mo-8".into()),
        read_reply: Some(true),
        ..crate::model::MmsFields::default()
    }));
    ms[2].from = Sender::parse("ACME").unwrap();
    ms[2].priority = Priority::Marketing;
    ms[2].channel = ChannelPref::Mms;
    ms[2].fallback = FallbackPolicy::None;
    let mut b = BytesMut::new();
    record::encode_accept(&mut b, &ms);
    let decoded = record::Accept::decode(b.freeze()).unwrap();
    let want = record::Accept {
        messages: ms.iter().map(record::StoredMessage::from_message).collect(),
    };
    assert_eq!(decoded, want);
    for (d, m) in decoded.messages.iter().zip(&ms) {
        assert_eq!(&d.to_message().unwrap(), m);
    }
}

/// Three stored forms covering every kind of field: a short code, a long
/// code with MMS fields, an alphanumeric sender.
fn stored_forms() -> Vec<Bytes> {
    let mut ms = [msg(1, "a"), msg(2, "b"), msg(3, "c")];
    ms[1].from = Sender::parse("+14155550199").unwrap();
    ms[1].media = Box::new(["m1".into(), "m2".into()]);
    ms[1].auto_reply = true;
    ms[1].tags = Box::new(["t1".into(), "t2".into()]);
    ms[1].channel = ChannelPref::Mms;
    ms[1].fallback = FallbackPolicy::None;
    // Every field of the stored form set (a tag the in-place readers did not
    // know would be skipped unchecked, and caught here).
    ms[1].mms = Some(Box::new(crate::model::MmsFields {
        subject: Some("subj".into()),
        service_code: Some("acme-vip".into()),
        linked_id: Some("mo-7".into()),
        message_class: Some(crate::model::MmsMessageClass::Personal),
        priority: Some(crate::model::MmsPriority::High),
        read_reply: Some(true),
        distribution_indicator: Some(false),
        earliest_delivery_ms: 1_800_000_000_000,
    }));
    ms[2].from = Sender::parse("ACME").unwrap();
    ms[2].priority = Priority::Marketing;
    let stored: Vec<Bytes> = ms.iter().map(stored_form).collect();
    let tags = |b: &[u8]| {
        let mut tags = std::collections::BTreeSet::new();
        let mut buf = b;
        while !buf.is_empty() {
            let (tag, wire) = prost::encoding::decode_key(&mut buf).unwrap();
            tags.insert(tag);
            prost::encoding::skip_field(wire, tag, &mut buf, Default::default()).unwrap();
        }
        tags
    };
    assert_eq!(
        tags(&stored[1]),
        (1..=24).collect(),
        "every field of `StoredMessage`"
    );
    stored
}

/// What prost's decoder and `to_message` make of a stored form.
fn decoded(stored: &[u8]) -> Result<Message, RecordError> {
    use prost::Message as _;
    record::StoredMessage::decode(stored)?.to_message()
}

/// The in-place readers a restart uses instead of decoding every message
/// whole agree with the decoder, on the stored forms and on every one of
/// them with a byte changed or cut short.
#[test]
fn the_in_place_readers_agree_with_the_decoder_on_every_damage() {
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for stored in stored_forms() {
        cases.push(stored.to_vec());
        for i in 0..stored.len() {
            cases.push(stored[..i].to_vec());
            for v in [0x00, 0x01, 0x02, 0x07, 0x0a, 0x32, 0x7f, 0x80, 0xc3, 0xff] {
                let mut c = stored.to_vec();
                c[i] = v;
                cases.push(c);
            }
        }
    }
    let (mut ok, mut bad, mut heads_only) = (0, 0, 0);
    for c in &cases {
        let want = decoded(c);
        let checked = check_stored(c);
        assert_eq!(
            checked.is_ok(),
            want.is_ok(),
            "{c:02x?}: check {checked:?}, decode {want:?}"
        );
        if let Ok(m) = &want {
            ok += 1;
            let head = StoredHead::read(c).unwrap();
            assert_eq!(
                (
                    head.id,
                    head.tenant,
                    head.client_ref,
                    head.priority,
                    head.accepted_at_ms
                ),
                (
                    m.id.0,
                    &*m.tenant,
                    &*m.client_ref,
                    m.priority,
                    m.accepted_at_ms
                ),
            );
        } else {
            bad += 1;
        }
        // What replay keeps of a head it reads: whether the rest decodes.
        if let Ok(head) = StoredHead::read(c) {
            heads_only += usize::from(want.is_err());
            assert_eq!(head.decodes, want.is_ok(), "{c:02x?}: decodes");
        }
    }
    // Both kinds were exercised, and heads that read of forms that do not
    // decode (an address out of range).
    assert!(ok > 100 && bad > 100, "{ok} decodable, {bad} not");
    assert!(
        heads_only > 0,
        "no head read of a form that does not decode"
    );
}

/// The stored form of a message decodes back to it, and an `Accept`
/// payload built from stored forms is the one built from the messages.
#[test]
fn stored_forms_round_trip_and_frame_as_the_messages_do() {
    let ms = [msg(1, "a"), msg(2, "b")];
    let stored: Vec<Bytes> = ms.iter().map(stored_form).collect();
    for (s, m) in stored.iter().zip(&ms) {
        assert_eq!(&stored_message(s).unwrap(), m);
    }
    let (mut from_messages, mut from_stored) = (BytesMut::new(), BytesMut::new());
    encode_messages(&mut from_messages, &ms);
    encode_stored(&mut from_stored, stored.iter().map(|s| &s[..]));
    assert_eq!(from_messages, from_stored);
    assert_eq!(decode_messages(&from_stored).unwrap(), ms);
}

/// One flipped byte in the middle of the last segment is damage, not a torn
/// tail: the start is refused and nothing is cut; `salvage` keeps every
/// valid record, and a message delivered before the damage is not queued
/// again while one that was live there ends unknown rather than resent.
#[tokio::test]
async fn a_flipped_byte_mid_segment_refuses_the_start_and_salvage_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, _) = Journal::open(dir.path(), &cfg()).unwrap();
        // Record 2: messages 1 and 2 accepted; record 3: both written.
        j.accept(&[msg(1, "a"), msg(2, "b")]).wait().await.unwrap();
        j.written("smsc", [(MessageId(1), 0, 1), (MessageId(2), 0, 1)])
            .wait()
            .await
            .unwrap();
        // Record 4: message 1 delivered (its final event).
        j.events([&event(1, 1)]).wait().await.unwrap();
        // Records 5..35: 31 more messages, one per record.
        for id in 3..34 {
            j.accept(&[msg(id, &format!("m{id}"))])
                .wait()
                .await
                .unwrap();
        }
    }
    let segs = replay::list_segments(dir.path()).unwrap();
    assert_eq!(segs.len(), 1);
    let path = writer::segment_path(dir.path(), segs[0].0);
    let mut data = std::fs::read(&path).unwrap();
    let spans = replay::scan(&data);
    assert_eq!(spans.len(), 35, "header + 34 records");
    // Flip a byte inside record 3 (the Written record).
    let replay::Span::Record { offset, len } = spans[2] else {
        panic!()
    };
    data[offset + len - 2] ^= 0x40;
    std::fs::write(&path, &data).unwrap();

    let err = Journal::open(dir.path(), &cfg()).unwrap_err();
    assert!(
        matches!(&err, JournalError::Corrupt { offset: o, .. } if *o == offset as u64),
        "{err}"
    );
    assert!(err.to_string().contains("journal salvage"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), data, "nothing was cut");

    let report = salvage::check(dir.path()).unwrap();
    assert!(report.is_damaged(), "{report}");
    assert_eq!(report.segments[0].records, 34);
    assert_eq!(
        report.segments[0].damaged,
        vec![(offset as u64, len as u64)]
    );

    let done = salvage::salvage(dir.path(), false).unwrap();
    assert_eq!(done.records_kept, 34);
    assert_eq!(done.bytes_dropped, len as u64);
    assert_eq!(
        done.marked_unknown, 2,
        "messages 1 and 2 were live at the damage"
    );
    assert!(path.with_extension("log.damaged").exists());
    assert!(!salvage::check(dir.path()).unwrap().is_damaged());

    let (_, rec) = Journal::open(dir.path(), &cfg()).unwrap();
    let ids: Vec<u64> = rec
        .messages
        .iter()
        .map(|m| m.message().unwrap().id.0)
        .collect();
    // Message 1 ended (its event survived): it is not live again.
    assert_eq!(ids, (2..34).collect::<Vec<_>>());
    // Message 2's Written record was the damaged one: it may have left, so
    // it ends unknown, never sent twice; the others were never written.
    assert!(rec.messages[0].written);
    assert!(rec.messages[1..].iter().all(|m| !m.written));
    assert_eq!(rec.events, vec![event(1, 1)]);
}

/// A journal holding message 1, closed: its directory, its one segment and
/// that segment's bytes.
async fn one_accepted_message() -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, _) = Journal::open(dir.path(), &cfg()).unwrap();
        j.accept(&[msg(1, "a")]).wait().await.unwrap();
    }
    let segs = replay::list_segments(dir.path()).unwrap();
    let path = writer::segment_path(dir.path(), segs[0].0);
    let data = std::fs::read(&path).unwrap();
    (dir, path, data)
}

#[tokio::test]
async fn garbage_after_the_last_record_is_a_torn_tail() {
    let (dir, path, mut data) = one_accepted_message().await;
    let good = data.len();
    data.extend_from_slice(&[0u8; 4096]); // a zero-filled page after a crash
    std::fs::write(&path, &data).unwrap();
    assert!(!salvage::check(dir.path()).unwrap().is_damaged());
    let (_, rec) = Journal::open(dir.path(), &cfg()).unwrap();
    assert_eq!(rec.messages.len(), 1);
    assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, good);
}

/// The last segment after a power loss during a group commit into a
/// segment zeroed ahead of time: the disk kept some pages of the write and
/// not others, so a bad record is followed by a page of zeros and then by
/// valid records. No sync completed after that page was written, so none
/// of it was acknowledged: a start cuts it all (it used to refuse).
#[tokio::test]
async fn a_write_a_power_loss_cut_in_pages_is_cut_from_its_first_bad_byte() {
    let (dir, path, mut data) = one_accepted_message().await;
    let good = data.len();
    // The first page of the lost write: a record's start, its rest lost.
    data.extend_from_slice(&[200, 1, 0, 0, 9, 9, 9, 9, 2, 7, 7, 7]);
    let page = 4096;
    let lost = data.len().div_ceil(page) * page + page; // a whole page of zeros
    data.resize(lost, 0);
    // A later page the disk kept: whole records of the same write.
    let mut later = BytesMut::new();
    record::frame_with(&mut later, Kind::Accept, |b| {
        record::encode_accept(b, [&msg(2, "b")])
    });
    data.extend_from_slice(&later);
    data.resize(data.len() + 64 * 1024, 0); // the zeroed rest of the segment
    std::fs::write(&path, &data).unwrap();

    assert!(!salvage::check(dir.path()).unwrap().is_damaged());
    let (_, rec) = Journal::open(dir.path(), &cfg()).unwrap();
    assert_eq!(rec.messages.len(), 1, "only the acknowledged message");
    assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, good);
    let kept = path.with_extension("log.unsynced");
    assert_eq!(std::fs::read(kept).unwrap(), data, "the segment as it was");
}

/// `salvage` on a journal whose last segment ends in zeros written ahead
/// of time (what nearly every crash leaves): nothing to mend, and no live
/// message is marked as possibly sent.
#[tokio::test]
async fn salvage_leaves_zeros_after_the_last_record_to_the_start() {
    let (dir, path, mut data) = one_accepted_message().await;
    data.extend_from_slice(&[200, 1, 0, 0, 9, 9, 9]); // torn, then zeros
    data.resize(1 << 20, 0);
    std::fs::write(&path, &data).unwrap();
    let report = salvage::salvage(dir.path(), false).unwrap();
    assert_eq!(report.marked_unknown, 0, "{report}");
    assert!(report.rewritten.is_empty(), "{report}");
    let (_, rec) = Journal::open(dir.path(), &cfg()).unwrap();
    assert_eq!(rec.messages.len(), 1);
    assert!(
        rec.messages[0].dispatch.is_none(),
        "still queued, not unknown"
    );
}

/// Without a page of zeros between them, a bad record followed by valid
/// ones is damage, zeros after them or not: the start is refused.
#[tokio::test]
async fn a_bad_record_before_valid_ones_with_no_lost_page_between_is_damage() {
    let (dir, path, mut data) = one_accepted_message().await;
    data.extend_from_slice(&[200, 1, 0, 0, 9, 9, 9, 9, 2, 7, 7, 7]);
    data.resize(data.len() + 4000, 0xAB);
    let mut later = BytesMut::new();
    record::frame_with(&mut later, Kind::Accept, |b| {
        record::encode_accept(b, [&msg(2, "b")])
    });
    data.extend_from_slice(&later);
    data.resize(data.len() + 64 * 1024, 0);
    std::fs::write(&path, &data).unwrap();

    assert!(salvage::check(dir.path()).unwrap().is_damaged());
    assert!(matches!(
        Journal::open(dir.path(), &cfg()),
        Err(JournalError::Corrupt { .. })
    ));
}

#[test]
fn replay_of_the_largest_ids_does_not_overflow() {
    // Found by the journal_replay fuzz target: `id + 1` overflowed for a
    // record naming id u64::MAX (a panic with overflow checks; without them
    // the next id wrapped below the recovered one).
    let mut m = msg(1, "a");
    m.id = MessageId(u64::MAX);
    let mut seg = BytesMut::new();
    record::frame_with(&mut seg, Kind::Accept, |b| record::encode_accept(b, [&m]));
    record::frame(
        &mut seg,
        Kind::Remember,
        &record::Remember {
            entries: vec![record::DedupeEntry {
                tenant: "acme".into(),
                client_ref: "b".into(),
                id: u64::MAX,
                accepted_at_ms: 7,
            }],
        },
    );
    record::frame(
        &mut seg,
        Kind::Event,
        &record::Events {
            entries: vec![record::EventEntry {
                event_id: u64::MAX,
                message_id: 0,
                tenant: "acme".into(),
                payload: Bytes::new(),
                ..Default::default()
            }],
        },
    );
    let len = seg.len();
    let (rec, valid) = fuzz_replay(seg.freeze()).unwrap();
    assert_eq!(valid, len);
    assert_eq!(rec.messages.len(), 1);
    assert_eq!(rec.next_message_id, u64::MAX);
    assert_eq!(rec.next_event_id, u64::MAX);
}

#[test]
fn events_are_encoded_as_the_event_record_says() {
    // Every field at its default (nothing written), each field set in some
    // event, a ten-byte varint, payload and tenant past 127 bytes
    // (two-byte lengths), and an empty event list.
    let mut events = [
        PendingEvent {
            event_id: 0,
            message_id: MessageId(0),
            tenant: "".into(),
            payload: Bytes::new(),
            sink: String::new(),
            created_ms: 0,
        },
        event(7, 0),
        event(8, 9),
    ];
    events[2].payload = Bytes::from(vec![0xab; 300]);
    events[2].event_id = u64::MAX;
    events[2].tenant = "t".repeat(200).into();
    for n in [0, 1, events.len()] {
        let mut b = BytesMut::new();
        record::encode_events(&mut b, &events[..n]);
        let want = record::Events {
            entries: events[..n]
                .iter()
                .map(|e| record::EventEntry {
                    event_id: e.event_id,
                    message_id: e.message_id.0,
                    tenant: e.tenant.to_string(),
                    payload: e.payload.clone(),
                    sink: e.sink.clone(),
                    created_ms: e.created_ms,
                })
                .collect(),
        };
        assert_eq!(
            &b[..],
            &prost::Message::encode_to_vec(&want)[..],
            "{n} events"
        );
    }
}
