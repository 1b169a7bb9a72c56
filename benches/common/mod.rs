//! What more than one bench builds the same way: a one-part SMS message of
//! tenant `acme`. A subdirectory, so Cargo does not take it for a bench.

use std::sync::Arc;

use sluice::model::{ChannelPref, FallbackPolicy, Message, MessageId, Msisdn, Priority, Sender};

/// Message `id`: `acme`'s shipping notice from `ACMESHOP` to
/// +14155550123, in `campaign` (empty for none), expiring at
/// `expires_at_ms` (Unix ms).
pub fn message(id: u64, campaign: &str, expires_at_ms: u64) -> Arc<Message> {
    Arc::new(Message {
        id: MessageId(id),
        tenant: "acme".into(),
        client_ref: format!("ord-{id}").into(),
        to: Msisdn::parse("+14155550123").expect("valid number"),
        from: Sender::parse("ACMESHOP").expect("valid sender"),
        text: "Your order has shipped.".into(),
        media: Box::default(),
        channel: ChannelPref::Sms,
        fallback: FallbackPolicy::SmsTextOnly,
        campaign_id: campaign.into(),
        expires_at_ms,
        priority: Priority::Transactional,
        tags: Box::default(),
        accepted_at_ms: 1_795_000_000_000,
        auto_reply: false,
        mms: None,
    })
}
