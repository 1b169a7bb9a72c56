//! Secrets kept out of the configuration file. Every secret-bearing value
//! (a [`Secret`]: tenant tokens and admin tokens, the operator's admin
//! token, SMPP bind passwords, tenants' `smpp_password`, webhook secrets,
//! MM7 passwords and callback passwords, the Redis URL of cluster mode,
//! which may carry a password) may be written as a reference
//! instead of the value:
//!
//! | written | the value is |
//! | --- | --- |
//! | `"env:NAME"` | the environment variable `NAME` (set and not empty) |
//! | `"file:/run/secrets/acme-token"` | the file's text (UTF-8, at most 64 KiB), one trailing line break (`\n` or `\r\n`) dropped; a relative path is from the working directory |
//! | anything else | itself |
//!
//! References are resolved once, at load ([`resolve`], called by
//! `check::check` before the semantic checks, so `sluice check-config`
//! resolves them too), never later: a changed variable or file takes a
//! restart. A reference that cannot be resolved is a problem naming the key
//! and the variable or file, never a value. A literal secret cannot begin
//! with `env:` or `file:`.
//!
//! The `prefix:` form was chosen over `${NAME}` interpolation because it
//! is whole-value only (no partial substitution to reason about), reads
//! the same in TOML, Kubernetes and Compose files (where `${…}` is already
//! the shell's and Compose's own syntax) and has a file form for mounted
//! secrets.
//!
//! Environment and files are read through [`SecretSource`], so tests
//! supply values without touching the process environment.

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;

use super::{Config, Secret};

/// The prefix of an environment reference.
pub const ENV_PREFIX: &str = "env:";
/// The prefix of a file reference.
pub const FILE_PREFIX: &str = "file:";
/// Largest secret file read.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Where references are read from.
pub trait SecretSource {
    /// The environment variable `name`, when set.
    fn var(&self, name: &str) -> Option<OsString>;
    /// The bytes of the file at `path`, at most `limit` + 1 of them (so
    /// that a longer file shows as longer than `limit`).
    ///
    /// # Errors
    /// The file cannot be opened or read.
    fn read(&self, path: &Path, limit: u64) -> std::io::Result<Vec<u8>>;
}

/// The process's environment and file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct Process;

impl SecretSource for Process {
    fn var(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }

    fn read(&self, path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        std::fs::File::open(path)?
            .take(limit + 1)
            .read_to_end(&mut out)?;
        Ok(out)
    }
}

/// One secret of a configuration: its key (dotted, no index), where it is
/// (`tenant "acme"`), and the value.
struct Slot<'a> {
    key: &'static str,
    at: String,
    secret: &'a mut Secret,
}

/// Every secret in `config`, with its key. The list must name every field
/// of type [`Secret`]: `keys::secret_keys` lists them from the structs, and
/// a test compares the two over `deploy/sluice.toml`.
fn slots(c: &mut Config) -> Vec<Slot<'_>> {
    let mut out = Vec::new();
    if let Some(s) = c.http.admin_token.as_mut() {
        out.push(Slot {
            key: "http.admin_token",
            at: String::new(),
            secret: s,
        });
    }
    for t in &mut c.tenants {
        let at = format!("tenant {:?}", t.name);
        out.push(Slot {
            key: "tenants.token",
            at: at.clone(),
            secret: &mut t.token,
        });
        if let Some(s) = t.admin_token.as_mut() {
            out.push(Slot {
                key: "tenants.admin_token",
                at: at.clone(),
                secret: s,
            });
        }
        if let Some(s) = t.smpp_password.as_mut() {
            out.push(Slot {
                key: "tenants.smpp_password",
                at: at.clone(),
                secret: s,
            });
        }
        for w in &mut t.webhooks {
            out.push(Slot {
                key: "tenants.webhooks.secret",
                at: format!("{at} webhook {:?}", w.name),
                secret: &mut w.secret,
            });
        }
    }
    for c in &mut c.carriers {
        for (i, b) in c.binds.iter_mut().enumerate() {
            out.push(Slot {
                key: "carriers.binds.password",
                at: format!("carrier {:?} bind {}", c.name, i + 1),
                secret: &mut b.password,
            });
        }
    }
    for m in &mut c.mmsc {
        let at = format!("mmsc {:?}", m.name);
        if let Some(s) = m.password.as_mut() {
            out.push(Slot {
                key: "mmsc.password",
                at: at.clone(),
                secret: s,
            });
        }
        if let Some(s) = m.callback_password.as_mut() {
            out.push(Slot {
                key: "mmsc.callback_password",
                at,
                secret: s,
            });
        }
    }
    if let Some(s) = c.cluster.redis_url.as_mut() {
        out.push(Slot {
            key: "cluster.redis_url",
            at: String::new(),
            secret: s,
        });
    }
    out
}

/// Every secret present in `config`, named by its key and place, with its
/// value: for comparing two configurations (a reload), never for showing.
pub fn by_place(config: &Config) -> std::collections::BTreeMap<String, String> {
    let mut c = config.clone();
    slots(&mut c)
        .into_iter()
        .map(|s| {
            let place = if s.at.is_empty() {
                s.key.to_owned()
            } else {
                format!("{} ({})", s.key, s.at)
            };
            (place, s.secret.expose().to_owned())
        })
        .collect()
}

/// The keys of every secret present in `config` (a test's view of the
/// walk).
pub fn present_keys(config: &mut Config) -> std::collections::BTreeSet<&'static str> {
    slots(config).into_iter().map(|s| s.key).collect()
}

/// Replaces every `env:`/`file:` reference in `config` by what it names;
/// returns a problem for each that could not be read. Such a secret is
/// then set to a placeholder that passes the other checks (distinct, of an
/// allowed length), so that its one problem is not followed by others
/// about the reference's text (an SMPP password longer than 8 characters);
/// the configuration is refused anyway.
pub fn resolve(config: &mut Config, source: &dyn SecretSource) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, slot) in slots(config).into_iter().enumerate() {
        let raw = slot.secret.expose();
        let resolved = if let Some(name) = raw.strip_prefix(ENV_PREFIX) {
            from_env(name, source)
        } else if let Some(path) = raw.strip_prefix(FILE_PREFIX) {
            from_file(path, source)
        } else {
            continue;
        };
        match resolved {
            Ok(value) => *slot.secret = Secret::new(value),
            Err(why) => {
                let at = if slot.at.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", slot.at)
                };
                problems.push(format!("{at}`{}` = {raw:?}: {why}", slot.key));
                *slot.secret = Secret::new(placeholder(slot.key, i));
            }
        }
    }
    problems
}

/// A stand-in for the `i`-th secret, `key`'s, that could not be resolved:
/// 8 characters for SMPP passwords (at most 8 allowed), 24 otherwise (at
/// least 16 for admin tokens and webhook secrets), distinct per secret.
fn placeholder(key: &str, i: usize) -> String {
    if key.ends_with("binds.password") || key.ends_with("smpp_password") {
        format!("?{:07}", i % 10_000_000)
    } else {
        format!("?unresolved-secret-{i:05}")
    }
}

fn from_env(name: &str, source: &dyn SecretSource) -> Result<String, String> {
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        return Err("names no environment variable (env:NAME)".into());
    }
    match source.var(name) {
        None => Err(format!("environment variable {name} is not set")),
        Some(v) if v.is_empty() => Err(format!("environment variable {name} is empty")),
        Some(v) => v
            .into_string()
            .map_err(|_| format!("environment variable {name} is not UTF-8")),
    }
}

fn from_file(path: &str, source: &dyn SecretSource) -> Result<String, String> {
    if path.is_empty() {
        return Err("names no file (file:PATH)".into());
    }
    let bytes = source
        .read(Path::new(path), MAX_FILE_BYTES)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{path} is longer than {} KiB",
            MAX_FILE_BYTES / 1024
        ));
    }
    let mut text = String::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8 text"))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(format!("{path} is empty"));
    }
    Ok(text)
}
