//! The SMPP server door (`[smpp_server] listen`): upstream ESMEs (older
//! campaign platforms, aggregators, resellers) bind to sluice as to an SMSC
//! and submit over SMPP 3.4, on the same [`Backend`] as the framed
//! protocol, with the guarantees of every door.
//!
//! | the upstream sends | sluice answers |
//! | --- | --- |
//! | `bind_transmitter` / `bind_receiver` / `bind_transceiver` | the tenant whose `smpp_system_id` and `smpp_password` match; `ESME_RINVSYSID` / `ESME_RINVPASWD` otherwise, later each time and then unchecked (`ESME_RBINDFAIL`) while an address keeps failing, and the connection closes |
//! | `submit_sm`, `data_sm` | once the message is durable, its id (16 hex digits, the id its receipt names); a refusal's status (`ESME_RINVDSTADR`, `ESME_RINVSRCADR`, `ESME_RINVMSGLEN`, `ESME_RINVDCS`, `ESME_RINVEXPIRY`, `ESME_RINVSCHED`, `ESME_RSUBMITFAIL`); under back-pressure `ESME_RTHROTTLED` (0x58) and nothing admitted |
//! | the parts of a concatenated text (8- or 16-bit UDH, SAR TLVs) | every part the one message's id once the whole text is admitted, with a receipt if any part asked for one; parts still incomplete after `reassembly_timeout` are refused `ESME_RSUBMITFAIL`; a part longer than any whole text may be is refused `ESME_RINVMSGLEN` before it is held, and when the whole text does not decode every part is refused at once |
//! | `enquire_link` | `enquire_link_resp`; sluice sends its own after `enquire_link_interval` of silence and closes a peer that does not answer within `response_timeout` |
//! | `unbind` | `unbind_resp` once every submit still being admitted is answered |
//! | (a reload replaced or removed the bind's credentials) | within a second: every submit being admitted is answered, then sluice sends `unbind` and closes; the upstream binds again with the new ones |
//! | a malformed PDU, an unknown command, a command in the wrong state | `generic_nack` with the matching status (`ESME_RINVCMDID`, `ESME_RINVBNDSTS`, ...), and the session carries on; a length outside `16..=max_pdu_bytes` is answered `generic_nack`, nothing more is read (the stream cannot be resynchronised), the submits read before it are answered, then the connection closes |
//! | (the upstream closes its end of the stream) | the submits read before are answered (for an upstream still reading), then the connection closes |
//!
//! Texts arrive in GSM-7 (unpacked, `data_coding` 0), IA5, Latin-1 or
//! UCS-2, in `short_message` or `message_payload`. Everything the gateway
//! does still applies: sender ownership, opt-outs, limits, routing.
//!
//! # Receipts and inbound messages
//! A tenant with SMPP credentials has an event destination of its own,
//! `smpp` ([`ENDPOINT`]), beside its stream and webhooks: the receipts its
//! SMPP submits asked for (`registered_delivery` bits 0–1: 1 on success and
//! failure, 2 on failure only, 3 on success only as in SMPP 5.0; a long
//! text gets every outcome any of its parts asked for) and its inbound messages,
//! each encoded once as a `deliver_sm` ([`deliver`]) and journaled. Its
//! receiver and transceiver binds take them, at most `window` in flight
//! per bind; each is acknowledged (and leaves the journal) at its
//! `deliver_sm_resp`. An answer refusing it for now (`ESME_RX_T_APPN`,
//! `ESME_RTHROTTLED`, `ESME_RMSGQFUL`) or none within `response_timeout`
//! puts it back for a later try. A passing error (`ESME_RSYSERR`, or a
//! `generic_nack` naming no error) puts it back too, but after the third
//! on one bind it is dead-lettered: kept in the journal, not sent again
//! until `POST /admin/smpp/{tenant}/replay` or a restart. Another
//! refusal drops it (counted). When a
//! bind closes, what it had not answered goes back; after a restart every
//! unanswered one is sent again. Delivery is at least once.
//!
//! Hand-written rather than on an SMPP server crate: the PDU codec, text
//! handling and reassembly are the carrier side's ([`crate::smpp`]), and
//! the session is the product's core (durable-before-answer, journaled
//! receipts).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::door::Door;
use crate::door::throttle::{AuthThrottle, ThrottleConfig};
use crate::events::ConnId;
use crate::ingest::Backend;
use crate::ingest::identity::Binding;
use crate::model::Secret;
use crate::smpp::pdu::CommandStatus;

pub mod deliver;
mod session;
mod submit;

#[cfg(test)]
mod tests;

pub use deliver::SmppEvents;

const TARGET: &str = "sluice::smpp_server";

/// The name of a tenant's event destination for its SMPP binds.
pub const ENDPOINT: &str = "smpp";

/// The first [`ConnId`] of SMPP server sessions (2^62 + 2^61: above the
/// framed door's and the HTTP API's, below none of the gRPC door's).
pub const SMPP_CONN_BASE: ConnId = (1 << 62) + (1 << 61);

static NEXT_CONN: AtomicU64 = AtomicU64::new(SMPP_CONN_BASE);

fn next_conn() -> ConnId {
    NEXT_CONN.fetch_add(1, Ordering::Relaxed)
}

/// One tenant's SMPP credentials.
#[derive(Debug, Clone)]
pub struct Account {
    /// The tenant.
    pub tenant: Arc<str>,
    /// Its `system_id`.
    pub system_id: String,
    /// Its password.
    pub password: Secret,
}

/// Every tenant's SMPP credentials, each with a stamp that changes when a
/// reload changes them ([`Accounts::replace`]): a session bound under
/// another stamp is unbound.
#[derive(Debug, Default)]
pub struct Accounts {
    list: parking_lot::RwLock<Vec<(Account, u64)>>,
    /// The last stamp given: stamps only grow, so an account removed and
    /// added again never matches a session of before.
    last: std::sync::atomic::AtomicU64,
}

impl Accounts {
    /// The accounts (system ids are unique: the configuration checks it).
    pub fn new(accounts: impl IntoIterator<Item = Account>) -> Accounts {
        Accounts {
            list: parking_lot::RwLock::new(accounts.into_iter().map(|a| (a, 0)).collect()),
            last: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A stamp no account had before.
    fn fresh(&self) -> u64 {
        self.last
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .wrapping_add(1)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.read().is_empty()
    }

    /// Takes reloaded accounts: a tenant whose system id or password
    /// changed gets a new stamp (its bound sessions are unbound); one that
    /// lost its account has none. Returns the tenants whose credentials
    /// changed.
    pub fn replace(&self, accounts: impl IntoIterator<Item = Account>) -> Vec<Arc<str>> {
        let mut list = self.list.write();
        let mut changed = Vec::new();
        let next: Vec<(Account, u64)> = accounts
            .into_iter()
            .map(|a| {
                let stamp = match list.iter().find(|(o, _)| o.tenant == a.tenant) {
                    Some((o, stamp))
                        if o.system_id == a.system_id
                            && o.password.expose() == a.password.expose() =>
                    {
                        *stamp
                    }
                    Some(_) => {
                        changed.push(a.tenant.clone());
                        self.fresh()
                    }
                    None => self.fresh(),
                };
                (a, stamp)
            })
            .collect();
        for (o, _) in list.iter() {
            if !next.iter().any(|(a, _)| a.tenant == o.tenant) {
                changed.push(o.tenant.clone());
            }
        }
        *list = next;
        changed
    }

    /// The stamp of `tenant`'s credentials; `None` when it has no account.
    pub fn stamp(&self, tenant: &str) -> Option<u64> {
        self.list
            .read()
            .iter()
            .find(|(a, _)| &*a.tenant == tenant)
            .map(|(_, stamp)| *stamp)
    }

    /// The tenant these credentials name, or the status refusing the bind.
    /// The password is compared in constant time.
    ///
    /// # Errors
    /// `ESME_RINVSYSID` for an unknown system id, `ESME_RINVPASWD` for a
    /// wrong password.
    pub fn check(&self, system_id: &[u8], password: &[u8]) -> Result<Arc<str>, CommandStatus> {
        self.check_stamped(system_id, password).map(|(t, _)| t)
    }

    /// [`Accounts::check`], with the stamp of the credentials that matched.
    ///
    /// # Errors
    /// As [`Accounts::check`].
    pub fn check_stamped(
        &self,
        system_id: &[u8],
        password: &[u8],
    ) -> Result<(Arc<str>, u64), CommandStatus> {
        let list = self.list.read();
        let Some((a, stamp)) = list
            .iter()
            .find(|(a, _)| a.system_id.as_bytes() == system_id)
        else {
            return Err(CommandStatus::ESME_RINVSYSID);
        };
        let given = String::from_utf8_lossy(password);
        if a.password.matches(&given) {
            Ok((a.tenant.clone(), *stamp))
        } else {
            Err(CommandStatus::ESME_RINVPASWD)
        }
    }
}

/// Limits and timers of the SMPP server's sessions.
#[derive(Debug, Clone)]
pub struct SmppServerLimits {
    /// The `system_id` in bind responses.
    pub system_id: String,
    /// Deadline for a TLS handshake.
    pub handshake_timeout: Duration,
    /// Deadline for the first bind.
    pub bind_timeout: Duration,
    /// Silence after which sluice sends `enquire_link`.
    pub enquire_link_interval: Duration,
    /// Deadline for the upstream's answer to a `deliver_sm` or
    /// `enquire_link`, and for a write.
    pub response_timeout: Duration,
    /// Most `deliver_sm` unanswered per bind.
    pub window: usize,
    /// Most submits unanswered per bind (being admitted, or parts held);
    /// past it a submit is answered `ESME_RTHROTTLED`.
    pub max_pending_submits: usize,
    /// Most submits admitted together.
    pub max_batch: usize,
    /// How long the parts of a concatenated text wait for the rest.
    pub reassembly_timeout: Duration,
    /// Largest PDU, octets.
    pub max_pdu_bytes: usize,
    /// How failed binds are throttled per address.
    pub auth: ThrottleConfig,
    /// Client certificates are required (they bind a connection to the
    /// tenant they name).
    pub cert_required: bool,
}

impl Default for SmppServerLimits {
    fn default() -> Self {
        SmppServerLimits {
            system_id: "sluice".into(),
            handshake_timeout: Duration::from_secs(10),
            bind_timeout: Duration::from_secs(10),
            enquire_link_interval: Duration::from_secs(30),
            response_timeout: Duration::from_secs(30),
            window: 10,
            max_pending_submits: 1000,
            max_batch: 500,
            reassembly_timeout: Duration::from_secs(60),
            max_pdu_bytes: crate::smpp::codec::DEFAULT_MAX_PDU_LEN,
            auth: ThrottleConfig {
                delay: Duration::from_millis(100),
                delay_max: Duration::from_secs(5),
                per_minute: 10,
            },
            cert_required: false,
        }
    }
}

/// Fuzz hook: a session's submit path without its socket. Every
/// `submit_sm` and `data_sm` framed in `data` goes through data_sm
/// decoding, the envelope, the text and the reassembly of parts; whole
/// texts keep every part's answer, and what is held stays bounded.
#[doc(hidden)]
pub fn fuzz_submits(data: &[u8]) {
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    use crate::smpp::codec::SmppCodec;
    use crate::smpp::pdu::{Body, SubmitSm};
    use submit::{Command, PartOutcome};

    let mut buf = BytesMut::from(data);
    let mut codec = SmppCodec::default();
    let mut parts = submit::Parts::new(4);
    let now = tokio::time::Instant::now();
    let mut pushed = 0u32;
    // Each push answers under its own number: every answer held comes back
    // exactly once (whole, refused with its text, or expired), and `held`
    // counts exactly the answers still waiting.
    let mut waiting = std::collections::HashSet::new();
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        let Ok(pdu) = frame else { continue };
        let seq = pdu.sequence_number;
        let sm = match pdu.body {
            Body::SubmitSm(sm) => sm,
            Body::Other {
                command_id: 0x0000_0103,
                body,
            } => match SubmitSm::decode_data_sm(&body, seq) {
                Ok(sm) => sm,
                Err(_) => continue,
            },
            _ => continue,
        };
        let Ok(env) = submit::envelope(&sm, 1_796_385_600) else {
            continue;
        };
        let part = submit::incoming(&sm);
        match part.concat() {
            Ok(Some(info)) if info.total > 1 => {
                pushed += 1;
                let id = pushed;
                match parts.push(&sm, &part, info, env, (id, Command::SubmitSm), now) {
                    Ok(PartOutcome::Held) => assert!(waiting.insert(id)),
                    Ok(PartOutcome::Whole(_, _, answers)) => {
                        assert!(answers.contains(&(id, Command::SubmitSm)));
                        for (earlier, _) in answers.iter().filter(|(a, _)| *a != id) {
                            assert!(waiting.remove(earlier), "answered twice");
                        }
                    }
                    Err(refused) => {
                        for (earlier, _) in &refused.earlier {
                            assert!(waiting.remove(earlier), "answered twice");
                        }
                    }
                }
                assert_eq!(parts.held(), waiting.len());
            }
            Ok(_) => {
                let _ = part.decode();
            }
            Err(_) => {}
        }
    }
    for answers in parts.expire(now, Duration::ZERO) {
        for (earlier, _) in answers {
            assert!(waiting.remove(&earlier), "answered twice");
        }
    }
    assert!(waiting.is_empty(), "every held answer comes back");
    assert_eq!(parts.held(), 0, "expired parts are all released");
}

/// Accepts ESME connections on `door` until `shutdown` turns true, then
/// lets every session finish (answer what it admitted, unbind) within
/// `response_timeout`.
pub async fn serve<B: Backend>(
    mut door: Door,
    backend: Arc<B>,
    accounts: Arc<Accounts>,
    limits: SmppServerLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = Arc::new(limits);
    let throttle = Arc::new(AuthThrottle::new(limits.auth));
    let mut sessions = JoinSet::new();
    loop {
        let visitor = tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
            v = door.accept() => v,
        };
        let ctx = session::Context {
            backend: backend.clone(),
            accounts: accounts.clone(),
            throttle: throttle.clone(),
            limits: limits.clone(),
        };
        let shutdown = shutdown.clone();
        sessions.spawn(async move {
            let peer = visitor.peer;
            let conn = match visitor.open(ctx.limits.handshake_timeout).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(target: TARGET, %peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let binding = Binding::of(ctx.limits.cert_required, conn.identity.clone());
            session::run(ctx, conn, binding, next_conn(), shutdown).await;
        });
    }
    let grace = limits.response_timeout + Duration::from_secs(1);
    let _ = tokio::time::timeout(grace, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
}
