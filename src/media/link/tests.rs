use super::*;

const MEDIA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

fn signer() -> LinkSigner {
    LinkSigner::new(&[7u8; 32])
}

#[test]
fn round_trip() {
    let s = signer();
    for msg in [0u64, 1, 0xDEAD_BEEF, u64::MAX] {
        let p = s.path(msg, MEDIA);
        assert!(p.starts_with(&format!("/m/{msg:016x}/{MEDIA}/")), "{p}");
        let token = p.rsplit('/').next().unwrap();
        assert_eq!(token.len(), 26);
        assert!(token.bytes().all(|c| B32.contains(&c)));
        assert_eq!(s.verify(&p), Some((msg, MEDIA.to_owned())));
    }
    // Upper-case media ids are signed as their lowercase form.
    assert_eq!(s.path(5, &MEDIA.to_uppercase()), s.path(5, MEDIA));
    // The path length an SMS pays for.
    assert_eq!(s.path(1, MEDIA).len(), 3 + 16 + 1 + 64 + 1 + 26);
}

#[test]
fn tampering_is_refused() {
    let s = signer();
    let p = s.path(42, MEDIA);
    let (prefix, token) = p.rsplit_once('/').unwrap();
    // Every single-character change of the token.
    for i in 0..token.len() {
        for c in B32 {
            let mut t = token.as_bytes().to_vec();
            if t[i] == *c {
                continue;
            }
            t[i] = *c;
            let q = format!("{prefix}/{}", String::from_utf8(t).unwrap());
            assert_eq!(s.verify(&q), None, "{q}");
        }
    }
    // Another message or media with the same token.
    let other_msg = p.replacen(&format!("{:016x}", 42), &format!("{:016x}", 43), 1);
    assert_eq!(s.verify(&other_msg), None);
    let other_media = p.replacen(MEDIA, &MEDIA.replace('b', "c"), 1);
    assert_eq!(s.verify(&other_media), None);
    // Another key.
    assert_eq!(LinkSigner::new(&[8u8; 32]).verify(&p), None);
    // Malformed.
    for bad in [
        "",
        "/",
        "/m/",
        &p[..p.len() - 1],
        &format!("{p}/"),
        &format!("{p}/raw"),
        &format!("{p}x"),
        &p.to_uppercase(),
        &p.replacen("/m/", "/x/", 1),
        &p.replacen(&format!("{:016x}", 42), "2a", 1),
        &p.replacen(&format!("{:016x}", 42), "+00000000000002a", 1),
        &format!("{prefix}/{}", token.to_uppercase()),
        &format!("{prefix}/{}=", &token[..25]),
        "/m/0000000000000001/../../etc/passwd/aaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        assert_eq!(s.verify(bad), None, "{bad:?}");
    }
}

#[test]
fn non_canonical_token_spellings_are_refused() {
    // The last character carries 3 bits of MAC and 2 unused bits: only the
    // spelling with zero unused bits verifies.
    let s = signer();
    let p = s.path(9, MEDIA);
    let (prefix, token) = p.rsplit_once('/').unwrap();
    let last = token.as_bytes()[25];
    let v = B32.iter().position(|&c| c == last).unwrap();
    assert_eq!(v & 3, 0);
    for extra in 1..4 {
        let alt = B32[v | extra] as char;
        let q = format!("{prefix}/{}{alt}", &token[..25]);
        assert_eq!(s.verify(&q), None);
    }
}

#[test]
fn base32_round_trip() {
    for n in 0..=255u8 {
        let bytes: [u8; 16] = std::array::from_fn(|i| n.wrapping_mul(i as u8 + 1));
        assert_eq!(unbase32(&base32(&bytes)), Some(bytes));
    }
    // RFC 4648 test vector, lowercase, unpadded.
    assert_eq!(base32(b"foobar"), "mzxw6ytboi");
}

#[test]
fn debug_hides_the_secret() {
    let s = LinkSigner::new(b"super-secret-key-material-000000");
    let d = format!("{s:?}");
    assert!(!d.contains("super"), "{d}");
}

#[test]
fn secret_created_once_with_private_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let a = load_or_create_secret(&dir).unwrap();
    assert_eq!(a.len(), 32);
    let b = load_or_create_secret(&dir).unwrap();
    assert_eq!(a, b);
    assert_eq!(fs::read(dir.join(KEY_FILE)).unwrap(), a);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Widened by someone: narrowed again, same key.
        fs::set_permissions(dir.join(KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(load_or_create_secret(&dir).unwrap(), a);
        let mode = fs::metadata(dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Only the key file is left (no temporaries).
    let names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from(KEY_FILE)]);
    // Another directory, another key.
    assert_ne!(load_or_create_secret(&tmp.path().join("other")).unwrap(), a);
}

#[test]
fn short_key_file_is_an_error_not_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join(KEY_FILE), b"short").unwrap();
    let e = load_or_create_secret(tmp.path()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert_eq!(fs::read(tmp.path().join(KEY_FILE)).unwrap(), b"short");
}

#[test]
fn concurrent_creation_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let keys: Vec<Vec<u8>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| load_or_create_secret(tmp.path()).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(keys.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn a_message_page_link_is_short_one_spelling_and_not_a_media_link() {
    let s = signer();
    for msg in [0u64, 9, u64::MAX] {
        let p = s.page_path(msg);
        assert_eq!(p.len(), "/m/".len() + 16 + 1 + 26, "{p}");
        assert_eq!(s.verify_page(&p), Some(msg));
        assert_eq!(s.verify(&p), None);
        assert_eq!(s.verify_page(&s.path(msg, MEDIA)), None);
        assert_eq!(s.verify_page(&p.to_uppercase()), None);
        assert_eq!(s.verify_page(&format!("{p}/")), None);
        assert_eq!(LinkSigner::new(&[8u8; 32]).verify_page(&p), None);
    }
    // Another message's token does not open this message's page.
    let (one, two) = (s.page_path(1), s.page_path(2));
    let forged = format!(
        "{}{}",
        &one[..one.rfind('/').unwrap()],
        &two[two.rfind('/').unwrap()..]
    );
    assert_eq!(s.verify_page(&forged), None);
}

#[test]
fn a_landing_code_names_one_tenants_page_content() {
    let s = LinkSigner::new(&[9u8; 32]);
    let page = LandingPage {
        from: "Acme".into(),
        subject: "Sale".into(),
        text: "Hi".into(),
        media: vec!["ab".repeat(32)],
    };
    let code = s.landing_code("acme", &page);
    assert!(is_landing_code(&code), "{code}");
    assert_eq!(code.len(), CODE_CHARS);
    assert_eq!(s.landing_code("acme", &page), code, "stable");
    assert_eq!(landing_path(&code), format!("/p/{code}"));
    // Another tenant, another text, another key: another code.
    assert_ne!(s.landing_code("other", &page), code);
    let personal = LandingPage {
        text: "Hi Ann".into(),
        ..page.clone()
    };
    assert_ne!(s.landing_code("acme", &personal), code);
    assert_ne!(
        LinkSigner::new(&[8u8; 32]).landing_code("acme", &page),
        code
    );
    for bad in [
        "",
        "abc",
        "ABCDEFGHIJKLMNOP",
        "abcdefghijklmno1",
        "abcdefghijklmnop/",
        "../../etc/passwd",
    ] {
        assert!(!is_landing_code(bad), "{bad}");
    }
}
