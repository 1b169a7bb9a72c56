//! Landing-page links for SMS fallback: unguessable paths
//! `/p/{code}` (a landing page: [`super::landing`]), where `code` is the
//! first 10 bytes of HMAC-SHA256(secret, `landing\0` ‖ tenant ‖ `\0` ‖ the
//! page's record) in lowercase unpadded base32 (16 characters, 80 bits:
//! short enough to keep a fallback in one SMS segment); and, for links sent
//! by earlier versions, `/m/{message_id:016x}/{token}` (a message's page)
//! and `/m/{message_id:016x}/{media_id}/{token}` (one media item), where
//! `token` is the first 16 bytes of HMAC-SHA256(secret, message_id as 8
//! big-endian bytes ‖ media id in lowercase hex, or `page`), in base32 (26
//! characters). The two inputs never coincide (a token's input is 8 bytes
//! and then 64 hex digits or `page`).
//!
//! A landing page's code names its record (written once per content,
//! [`super::store::MediaStore::put_landing`]); without the secret a code
//! takes 2^80 guesses. The older links store nothing per link (a message's
//! page reads the list of its media, [`super::store::MediaStore::page`]):
//! whoever holds the secret can check one, and without it a valid token
//! takes 2^128 guesses. Verification parses strictly (one spelling per link)
//! and compares with the `digest` crate's constant-time comparison.
//!
//! The secret lives in `<data dir>/link.key` ([`load_or_create_secret`]):
//! 32 random bytes, mode 0600, created once, so links survive restarts.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::landing::LandingPage;
use super::store::MediaId;

const TARGET: &str = "sluice::media::link";

/// The key file's name under the data directory.
pub const KEY_FILE: &str = "link.key";
/// Bytes of secret created.
const SECRET_LEN: usize = 32;
/// Bytes of MAC kept in a token.
const TOKEN_BYTES: usize = 16;
/// Characters of a token: ceil(128 / 5).
const TOKEN_CHARS: usize = 26;
/// Bytes of MAC in a landing-page code.
const CODE_BYTES: usize = 10;
/// Characters of a landing-page code: 80 / 5.
pub const CODE_CHARS: usize = 16;
/// RFC 4648 base32 alphabet, lowercase.
const B32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Signs and verifies landing-page paths. Cloning is cheap; `Debug` does not
/// show the secret.
#[derive(Clone)]
pub struct LinkSigner {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkSigner").finish_non_exhaustive()
    }
}

impl LinkSigner {
    /// A signer keyed with `secret` (use [`load_or_create_secret`]; 32
    /// bytes or more).
    pub fn new(secret: &[u8]) -> LinkSigner {
        // HMAC takes keys of any length, so this cannot fail.
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        LinkSigner { mac }
    }

    fn keyed(&self, message_id: u64, media_id: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(&message_id.to_be_bytes());
        mac.update(media_id.as_bytes());
        mac
    }

    /// The token for a message's media (`media_id` as 64 hex characters;
    /// other spellings are normalised to lowercase when they parse).
    pub fn token(&self, message_id: u64, media_id: &str) -> String {
        let media_id = canonical(media_id);
        let tag = self.keyed(message_id, &media_id).finalize().into_bytes();
        base32(&tag[..TOKEN_BYTES])
    }

    /// The code of `tenant`'s landing page `page` (its file's name and its
    /// link's last segment): the same page of the same tenant always has the
    /// same code.
    pub fn landing_code(&self, tenant: &str, page: &LandingPage) -> String {
        let mut mac = self.mac.clone();
        mac.update(b"landing\0");
        mac.update(tenant.as_bytes());
        mac.update(b"\0");
        mac.update(&page.to_bytes());
        base32(&mac.finalize().into_bytes()[..CODE_BYTES])
    }

    /// The landing-page path `/m/{message_id:016x}/{media_id}/{token}`;
    /// the raw media is at the same path plus `/raw`.
    pub fn path(&self, message_id: u64, media_id: &str) -> String {
        let media_id = canonical(media_id);
        let token = self.token(message_id, &media_id);
        format!("/m/{message_id:016x}/{media_id}/{token}")
    }

    fn page_keyed(&self, message_id: u64) -> Hmac<Sha256> {
        // "page" is never a media id (64 hex characters), so a page token
        // is never a media token.
        self.keyed(message_id, "page")
    }

    /// The path of message `message_id`'s own page, which shows all its
    /// media: `/m/{message_id:016x}/{token}` (one short link however many
    /// media the message has).
    pub fn page_path(&self, message_id: u64) -> String {
        let tag = self.page_keyed(message_id).finalize().into_bytes();
        format!("/m/{message_id:016x}/{}", base32(&tag[..TOKEN_BYTES]))
    }

    /// The message id of a path made by [`page_path`](LinkSigner::page_path),
    /// or `None` when it is malformed or the token does not match.
    pub fn verify_page(&self, path: &str) -> Option<u64> {
        let rest = path.strip_prefix("/m/")?;
        let (msg, token) = rest.split_once('/')?;
        if token.contains('/') || msg.len() != 16 || !msg.bytes().all(is_lower_hex) {
            return None;
        }
        let message_id = u64::from_str_radix(msg, 16).ok()?;
        let tag = unbase32(token)?;
        self.page_keyed(message_id)
            .verify_truncated_left(&tag)
            .ok()?;
        Some(message_id)
    }

    /// The message id and media id of a path made by
    /// [`path`](LinkSigner::path), or `None` when it is malformed or the
    /// token does not match.
    pub fn verify(&self, path: &str) -> Option<(u64, String)> {
        let rest = path.strip_prefix("/m/")?;
        let mut parts = rest.split('/');
        let (msg, media, token) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        if msg.len() != 16 || !msg.bytes().all(is_lower_hex) {
            return None;
        }
        let message_id = u64::from_str_radix(msg, 16).ok()?;
        if media.len() != 64 || !media.bytes().all(is_lower_hex) {
            return None;
        }
        let tag = unbase32(token)?;
        self.keyed(message_id, media)
            .verify_truncated_left(&tag)
            .ok()?;
        Some((message_id, media.to_owned()))
    }
}

/// The path of the landing page named `code`: `/p/{code}`.
pub fn landing_path(code: &str) -> String {
    format!("/p/{code}")
}

/// Whether `s` is spelled as a landing-page code (16 characters of the
/// lowercase base32 alphabet). Safe as a file name.
pub fn is_landing_code(s: &str) -> bool {
    s.len() == CODE_CHARS && s.bytes().all(|c| B32.contains(&c))
}

fn is_lower_hex(c: u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
}

/// The lowercase form of a media id, or the input as given when it is not
/// one (such a link will simply never resolve).
fn canonical(media_id: &str) -> String {
    MediaId::parse(media_id).map_or_else(|_| media_id.to_owned(), |id| id.to_hex())
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(B32[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(B32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes a token strictly: 26 characters of the lowercase alphabet whose
/// two unused trailing bits are zero.
fn unbase32(token: &str) -> Option<[u8; TOKEN_BYTES]> {
    if token.len() != TOKEN_CHARS {
        return None;
    }
    let mut out = [0u8; TOKEN_BYTES];
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut n = 0;
    for c in token.bytes() {
        let v = B32.iter().position(|&a| a == c)? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(n)? = (acc >> bits) as u8;
            n += 1;
        }
        acc &= (1 << bits) - 1;
    }
    (n == TOKEN_BYTES && acc == 0).then_some(out)
}

/// The link secret in `<dir>/link.key`: read when it exists, otherwise 32
/// random bytes written once (mode 0600, atomically: a concurrent or
/// crashed creation never leaves a short key). The directory is created if
/// missing. A key file readable by others is narrowed to 0600.
///
/// # Errors
/// I/O errors, and `InvalidData` when the file holds fewer than 32 bytes
/// (it is not replaced: that would break every link already sent).
pub fn load_or_create_secret(dir: &Path) -> io::Result<Vec<u8>> {
    fs::create_dir_all(dir)?;
    let path = dir.join(KEY_FILE);
    match read_key(&path) {
        Ok(key) => return Ok(key),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let key: [u8; SECRET_LEN] = rand::random();
    let tmp = dir.join(format!(".{KEY_FILE}.{:016x}", rand::random::<u64>()));
    let created = (|| {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(&key)?;
        f.sync_all()?;
        // A hard link fails if the key appeared meanwhile: never replaces.
        fs::hard_link(&tmp, &path)
    })();
    let _ = fs::remove_file(&tmp);
    match created {
        Ok(()) => {
            File::open(dir)?.sync_all()?;
            tracing::info!(target: TARGET, path = %path.display(), "created landing-page link key");
            Ok(key.to_vec())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_key(&path),
        Err(e) => Err(e),
    }
}

fn read_key(path: &Path) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = f.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(target: TARGET, path = %path.display(), mode = format_args!("{mode:o}"), "link key readable by others; narrowing to 0600");
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        }
    }
    let mut key = Vec::new();
    f.read_to_end(&mut key)?;
    if key.len() < SECRET_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: {} bytes, expected at least {SECRET_LEN}",
                path.display(),
                key.len()
            ),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests;
