use std::time::Duration;

use super::*;
use crate::media::testutil::*;

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn put_get_round_trip() {
    let (_tmp, store) = store_with(|_| {});
    let png = small_png();
    let info = store.put("acme", "image/png", png.clone()).unwrap();
    assert_eq!(info.media_type, MediaType::Png);
    assert_eq!(info.len, png.len() as u64);
    assert!(info.created);
    // The id is the lowercase hex sha256 of the bytes.
    let hex = info.id.to_hex();
    assert_eq!(hex.len(), 64);
    let want: String = Sha256::digest(&png)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex, want);
    let path = store.config().dir.join(&hex[..2]).join(&hex);
    assert_eq!(fs::read(&path).unwrap(), png);
    let m = store.get("acme", &hex).unwrap();
    assert_eq!(m.bytes, png);
    assert_eq!(m.media_type, MediaType::Png);
    assert_eq!(m.id, info.id);
    // Upper case ids are the same id.
    assert_eq!(store.get("acme", &hex.to_uppercase()).unwrap().id, info.id);
    // Tolerant declared types.
    let j = store.put("acme", "image/jpg; q=1", small_jpeg()).unwrap();
    assert_eq!(j.media_type, MediaType::Jpeg);
    let t = store
        .put("acme", "text/plain; charset=utf-8", Bytes::from("hi"))
        .unwrap();
    assert_eq!(t.media_type, MediaType::Text);
}

#[test]
fn a_message_page_written_by_an_earlier_version_reads_in_order() {
    let (tmp, store) = store_with(|_| {});
    let a = store.put("acme", "image/png", small_png()).unwrap().id;
    let b = store.put("acme", "image/jpeg", small_jpeg()).unwrap().id;
    assert_eq!(store.page(7), None);
    let dir = tmp.path().join("media");
    fs::write(
        dir.join("pages").join(format!("{:016x}", 7)),
        format!("{}\n{}\n", b.to_hex(), a.to_hex()),
    )
    .unwrap();
    drop(store);
    let again = MediaStore::open(StoreConfig::new(&dir)).unwrap();
    assert_eq!(again.page(7), Some(vec![b, a]));
    // Lines that are not media ids are skipped, never a panic.
    let file = dir.join("pages").join(format!("{:016x}", 8));
    fs::write(&file, format!("junk\n{}\n../../x\n", a.to_hex())).unwrap();
    assert_eq!(again.page(8), Some(vec![a]));
}

#[test]
fn same_bytes_twice_write_one_file() {
    let (_tmp, store) = store_with(|_| {});
    let png = small_png();
    let a = store.put("acme", "image/png", png.clone()).unwrap();
    let files = files_under(&store.config().dir);
    let before = fs::metadata(
        store
            .config()
            .dir
            .join(&a.id.to_hex()[..2])
            .join(a.id.to_hex()),
    )
    .unwrap()
    .modified()
    .unwrap();
    let b = store.put("acme", "image/png", png.clone()).unwrap();
    assert_eq!(a.id, b.id);
    assert!(!b.created);
    assert_eq!(files_under(&store.config().dir), files);
    let s = store.stats();
    assert_eq!(s.files_written, 1);
    assert_eq!(s.markers_written, 1);
    let after = fs::metadata(
        store
            .config()
            .dir
            .join(&a.id.to_hex()[..2])
            .join(a.id.to_hex()),
    )
    .unwrap()
    .modified()
    .unwrap();
    assert_eq!(before, after);
    // One content file and one marker, no temporary files left.
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| !f.to_string_lossy().contains(TMP_PREFIX))
    );
    // Another tenant: a marker only.
    let c = store.put("other", "image/png", png).unwrap();
    assert!(!c.created);
    assert_eq!(store.stats().files_written, 1);
    assert_eq!(store.stats().markers_written, 2);
}

#[test]
fn declared_type_is_checked_against_the_bytes() {
    let (_tmp, store) = store_with(|_| {});
    match store.put("acme", "image/png", small_jpeg()) {
        Err(MediaError::TypeMismatch { declared, actual }) => {
            assert_eq!(declared, MediaType::Png);
            assert_eq!(actual, Some(MediaType::Jpeg));
        }
        other => panic!("{other:?}"),
    }
    match store.put(
        "acme",
        "image/gif",
        Bytes::from_static(b"\x00\x01\x02garbage"),
    ) {
        Err(MediaError::TypeMismatch { actual: None, .. }) => {}
        other => panic!("{other:?}"),
    }
    // Text that is SMIL, SMIL that is text.
    assert!(matches!(
        store.put("acme", "text/plain", Bytes::from("<smil/>")),
        Err(MediaError::TypeMismatch { .. })
    ));
    assert!(matches!(
        store.put("acme", "application/smil", Bytes::from("hello")),
        Err(MediaError::TypeMismatch { .. })
    ));
    match store.put("acme", "image/webp", small_png()) {
        Err(MediaError::Unsupported { content_type }) => assert_eq!(content_type, "image/webp"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store.put("acme", "image/png", Bytes::new()),
        Err(MediaError::Empty)
    ));
    // Nothing was written.
    assert_eq!(store.stats().files_written, 0);
    assert!(
        files_under(&store.config().dir).is_empty(),
        "{:?}",
        files_under(&store.config().dir)
    );
}

#[test]
fn oversize_is_refused() {
    let (_tmp, store) = store_with(|c| c.max_size = 100);
    let mut text = vec![b'a'; 101];
    match store.put("acme", "text/plain", Bytes::from(text.clone())) {
        Err(MediaError::TooLarge { len: 101, max: 100 }) => {}
        other => panic!("{other:?}"),
    }
    text.pop();
    assert!(store.put("acme", "text/plain", Bytes::from(text)).is_ok());
    assert!(matches!(
        store.begin_upload("acme", "text/plain", 101),
        Err(MediaError::TooLarge { .. })
    ));
    // The default is 5 MiB.
    assert_eq!(StoreConfig::new("x").max_size, 5 * 1024 * 1024);
}

#[test]
fn tenants_only_see_their_own_media() {
    let (_tmp, store) = store_with(|_| {});
    let a = store.put("acme", "image/png", small_png()).unwrap();
    let id = a.id.to_hex();
    let err = store.get("globex", &id).unwrap_err();
    assert!(matches!(err, MediaError::NotFound));
    // The same error as an id nobody uploaded.
    let missing = MediaId::of(b"nothing").to_hex();
    let err2 = store.get("globex", &missing).unwrap_err();
    assert_eq!(err.to_string(), err2.to_string());
    assert!(matches!(
        store.get("acme", &missing),
        Err(MediaError::NotFound)
    ));
    // Unscoped lookups (signed links) see everything.
    assert_eq!(store.get_unscoped(&id).unwrap().id, a.id);
    assert!(matches!(
        store.get_unscoped(&missing),
        Err(MediaError::NotFound)
    ));
    // Uploading the same bytes gives globex its own right to them.
    store.put("globex", "image/png", small_png()).unwrap();
    assert!(store.get("globex", &id).is_ok());
}

#[test]
fn tenant_names_cannot_escape_or_collide() {
    let (tmp, store) = store_with(|_| {});
    let tenants = [
        "../../evil",
        "a/b",
        "a_b",
        "a-b",
        "",
        ".",
        "..",
        "t-x",
        "ünï",
        &"z".repeat(300),
    ];
    let mut ids = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        let info = store
            .put(t, "text/plain", Bytes::from(format!("media {i}")))
            .unwrap();
        ids.push(info.id.to_hex());
    }
    // Everything stays inside the store directory.
    for f in files_under(tmp.path()) {
        assert!(f.starts_with(&store.config().dir), "{f:?}");
    }
    // Each tenant sees its own media only, after a restart too.
    let store = MediaStore::open(store.config().clone()).unwrap();
    for (i, t) in tenants.iter().enumerate() {
        for (j, id) in ids.iter().enumerate() {
            assert_eq!(store.get(t, id).is_ok(), i == j, "tenant {t:?} media {j}");
        }
    }
    // The directory names are distinct.
    let names: HashSet<String> = tenants.iter().map(|t| tenant_dir_name(t)).collect();
    assert_eq!(names.len(), tenants.len());
}

#[test]
fn malformed_ids_are_refused_before_any_lookup() {
    let (_tmp, store) = store_with(|_| {});
    store.put("acme", "image/png", small_png()).unwrap();
    let ok = "a".repeat(64);
    for bad in [
        "",
        "../../../../etc/passwd",
        &"a".repeat(63),
        &"a".repeat(65),
        &format!("{}g", "a".repeat(63)),
        &format!("aa/{}", "a".repeat(61)),
        &format!("{}/", "a".repeat(63)),
        &format!("{}\0", "a".repeat(63)),
        "..%2F..%2Fetc%2Fpasswd",
        &"é".repeat(32),
    ] {
        assert!(
            matches!(store.get("acme", bad), Err(MediaError::InvalidId)),
            "{bad:?}"
        );
        assert!(matches!(
            store.get_unscoped(bad),
            Err(MediaError::InvalidId)
        ));
    }
    assert!(matches!(store.get("acme", &ok), Err(MediaError::NotFound)));
    assert_eq!(store.stats().disk_reads, 0);
}

#[test]
fn durable_across_restart_and_cached() {
    let (_tmp, store) = store_with(|_| {});
    let info = store.put("acme", "image/png", small_png()).unwrap();
    let id = info.id.to_hex();
    // A fresh store (restart): ownership from the marker, content from disk
    // once, then from memory.
    let store = MediaStore::open(store.config().clone()).unwrap();
    for _ in 0..10_000 {
        let m = store.get("acme", &id).unwrap();
        assert_eq!(m.bytes, small_png());
    }
    let s = store.stats();
    assert_eq!(s.disk_reads, 1);
    assert_eq!(s.cache_hits, 9_999);
    // A put fills the cache: no read at all.
    let (_tmp2, fresh) = store_with(|_| {});
    let info = fresh.put("acme", "image/jpeg", small_jpeg()).unwrap();
    for _ in 0..100 {
        fresh.get("acme", &info.id.to_hex()).unwrap();
    }
    assert_eq!(fresh.stats().disk_reads, 0);
}

#[test]
fn cache_is_bounded_by_bytes() {
    let (_tmp, store) = store_with(|c| c.cache_bytes = 100);
    let a = store
        .put("t", "text/plain", Bytes::from(vec![b'a'; 60]))
        .unwrap();
    let b = store
        .put("t", "text/plain", Bytes::from(vec![b'b'; 60]))
        .unwrap();
    // Only one fits: alternating reads go to disk.
    for _ in 0..3 {
        store.get("t", &a.id.to_hex()).unwrap();
        store.get("t", &b.id.to_hex()).unwrap();
    }
    assert_eq!(store.stats().disk_reads, 6);
    let c = store.cache.lock();
    assert!(c.bytes <= 100);
    assert_eq!(c.map.len(), c.order.len());
    drop(c);
    // Bigger than the whole cache: never cached, still served.
    let big = store
        .put("t", "text/plain", Bytes::from(vec![b'c'; 200]))
        .unwrap();
    store.get("t", &big.id.to_hex()).unwrap();
    assert_eq!(store.stats().disk_reads, 7);
}

#[test]
fn corrupt_files_are_detected_and_temporaries_cleaned() {
    let (_tmp, store) = store_with(|_| {});
    let info = store.put("acme", "image/png", small_png()).unwrap();
    let hex = info.id.to_hex();
    let shard = store.config().dir.join(&hex[..2]);
    fs::write(shard.join(&hex), b"\x89PNG\r\n\x1a\nnot the same").unwrap();
    fs::write(shard.join(format!("{TMP_PREFIX}{hex}-1")), b"half").unwrap();
    let store = MediaStore::open(store.config().clone()).unwrap();
    assert!(matches!(
        store.get("acme", &hex),
        Err(MediaError::Corrupt { .. })
    ));
    assert!(!shard.join(format!("{TMP_PREFIX}{hex}-1")).exists());
    // Putting the bytes again repairs it (the size differs).
    let again = store.put("acme", "image/png", small_png()).unwrap();
    assert!(again.created);
    let store = MediaStore::open(store.config().clone()).unwrap();
    assert_eq!(store.get("acme", &hex).unwrap().bytes, small_png());
}

fn chunked(store: &MediaStore, tenant: &str, ct: &str, bytes: &[u8], chunk: usize) -> MediaInfo {
    let up = store.begin_upload(tenant, ct, bytes.len() as u64).unwrap();
    let mut off = 0;
    for c in bytes.chunks(chunk) {
        let got = store.put_chunk(tenant, up, off as u64, c).unwrap();
        off += c.len();
        assert_eq!(got, off as u64);
    }
    store.finish(tenant, up).unwrap()
}

#[test]
fn chunked_upload_equals_put() {
    let (_tmp, store) = store_with(|_| {});
    let png = small_png();
    let info = chunked(&store, "acme", "image/png", &png, 7);
    assert_eq!(info.id, MediaId::of(&png));
    assert!(info.created);
    assert_eq!(store.get("acme", &info.id.to_hex()).unwrap().bytes, png);
    // Again: deduplicated.
    let again = chunked(&store, "acme", "image/png", &png, 1000);
    assert!(!again.created);
    assert_eq!(store.uploads_in_progress(), 0);
}

#[test]
fn chunked_upload_errors() {
    let (_tmp, store) = store_with(|c| {
        c.max_uploads_per_tenant = 2;
        c.max_upload_bytes = 1000;
    });
    let data = small_png();
    let total = data.len() as u64;
    let up = store.begin_upload("acme", "image/png", total).unwrap();
    // Wrong offsets.
    assert!(matches!(
        store.put_chunk("acme", up, 5, &data[5..10]),
        Err(MediaError::BadOffset {
            expected: 0,
            offset: 5
        })
    ));
    store.put_chunk("acme", up, 0, &data[..10]).unwrap();
    // A retransmitted chunk is harmless; a different one is not.
    assert_eq!(store.put_chunk("acme", up, 0, &data[..10]).unwrap(), 10);
    assert!(matches!(
        store.put_chunk("acme", up, 0, b"0123456789"),
        Err(MediaError::BadOffset { expected: 10, .. })
    ));
    assert!(matches!(
        store.put_chunk("acme", up, 20, &data[20..30]),
        Err(MediaError::BadOffset { expected: 10, .. })
    ));
    // Past the declared total, including an offset near u64::MAX.
    let over = vec![0u8; data.len()];
    assert!(matches!(
        store.put_chunk("acme", up, 10, &over),
        Err(MediaError::UploadOverflow { .. })
    ));
    assert!(matches!(
        store.put_chunk("acme", up, u64::MAX - 1, b"abc"),
        Err(MediaError::UploadOverflow { .. })
    ));
    // Finish before the end.
    assert!(matches!(
        store.finish("acme", up),
        Err(MediaError::Incomplete { received: 10, total: t }) if t == total
    ));
    // Another tenant cannot touch it.
    assert!(matches!(
        store.put_chunk("globex", up, 10, &data[10..]),
        Err(MediaError::UnknownUpload)
    ));
    assert!(matches!(
        store.finish("globex", up),
        Err(MediaError::UnknownUpload)
    ));
    assert!(!store.abort("globex", up));
    // Unknown ids.
    assert!(matches!(
        store.put_chunk("acme", UploadId(up.0 ^ 1), 0, b"x"),
        Err(MediaError::UnknownUpload)
    ));
    // Completes.
    store.put_chunk("acme", up, 10, &data[10..]).unwrap();
    let info = store.finish("acme", up).unwrap();
    assert_eq!(info.id, MediaId::of(&data));
    // Finished: gone.
    assert!(matches!(
        store.finish("acme", up),
        Err(MediaError::UnknownUpload)
    ));
    // Limits on uploads in progress: per tenant and in declared bytes.
    let u1 = store.begin_upload("acme", "text/plain", 10).unwrap();
    let _u2 = store.begin_upload("acme", "text/plain", 10).unwrap();
    assert!(matches!(
        store.begin_upload("acme", "text/plain", 10),
        Err(MediaError::TooManyUploads(UploadLimit::Tenant(2)))
    ));
    assert!(matches!(
        store.begin_upload("globex", "text/plain", 990),
        Err(MediaError::TooManyUploads(UploadLimit::Bytes(1000)))
    ));
    assert!(store.abort("acme", u1));
    store.begin_upload("globex", "text/plain", 980).unwrap();
    // Declared type and length checked up front.
    assert!(matches!(
        store.begin_upload("x", "video/quicktime", 10),
        Err(MediaError::Unsupported { .. })
    ));
    assert!(matches!(
        store.begin_upload("x", "text/plain", 0),
        Err(MediaError::Empty)
    ));
}

#[test]
fn chunked_upload_checks_the_type_at_finish() {
    let (_tmp, store) = store_with(|_| {});
    let up = store.begin_upload("acme", "image/gif", 5).unwrap();
    store.put_chunk("acme", up, 0, b"hello").unwrap();
    assert!(matches!(
        store.finish("acme", up),
        Err(MediaError::TypeMismatch {
            declared: MediaType::Gif,
            actual: Some(MediaType::Text)
        })
    ));
    assert_eq!(store.uploads_in_progress(), 0);
    assert_eq!(store.stats().files_written, 0);
}

#[tokio::test(start_paused = true)]
async fn abandoned_uploads_expire() {
    let (_tmp, store) = store_with(|c| c.upload_ttl = Duration::from_secs(60));
    let up = store.begin_upload("acme", "text/plain", 4).unwrap();
    store.put_chunk("acme", up, 0, b"ab").unwrap();
    // Activity keeps it alive.
    tokio::time::advance(Duration::from_secs(50)).await;
    store.put_chunk("acme", up, 2, b"c").unwrap();
    tokio::time::advance(Duration::from_secs(50)).await;
    assert_eq!(store.sweep_uploads(), 0);
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(matches!(
        store.put_chunk("acme", up, 3, b"d"),
        Err(MediaError::UnknownUpload)
    ));
    assert_eq!(store.uploads_in_progress(), 0);
    // Expired uploads free their quota.
    let _ = store.begin_upload("acme", "text/plain", 4).unwrap();
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(store.sweep_uploads(), 1);
}

#[test]
fn media_id_parse_and_display() {
    let id = MediaId::of(b"abc");
    let hex = id.to_hex();
    assert_eq!(
        hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(hex.parse::<MediaId>().unwrap(), id);
    assert_eq!(id.to_string(), hex);
    assert!(format!("{id:?}").contains(&hex));
}

/// Distinct text media of exactly `len` bytes.
fn text(i: usize, len: usize) -> Bytes {
    let mut s = format!("media {i} ");
    s.extend(std::iter::repeat_n('x', len - s.len()));
    Bytes::from(s)
}

#[test]
fn over_quota_is_refused_clearly_and_nothing_else_changes() {
    let (_tmp, store) = store_with(|c| {
        c.quota = Quota {
            bytes: 1000,
            count: 0,
        };
        c.tenant_quotas.insert("big".into(), Quota::default());
    });
    let a = store.put("acme", "text/plain", text(1, 400)).unwrap();
    let b = store.put("acme", "text/plain", text(2, 400)).unwrap();
    assert_eq!(
        store.usage("acme").unwrap(),
        Usage {
            bytes: 800,
            count: 2
        }
    );
    let err = store.put("acme", "text/plain", text(3, 300)).unwrap_err();
    assert!(matches!(
        err,
        MediaError::QuotaExceeded(QuotaExceeded::Bytes {
            used: 800,
            limit: 1000,
            len: 300
        })
    ));
    assert_eq!(
        err.to_string(),
        "media quota exceeded: 800 of 1000 bytes used, this media needs 300"
    );
    // Nothing was written, and what is stored is still served.
    assert_eq!(store.stats().files_written, 2);
    assert_eq!(store.usage("acme").unwrap().bytes, 800);
    assert_eq!(store.get("acme", &a.id.to_hex()).unwrap().bytes.len(), 400);
    assert_eq!(store.get("acme", &b.id.to_hex()).unwrap().bytes.len(), 400);
    // The same bytes again cost nothing.
    assert_eq!(
        store.put("acme", "text/plain", text(1, 400)).unwrap().id,
        a.id
    );
    // Other tenants have their own quota; one without a limit has none.
    let c = store.put("globex", "text/plain", text(3, 300)).unwrap();
    for i in 10..15 {
        store.put("big", "text/plain", text(i, 400)).unwrap();
    }
    // Content another tenant stored is charged in full to each owner.
    assert!(matches!(
        store.put("acme", "text/plain", text(3, 300)),
        Err(MediaError::QuotaExceeded(_))
    ));
    assert!(matches!(
        store.get("acme", &c.id.to_hex()),
        Err(MediaError::NotFound)
    ));
}

#[test]
fn the_count_quota_refuses_the_next_media() {
    let (_tmp, store) = store_with(|c| {
        c.quota = Quota { bytes: 0, count: 2 };
    });
    store.put("acme", "text/plain", text(1, 50)).unwrap();
    store.put("acme", "text/plain", text(2, 50)).unwrap();
    let err = store.put("acme", "text/plain", text(3, 50)).unwrap_err();
    assert_eq!(err.to_string(), "media quota exceeded: 2 of 2 media stored");
}

#[test]
fn usage_is_counted_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || {
        let mut c = StoreConfig::new(dir.path().join("media"));
        c.quota = Quota {
            bytes: 1000,
            count: 0,
        };
        c
    };
    {
        let store = MediaStore::open(cfg()).unwrap();
        store.put("acme", "text/plain", text(1, 400)).unwrap();
        store.put("acme", "text/plain", text(2, 400)).unwrap();
        store.put("globex", "text/plain", text(2, 400)).unwrap();
    }
    let store = MediaStore::open(cfg()).unwrap();
    assert_eq!(
        store.usage("acme").unwrap(),
        Usage {
            bytes: 800,
            count: 2
        }
    );
    assert_eq!(store.usage("globex").unwrap().bytes, 400);
    assert_eq!(store.usage("nobody").unwrap(), Usage::default());
    assert!(matches!(
        store.put("acme", "text/plain", text(3, 300)),
        Err(MediaError::QuotaExceeded(_))
    ));
    // Owned media is still known to be owned (free to store again).
    store.put("acme", "text/plain", text(2, 400)).unwrap();
}

#[test]
fn chunked_uploads_are_held_to_the_quota() {
    let (_tmp, store) = store_with(|c| {
        c.quota = Quota {
            bytes: 1000,
            count: 0,
        };
    });
    // Refused up front when the declared size cannot fit.
    assert!(matches!(
        store.begin_upload("acme", "text/plain", 1200),
        Err(MediaError::QuotaExceeded(QuotaExceeded::Bytes {
            used: 0,
            limit: 1000,
            len: 1200
        }))
    ));
    let one = text(1, 600);
    let up = store.begin_upload("acme", "text/plain", 600).unwrap();
    store.put_chunk("acme", up, 0, &one).unwrap();
    store.finish("acme", up).unwrap();
    assert!(matches!(
        store.begin_upload("acme", "text/plain", 600),
        Err(MediaError::QuotaExceeded(_))
    ));
    // And at the end, when others were stored meanwhile.
    let two = text(2, 300);
    let up = store.begin_upload("acme", "text/plain", 300).unwrap();
    store.put_chunk("acme", up, 0, &two).unwrap();
    store.put("acme", "text/plain", text(3, 200)).unwrap();
    assert!(matches!(
        store.finish("acme", up),
        Err(MediaError::QuotaExceeded(_))
    ));
    assert_eq!(store.uploads_in_progress(), 0);
    assert_eq!(store.usage("acme").unwrap().bytes, 800);
}

#[test]
fn uploads_in_progress_are_capped_per_tenant_and_in_all() {
    let (_tmp, store) = store_with(|c| {
        c.max_uploads_per_tenant = 2;
        c.max_uploads = 3;
    });
    // Two chunked uploads in progress: no third upload of any kind.
    let u1 = store.begin_upload("acme", "text/plain", 10).unwrap();
    let _u2 = store.begin_upload("acme", "text/plain", 10).unwrap();
    let err = store.put("acme", "text/plain", text(1, 50)).unwrap_err();
    assert!(matches!(
        err,
        MediaError::TooManyUploads(UploadLimit::Tenant(2))
    ));
    assert_eq!(
        err.to_string(),
        "too many uploads in progress for this tenant (limit 2); retry when one is answered"
    );
    assert!(matches!(
        store.begin_upload("acme", "text/plain", 10),
        Err(MediaError::TooManyUploads(UploadLimit::Tenant(2)))
    ));
    // Another tenant still can, up to the cap over all tenants.
    let _g = store.begin_upload("globex", "text/plain", 10).unwrap();
    assert!(matches!(
        store.put("globex", "text/plain", text(2, 50)),
        Err(MediaError::TooManyUploads(UploadLimit::All(3)))
    ));
    assert!(store.abort("acme", u1));
    store.put("acme", "text/plain", text(1, 50)).unwrap();
    // Media being stored counts as in progress while it is written.
    let slot = store.begin_storing("acme").unwrap();
    assert_eq!(store.uploads_in_progress(), 3);
    assert!(matches!(
        store.put("acme", "text/plain", text(3, 50)),
        Err(MediaError::TooManyUploads(_))
    ));
    drop(slot);
    assert_eq!(store.uploads_in_progress(), 2);
}

#[test]
fn landing_pages_unlinked_past_their_retention_are_swept_and_a_new_link_keeps_one() {
    let (tmp, store) = store_with(|_| {});
    let signer = crate::media::LinkSigner::new(&[5u8; 32]);
    let page = |text: &str| crate::media::LandingPage {
        text: text.into(),
        ..crate::media::LandingPage::default()
    };
    let codes: Vec<String> = ["old", "relinked", "new"]
        .iter()
        .map(|t| {
            let code = signer.landing_code("acme", &page(t));
            assert!(store.put_landing(&code, &page(t)).unwrap());
            code
        })
        .collect();
    let dir = tmp.path().join("media").join("landing");
    let age = |code: &str, days: u64| {
        let when = std::time::SystemTime::now() - Duration::from_secs(days * 86_400);
        fs::OpenOptions::new()
            .write(true)
            .open(dir.join(code))
            .unwrap()
            .set_modified(when)
            .unwrap();
    };
    age(&codes[0], 31);
    age(&codes[1], 31);
    // A fallback links to the second again: it is kept.
    assert!(store.has_landing(&codes[1]));
    // A stray file that is not a page is never touched.
    fs::write(dir.join("notes.txt"), "x").unwrap();
    age("notes.txt", 400);
    assert_eq!(
        store
            .sweep_landing(Duration::from_secs(30 * 86_400))
            .unwrap(),
        1
    );
    assert_eq!(store.landing(&codes[0]), None);
    assert!(!store.has_landing(&codes[0]));
    assert_eq!(store.landing(&codes[1]), Some(page("relinked")));
    assert_eq!(store.landing(&codes[2]), Some(page("new")));
    assert!(dir.join("notes.txt").exists());
    assert_eq!(
        store
            .sweep_landing(Duration::from_secs(30 * 86_400))
            .unwrap(),
        0
    );
}
