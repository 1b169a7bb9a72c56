//! Inbound messages from handsets (SMS MO through any SMPP bind, MMS
//! through an MMSC's callbacks): opt-out and opt-in keywords change
//! suppression durably and get their confirmation, HELP gets its reply,
//! everything else goes upstream as an `inbound` event to the tenant that
//! owns the number written to. Also the MM7 callbacks of each MMSC
//! ([`mmsc::MmscCallbacks`]: delivery reports and inbound MMS).
//!
//! [`Inbound`] is the receipts' [`InboundSink`]; it holds the backlog (for
//! auto-replies), not the gateway, and the receipts hold it only weakly, so
//! nothing owns itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::backlog::Backlog;
use crate::compliance::{Compliance, Inbound as Classified};
use crate::events::{EventHub, InboundEvent, Notice, OptEvent};
use crate::journal::Journal;
use crate::ledger::Ledger;
use crate::links::campaigns::Campaigns;
use crate::model::{
    ChannelPref, FallbackPolicy, LogSafe, Message, MessageId, Msisdn, Priority, Sender, now_ms,
};
use crate::receipts::{InboundError, InboundMo, InboundSink};

pub mod mmsc;

const TARGET: &str = "sluice::inbound";

/// How long a compliance auto-reply may wait for its carrier.
const AUTO_REPLY_VALIDITY_MS: u64 = 24 * 3600 * 1000;

/// Handles inbound messages (see the module doc).
#[derive(Debug)]
pub struct Inbound {
    compliance: Arc<Compliance>,
    hub: Arc<EventHub>,
    journal: Journal,
    ledger: Arc<Ledger>,
    backlog: Arc<Backlog>,
    /// Attributes opt-outs to campaigns (set once at start).
    campaigns: std::sync::OnceLock<Arc<Campaigns>>,
}

impl Inbound {
    /// Attributes keyword opt-outs to campaigns from now on.
    pub fn attribute_to(&self, campaigns: Arc<Campaigns>) {
        let _ = self.campaigns.set(campaigns);
    }

    /// Inbound handling over these parts.
    pub fn new(
        compliance: Arc<Compliance>,
        hub: Arc<EventHub>,
        journal: Journal,
        ledger: Arc<Ledger>,
        backlog: Arc<Backlog>,
    ) -> Inbound {
        Inbound {
            compliance,
            hub,
            journal,
            ledger,
            backlog,
            campaigns: std::sync::OnceLock::new(),
        }
    }

    /// Handles one inbound message; `Ok` once what it carries is durable.
    ///
    /// # Errors
    /// The opt-out or the event could not be stored: the carrier should
    /// deliver it again.
    pub async fn handle(&self, mo: InboundMo) -> Result<(), InboundError> {
        let handset = Msisdn::parse(mo.from.trim()).ok();
        let outcome = match handset {
            Some(n) => self
                .compliance
                .inbound(n, &mo.to, &mo.text, &mo.carrier, mo.channel)
                .await
                .map_err(|e| {
                    tracing::error!(target: TARGET, error = %e, "opt-out journal failed");
                    InboundError::OptOut(e)
                })?,
            // From a short code or an alphanumeric id: no opt-out possible.
            None => match self.compliance.owner(&mo.to) {
                Some(tenant) => Classified::Forward { tenant },
                None => Classified::NoTenant,
            },
        };
        let (tenant, event, reply) = match outcome {
            Classified::NoTenant => {
                tracing::warn!(target: TARGET, to = %LogSafe::new(&mo.to), carrier = %mo.carrier, "inbound message to a number no tenant owns");
                metrics::counter!("sluice_inbound_dropped_total", "reason" => "no_tenant")
                    .increment(1);
                return Ok(());
            }
            Classified::Forward { tenant } => {
                let ev = Notice::Inbound(InboundEvent {
                    // Numbers as E.164, whatever form the carrier gave them in.
                    from: handset.map_or_else(|| mo.from.clone(), |n| n.to_string()),
                    to: Sender::parse(mo.to.trim())
                        .map_or_else(|_| mo.to.clone(), |s| s.to_string()),
                    text: mo.text.clone(),
                    at_ms: now_ms(),
                    carrier: mo.carrier.to_string(),
                    linked_id: mo.linked_id.clone(),
                });
                (tenant, Some(ev), None)
            }
            Classified::OptedOut {
                tenant,
                scope,
                keyword,
                reply,
            }
            | Classified::OptedIn {
                tenant,
                scope,
                keyword,
                reply,
            } => {
                let opted_out = handset.is_some_and(|n| self.compliance.check_scope(&scope, n));
                let at_ms = now_ms();
                let campaign = match (opted_out, handset, self.campaigns.get()) {
                    (true, Some(n), Some(c)) => Sender::parse(mo.to.trim())
                        .ok()
                        .and_then(|s| c.stop(&tenant, &s, n.as_u64(), at_ms / 1000)),
                    _ => None,
                };
                let ev = Notice::Opt(OptEvent {
                    number: handset.map_or_else(|| mo.from.clone(), |n| n.to_string()),
                    scope,
                    opted_out,
                    keyword,
                    at_ms,
                    campaign: campaign.map(|c| c.to_string()).unwrap_or_default(),
                });
                (tenant, Some(ev), reply)
            }
            Classified::Help { tenant, reply } => (tenant, None, Some(reply)),
        };
        if let Some(ev) = event {
            self.hub
                .publish_notice(&tenant, &ev)
                .wait()
                .await
                .map_err(InboundError::Event)?;
        }
        if let (Some(text), Some(handset)) = (reply, handset) {
            self.auto_reply(&tenant, &mo.to, handset, text).await;
        }
        Ok(())
    }

    /// Sends a compliance reply from the sender the handset wrote to.
    async fn auto_reply(&self, tenant: &Arc<str>, sender: &str, to: Msisdn, text: String) {
        let Ok(from) = Sender::parse(sender.trim()) else {
            tracing::warn!(target: TARGET, sender = %LogSafe::new(sender), "cannot reply from this sender address");
            return;
        };
        let now = now_ms();
        let id = MessageId(self.journal.allocate_message_ids(1));
        let m = Arc::new(Message {
            id,
            tenant: tenant.clone(),
            client_ref: format!("auto-reply-{id}").into(),
            to,
            from,
            text: text.into(),
            media: Box::default(),
            channel: ChannelPref::Sms,
            fallback: FallbackPolicy::None,
            campaign_id: "compliance".into(),
            expires_at_ms: now + AUTO_REPLY_VALIDITY_MS,
            priority: Priority::Transactional,
            tags: Box::new(["auto-reply".into()]),
            accepted_at_ms: now,
            auto_reply: true,
            mms: None,
        });
        let stored = self.ledger.accept(std::slice::from_ref(&m));
        if let Err(e) = stored.wait().await {
            tracing::error!(target: TARGET, error = %e, "could not store an auto-reply");
            self.ledger.forget([id]);
            return;
        }
        metrics::counter!("sluice_auto_replies_total").increment(1);
        self.backlog.enqueue(&[m]);
    }
}

impl InboundSink for Inbound {
    fn inbound(
        self: Arc<Self>,
        mo: InboundMo,
    ) -> Pin<Box<dyn Future<Output = Result<(), InboundError>> + Send>> {
        Box::pin(async move { self.handle(mo).await })
    }
}
