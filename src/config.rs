//! The TOML configuration: loaded at the edge and validated with every
//! problem collected before failing (`check` adds line numbers and "did you
//! mean"; `keys` lists every key). The typed sections themselves live in
//! [`crate::settings`] and are re-exported here; this room is at the top,
//! beside the gateway, since checking a file needs the rules of many rooms.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use crate::settings::*;

pub mod check;
pub mod keys;
pub mod secrets;

/// A configuration that cannot be used, with every problem found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Every problem of the file: TOML syntax, unknown keys, wrong types,
    /// and values that parse but make no sense together.
    #[error("{path}: invalid configuration ({} problem{}):\n  - {}",
        problems.len(), if problems.len() == 1 { "" } else { "s" }, problems.join("\n  - "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<String>,
    },
}

impl Config {
    /// Reads and validates a configuration file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and every problem.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates TOML text; `path` names it in errors. Every
    /// problem is reported at once ([`check::check`]).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with every problem found.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::parse_with(text, path, &secrets::Process)
    }

    /// [`Config::parse`], with `env:`/`file:` secret references read from
    /// `source` instead of the process's environment and files.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with every problem found.
    pub fn parse_with(
        text: &str,
        path: &Path,
        source: &dyn secrets::SecretSource,
    ) -> Result<Config, ConfigError> {
        check::check_with(text, source).map_err(|problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })
    }

    /// Every inconsistency in the configuration (empty when usable).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let mut names = std::collections::HashSet::new();
        for t in &self.tenants {
            if t.name.is_empty() {
                p.push("a tenant has an empty name".into());
            }
            if !names.insert(t.name.as_str()) {
                p.push(format!("tenant {:?} is defined twice", t.name));
            }
            if t.token.expose().len() < 8 {
                p.push(format!(
                    "tenant {:?}: token must have at least 8 characters",
                    t.name
                ));
            }
            match crate::admission::OwnedSenders::new(&t.senders, &t.sender_patterns) {
                Err(e) => p.push(format!("tenant {:?}: {e}", t.name)),
                Ok(owned) => {
                    for prog in &t.programs {
                        for s in &prog.senders {
                            let owns = crate::model::Sender::parse(s.trim())
                                .is_ok_and(|s| owned.allows(&s));
                            if !owns {
                                p.push(format!(
                                    "tenant {:?} program {:?}: sender {s:?} is not one of the tenant's senders",
                                    t.name, prog.name
                                ));
                            }
                        }
                    }
                }
            }
        }
        let owned: Vec<(&str, crate::admission::OwnedSenders)> = self
            .tenants
            .iter()
            .map(|t| {
                // A tenant with a bad sender or pattern (reported above)
                // still has its good ones checked for overlaps.
                let owned = crate::admission::OwnedSenders::new(&t.senders, &t.sender_patterns)
                    .unwrap_or_else(|_| {
                        let ok = |v: &String, pattern: bool| {
                            let one = std::slice::from_ref(v);
                            let r = if pattern {
                                crate::admission::OwnedSenders::new(&[], one)
                            } else {
                                crate::admission::OwnedSenders::new(one, &[])
                            };
                            r.is_ok()
                        };
                        let senders: Vec<String> =
                            t.senders.iter().filter(|s| ok(s, false)).cloned().collect();
                        let patterns: Vec<String> = t
                            .sender_patterns
                            .iter()
                            .filter(|s| ok(s, true))
                            .cloned()
                            .collect();
                        crate::admission::OwnedSenders::new(&senders, &patterns).unwrap_or_default()
                    });
                (t.name.as_str(), owned)
            })
            .collect();
        for (i, (a, sa)) in owned.iter().enumerate() {
            for (b, sb) in &owned[i + 1..] {
                let mut shared = sa.overlaps(sb);
                shared.extend(sb.overlaps(sa));
                shared.sort();
                shared.dedup();
                for s in shared {
                    p.push(format!(
                        "sender {s:?} belongs to tenants {a:?} and {b:?}: a sender belongs to one tenant"
                    ));
                }
            }
        }
        let mut carriers = std::collections::HashSet::new();
        for c in &self.carriers {
            if !carriers.insert(c.name.as_str()) {
                p.push(format!("carrier {:?} is defined twice", c.name));
            }
            if c.binds.is_empty() {
                p.push(format!("carrier {:?} has no binds", c.name));
            }
            if !c.binds.iter().any(|b| b.mode != BindMode::Receiver) {
                p.push(format!(
                    "carrier {:?} has no transmitter or transceiver bind",
                    c.name
                ));
            }
            for (i, b) in c.binds.iter().enumerate() {
                let at = format!("carrier {:?} bind {}", c.name, i + 1);
                if b.window == 0 {
                    p.push(format!("{at}: window must be at least 1"));
                }
                if b.count == 0 {
                    p.push(format!("{at}: count must be at least 1"));
                }
                if b.system_id.len() > 15 {
                    p.push(format!("{at}: system_id is longer than 15 characters"));
                }
                if b.password.expose().len() > 8 {
                    p.push(format!(
                        "{at}: password is longer than 8 characters (SMPP 3.4 limit)"
                    ));
                }
                if b.reconnect_min > b.reconnect_max {
                    p.push(format!("{at}: reconnect_min exceeds reconnect_max"));
                }
            }
        }
        for r in &self.routes {
            let digits_after_plus = r
                .prefix
                .strip_prefix('+')
                .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()));
            if !r.prefix.is_empty() && !digits_after_plus {
                p.push(format!(
                    "route prefix {:?} must be '+' and digits",
                    r.prefix
                ));
            }
            for c in &r.carriers {
                if !carriers.contains(c.as_str()) {
                    p.push(format!(
                        "route {:?} names unknown carrier {:?}",
                        r.prefix, c
                    ));
                }
            }
        }
        let brands: std::collections::HashSet<&str> = self
            .senders
            .brands
            .iter()
            .map(|b| b.name.as_str())
            .collect();
        for o in &self.senders.overrides {
            if let Some(b) = &o.brand
                && !brands.contains(b.as_str())
            {
                p.push(format!("sender {:?} names unknown brand {:?}", o.sender, b));
            }
            if o.rate.is_some_and(|r| r < 0.0) {
                p.push(format!("sender {:?}: rate must not be negative", o.sender));
            }
        }
        for t in &self.tenants {
            if t.weight == 0 {
                p.push(format!("tenant {:?}: weight must be at least 1", t.name));
            }
            if let Some(c) = &t.default_country
                && let Err(e) = c.parse::<crate::model::numbering::Country>()
            {
                p.push(format!("tenant {:?}: default_country: {e}", t.name));
            }
            let mut names = std::collections::HashSet::new();
            for w in &t.webhooks {
                let at = format!("tenant {:?} webhook {:?}", t.name, w.name);
                if w.name.is_empty() || !names.insert(w.name.as_str()) {
                    p.push(format!("{at}: names must be unique and not empty"));
                }
                let uri = w.url.parse::<hyper::Uri>().ok();
                let scheme_ok = uri
                    .as_ref()
                    .and_then(|u| u.scheme_str())
                    .is_some_and(|s| s == "http" || s == "https");
                if !scheme_ok || uri.and_then(|u| u.host().map(str::len)).unwrap_or(0) == 0 {
                    p.push(format!("{at}: url must be http://host/… or https://host/…"));
                }
                if w.secret.expose().chars().count() < 16 {
                    p.push(format!("{at}: secret must be at least 16 characters"));
                }
                if w.events.is_empty() {
                    p.push(format!("{at}: events must name at least one kind"));
                }
                if w.concurrency == 0 || w.concurrency > 256 {
                    p.push(format!("{at}: concurrency must be 1 to 256"));
                }
                if w.batch == 0 || w.batch > 1000 {
                    p.push(format!("{at}: batch must be 1 to 1000"));
                }
                if w.rate < 0.0 || !w.rate.is_finite() {
                    p.push(format!("{at}: rate must be 0 (no limit) or more"));
                }
                if w.retry_min.is_zero() || w.retry_min > w.retry_max {
                    p.push(format!(
                        "{at}: retry_min must be above 0 and not exceed retry_max"
                    ));
                }
                if w.timeout.is_zero() {
                    p.push(format!("{at}: timeout must be above 0"));
                }
            }
        }
        for m in &self.mmsc {
            if !carriers.insert(m.name.as_str()) {
                p.push(format!("carrier {:?} is defined twice", m.name));
            }
            if !(m.url.starts_with("http://") || m.url.starts_with("https://")) {
                p.push(format!(
                    "mmsc {:?}: url must be http:// or https://",
                    m.name
                ));
            }
            if m.max_message_bytes < 4096 {
                p.push(format!("mmsc {:?}: max_message_bytes below 4096", m.name));
            }
            if !(1..=MAX_MMSC_CONNECTIONS).contains(&m.connections) {
                p.push(format!(
                    "mmsc {:?}: connections must be 1 to {MAX_MMSC_CONNECTIONS}",
                    m.name
                ));
            }
            if m.service.reply_charging_size == Some(0) {
                p.push(format!(
                    "mmsc {:?}: service.reply_charging_size must be above 0",
                    m.name
                ));
            }
            if m.service.reply_deadline.is_some_and(|d| d.is_zero()) {
                p.push(format!(
                    "mmsc {:?}: service.reply_deadline must be above 0",
                    m.name
                ));
            }
            if !(1..=MAX_MM7_RECIPIENTS).contains(&m.max_recipients) {
                p.push(format!(
                    "mmsc {:?}: max_recipients must be 1 to {MAX_MM7_RECIPIENTS}",
                    m.name
                ));
            }
            if m.retry_min.is_zero() {
                p.push(format!("mmsc {:?}: retry_min must be above 0", m.name));
            }
            if m.retry_min > m.retry_max {
                p.push(format!("mmsc {:?}: retry_min exceeds retry_max", m.name));
            }
            if m.auth_retry_min.is_zero() {
                p.push(format!("mmsc {:?}: auth_retry_min must be above 0", m.name));
            }
            if m.auth_retry_min > m.auth_retry_max {
                p.push(format!(
                    "mmsc {:?}: auth_retry_min exceeds auth_retry_max",
                    m.name
                ));
            }
        }
        for r in &self.mms.routes {
            let digits_after_plus = r
                .prefix
                .strip_prefix('+')
                .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()));
            if !r.prefix.is_empty() && !digits_after_plus {
                p.push(format!(
                    "mms route prefix {:?} must be '+' and digits",
                    r.prefix
                ));
            }
            if r.carriers.is_empty() {
                p.push(format!("mms route {:?} names no MMSC", r.prefix));
            }
            for c in &r.carriers {
                if !self.mmsc.iter().any(|m| m.name == *c) {
                    p.push(format!(
                        "mms route {:?} names unknown MMSC {:?} (an [[mmsc]] name)",
                        r.prefix, c
                    ));
                }
            }
        }
        if self.ingest.max_batch_messages == 0 {
            p.push("ingest.max_batch_messages must be at least 1".into());
        }
        if self.ingest.max_frame_bytes < 1024 {
            p.push("ingest.max_frame_bytes must be at least 1024".into());
        }
        let i = &self.ingest;
        if i.hello_timeout.is_zero() {
            p.push("ingest.hello_timeout must be above 0".into());
        }
        if i.max_connections == 0 || i.max_connections_per_ip == 0 || i.max_unauthenticated == 0 {
            p.push(
                "ingest.max_connections, max_connections_per_ip and max_unauthenticated must be at least 1"
                    .into(),
            );
        }
        if i.max_unauthenticated > i.max_connections {
            p.push(
                "ingest.max_unauthenticated must not exceed max_connections (it is the share of \
                 them that connections waiting for Hello may hold)"
                    .into(),
            );
        }
        if i.auth_failures_per_minute == 0 {
            p.push("ingest.auth_failures_per_minute must be at least 1".into());
        }
        if i.auth_failure_delay > i.auth_failure_delay_max {
            p.push("ingest.auth_failure_delay exceeds auth_failure_delay_max".into());
        }
        if self.mms.max_uploads_per_tenant == 0 || self.mms.max_uploads == 0 {
            p.push("mms.max_uploads_per_tenant and mms.max_uploads must be at least 1".into());
        }
        if self.journal.segment_bytes < 1 << 20 {
            p.push("journal.segment_bytes must be at least 1 MiB".into());
        }
        if self.journal.max_segments < 2 {
            p.push("journal.max_segments must be at least 2".into());
        }
        p.extend(self.door_problems());
        p.extend(self.history.problems());
        p.extend(self.cluster.problems());
        p
    }

    /// Problems of the doors (listeners) and their credentials: half-set
    /// TLS files or credentials, listeners reachable beyond loopback without
    /// authentication, unusable limits. The gateway refuses to start while
    /// any remain (they are in [`Config::problems`] too).
    pub fn door_problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let tls_pair = |p: &mut Vec<String>,
                        at: &str,
                        cert: &Option<PathBuf>,
                        key: &Option<PathBuf>,
                        ca: &Option<PathBuf>| {
            match (cert, key) {
                (Some(_), None) => {
                    p.push(format!("{at}: tls_cert_file is set without tls_key_file"))
                }
                (None, Some(_)) => {
                    p.push(format!("{at}: tls_key_file is set without tls_cert_file"))
                }
                (None, None) if ca.is_some() => p.push(format!(
                    "{at}: tls_client_ca_file needs tls_cert_file and tls_key_file"
                )),
                _ => {}
            }
        };
        let beyond_loopback = |a: &SocketAddr| !a.ip().is_loopback();
        let i = &self.ingest;
        tls_pair(
            &mut p,
            "ingest",
            &i.tls_cert_file,
            &i.tls_key_file,
            &i.tls_client_ca_file,
        );
        let h = &self.http;
        tls_pair(
            &mut p,
            "http",
            &h.tls_cert_file,
            &h.tls_key_file,
            &h.tls_client_ca_file,
        );
        let u = &self.public;
        tls_pair(
            &mut p,
            "public",
            &u.tls_cert_file,
            &u.tls_key_file,
            &u.tls_client_ca_file,
        );
        let a = &self.api;
        tls_pair(
            &mut p,
            "api",
            &a.tls_cert_file,
            &a.tls_key_file,
            &a.tls_client_ca_file,
        );
        let g = &self.grpc;
        tls_pair(
            &mut p,
            "grpc",
            &g.tls_cert_file,
            &g.tls_key_file,
            &g.tls_client_ca_file,
        );
        if g.max_message_bytes < 64 << 10 {
            p.push("grpc.max_message_bytes must be at least 64 KiB".into());
        }
        if g.max_concurrent_streams == 0 {
            p.push("grpc.max_concurrent_streams must be at least 1".into());
        }
        if g.handshake_timeout.is_zero() || g.subscribe_timeout.is_zero() {
            p.push("grpc.handshake_timeout and subscribe_timeout must be above 0".into());
        }
        let sm = &self.smpp_server;
        tls_pair(
            &mut p,
            "smpp_server",
            &sm.tls_cert_file,
            &sm.tls_key_file,
            &sm.tls_client_ca_file,
        );
        if sm.window == 0 || sm.max_pending_submits == 0 {
            p.push("smpp_server.window and max_pending_submits must be at least 1".into());
        }
        if sm.max_pdu_bytes < 1024 {
            p.push("smpp_server.max_pdu_bytes must be at least 1024".into());
        }
        if sm.system_id.is_empty() || sm.system_id.len() > 15 {
            p.push("smpp_server.system_id must have 1 to 15 characters".into());
        }
        if [
            sm.handshake_timeout,
            sm.bind_timeout,
            sm.enquire_link_interval,
            sm.response_timeout,
            sm.reassembly_timeout,
        ]
        .iter()
        .any(std::time::Duration::is_zero)
        {
            p.push("smpp_server timeouts and intervals must be above 0".into());
        }
        for (i, t) in self.tenants.iter().enumerate() {
            let at = format!("tenant {:?}", t.name);
            if let Some(name) = &t.display_name
                && (name.trim().is_empty()
                    || name.chars().count() > 64
                    || name.chars().any(char::is_control))
            {
                p.push(format!(
                    "{at}: display_name must have 1 to 64 characters and no control characters"
                ));
            }
            if let Some(url) = &t.link_url {
                let host = crate::links::serve::host_of(url);
                let plain = url.split_once("://").is_some_and(|(_, rest)| {
                    !rest.contains(['?', '#']) && !rest.trim_end_matches('/').contains('/')
                });
                if !(url.starts_with("https://") || url.starts_with("http://"))
                    || host.is_none()
                    || !plain
                    || !url.is_ascii()
                    || url.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    p.push(format!(
                        "{at}: link_url must be an http(s) URL of a host alone, like \"https://acme.link\""
                    ));
                }
            }
            if t.track_links && self.public.listen.is_none() {
                p.push(format!(
                    "{at}: track_links needs the public door ([public] listen) to redirect its links"
                ));
            }
            match (&t.smpp_system_id, &t.smpp_password) {
                (None, None) => {}
                (Some(id), Some(pw)) => {
                    if id.is_empty() || id.len() > 15 || !id.is_ascii() {
                        p.push(format!(
                            "{at}: smpp_system_id must have 1 to 15 ASCII characters"
                        ));
                    }
                    if pw.expose().is_empty() || pw.expose().len() > 8 {
                        p.push(format!(
                            "{at}: smpp_password must have 1 to 8 characters (SMPP 3.4)"
                        ));
                    }
                    if let Some(other) = self.tenants[..i]
                        .iter()
                        .find(|o| o.smpp_system_id.as_deref() == Some(id.as_str()))
                    {
                        p.push(format!(
                            "{at}: smpp_system_id is the same as tenant {:?}'s",
                            other.name
                        ));
                    }
                }
                _ => p.push(format!(
                    "{at}: smpp_system_id and smpp_password must be set together"
                )),
            }
            if let Some(w) = t
                .webhooks
                .iter()
                .find(|w| w.name == crate::smpp_server::ENDPOINT)
            {
                p.push(format!(
                    "{at}: webhook name {:?} is reserved (the SMPP server's event destination)",
                    w.name
                ));
            }
        }
        if let Some(door) = [("api.listen", a.listen), ("grpc.listen", g.listen)]
            .into_iter()
            .find_map(|(at, l)| l.map(|_| at))
        {
            // The API and gRPC doors know a tenant by its token alone.
            for (i, t) in self.tenants.iter().enumerate() {
                if let Some(other) = self.tenants[..i]
                    .iter()
                    .find(|o| o.token.expose() == t.token.expose())
                {
                    p.push(format!(
                        "tenant {:?}: token is the same as tenant {:?}'s (with {door} a token must name one tenant)",
                        t.name, other.name
                    ));
                }
            }
        }
        let admin_tokens: Vec<(String, &Secret)> = h
            .admin_token
            .iter()
            .map(|t| ("http.admin_token".to_owned(), t))
            .chain(self.tenants.iter().filter_map(|t| {
                let at = format!("tenant {:?}: admin_token", t.name);
                t.admin_token.as_ref().map(|s| (at, s))
            }))
            .collect();
        for (i, (at, token)) in admin_tokens.iter().enumerate() {
            if token.expose().len() < 16 {
                p.push(format!("{at} must have at least 16 characters"));
            }
            if let Some((other, _)) = admin_tokens[..i]
                .iter()
                .find(|(_, t)| t.expose() == token.expose())
            {
                p.push(format!("{at} is the same as {other}"));
            }
        }
        if let Some(addr) = h.listen
            && beyond_loopback(&addr)
            && admin_tokens.is_empty()
            && h.tls_client_ca_file.is_none()
            && !h.allow_unauthenticated
        {
            p.push(format!(
                "http.listen {addr} is beyond loopback without authentication: set \
                 http.admin_token (or tls_client_ca_file), or allow_unauthenticated = true"
            ));
        }
        for (at, n) in [
            ("http", h.max_connections),
            ("public", u.max_connections),
            ("api", a.max_connections),
            ("grpc", g.max_connections),
            ("smpp_server", sm.max_connections),
        ] {
            if n == 0 {
                p.push(format!("{at}.max_connections must be at least 1"));
            }
        }
        for m in &self.mmsc {
            let at = format!("mmsc {:?}", m.name);
            if m.username.is_some() != m.password.is_some() {
                p.push(format!("{at}: username and password must be set together"));
            }
            if m.callback_username.is_some() != m.callback_password.is_some() {
                p.push(format!(
                    "{at}: callback_username and callback_password must be set together \
                     (a half-set pair would accept unauthenticated callbacks)"
                ));
            }
            match (&m.callback_tls_cert_file, &m.callback_tls_key_file) {
                (Some(_), None) => p.push(format!(
                    "{at}: callback_tls_cert_file is set without callback_tls_key_file"
                )),
                (None, Some(_)) => p.push(format!(
                    "{at}: callback_tls_key_file is set without callback_tls_cert_file"
                )),
                (None, None) if m.callback_tls_client_ca_file.is_some() => p.push(format!(
                    "{at}: callback_tls_client_ca_file needs callback_tls_cert_file and callback_tls_key_file"
                )),
                _ => {}
            }
            if let Some(addr) = open_callbacks(m) {
                p.push(format!(
                    "{at}: callback_listen {addr} is beyond loopback without authentication: set \
                     callback_username and callback_password, callback_allow or \
                     callback_tls_client_ca_file, or callback_allow_unauthenticated = true"
                ));
            }
            if m.callback_max_connections == 0 {
                p.push(format!("{at}: callback_max_connections must be at least 1"));
            }
        }
        p
    }

    /// History directory (explicit or under the data directory).
    pub fn history_dir(&self) -> PathBuf {
        self.history
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("history"))
    }

    /// Journal directory (explicit or under the data directory).
    pub fn journal_dir(&self) -> PathBuf {
        self.journal
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("journal"))
    }
}

#[cfg(test)]
mod tests;

/// Most requests one MMSC may have in flight (`mmsc.connections`).
pub const MAX_MMSC_CONNECTIONS: usize = 4096;

/// The address of MMSC `m`'s callback listener when it would take
/// callbacks from beyond loopback without any authentication (no
/// credentials, allow-list or client CA) and `callback_allow_unauthenticated`
/// does not say so on purpose.
pub fn open_callbacks(m: &MmscConfig) -> Option<std::net::SocketAddr> {
    let authenticated = m.callback_username.is_some()
        || !m.callback_allow.is_empty()
        || m.callback_tls_client_ca_file.is_some();
    m.callback_listen.filter(|addr| {
        !addr.ip().is_loopback() && !authenticated && !m.callback_allow_unauthenticated
    })
}
