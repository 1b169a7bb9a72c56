//! SMS fallback: a message that cannot go as MMS (no MMS reach, or an MMSC
//! refused it for good) goes as SMS per its fallback policy — its text with
//! a link to its media page, its text only — or fails, saying why.

use std::sync::Arc;

use super::Backlog;
use crate::media::link::LinkSigner;
use crate::model::{ChannelPref, DeliveryState, FallbackPolicy, MAX_TEXT_CHARS, Message};

/// The SMS text `m` falls back to: with links under `public_url` — one to
/// the message's page when `page` (its media recorded for it), else one to
/// each media item's page — the text trimmed so the whole stays within the
/// SMS text limit, never a link; or its text only. `Err` says why it cannot
/// fall back.
///
/// # Errors
/// The fallback policy is none, or text-only with no text.
pub fn fallback_text(
    m: &Message,
    public_url: &str,
    links: &LinkSigner,
    page: bool,
) -> Result<String, &'static str> {
    match m.fallback {
        FallbackPolicy::None => Err("the fallback policy is none"),
        FallbackPolicy::SmsTextOnly if m.text.trim().is_empty() => Err("there is no text for SMS"),
        FallbackPolicy::SmsTextOnly => Ok(m.text.clone()),
        FallbackPolicy::SmsWithLink => {
            let base = public_url.trim_end_matches('/');
            let links = if page {
                format!("{base}{}", links.page_path(m.id.0))
            } else {
                let each: Vec<String> = m
                    .media
                    .iter()
                    .map(|id| format!("{base}{}", links.path(m.id.0, id)))
                    .collect();
                each.join(" ")
            };
            let room = MAX_TEXT_CHARS.saturating_sub(links.chars().count() + 1);
            let body: String = m.text.chars().take(room).collect();
            Ok(if body.trim().is_empty() {
                links
            } else {
                format!("{body}\n{links}")
            })
        }
    }
}

impl Backlog {
    /// Records which media `m`'s page shows (synced: its SMS links to it);
    /// false when there is no store or it could not be written (the SMS
    /// then links to each media item instead).
    fn record_page(&self, m: &Message) -> bool {
        let Some(store) = &self.media else {
            return false;
        };
        let ids: Option<Vec<_>> = m
            .media
            .iter()
            .map(|id| crate::media::store::MediaId::parse(id).ok())
            .collect();
        let Some(ids) = ids else {
            return false;
        };
        match store.put_page(m.id.0, &ids) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(target: "sluice::backlog", id = %m.id, error = %e, "fallback page not recorded; linking each media item");
                false
            }
        }
    }

    /// Sends `m` as SMS per its fallback policy (or fails it), saying why.
    /// `mmsc`: the MMSC that refused it and the MM7 status, when it was
    /// refused there (a failure then reports that MMSC and status).
    pub fn fallback(&self, m: Arc<Message>, reason: String, mmsc: Option<(&Arc<str>, u32)>) {
        let fail = |why: String| {
            let mut endings = self.receipts.endings();
            if let Some(f) = endings.end(m.id, DeliveryState::Failed, 0, &why.into())
                && let Some((carrier, code)) = mmsc
            {
                f.carrier = Some(carrier.clone());
                f.error_code = code;
            }
        };
        let page =
            m.fallback == FallbackPolicy::SmsWithLink && m.media.len() > 1 && self.record_page(&m);
        let text = match fallback_text(&m, &self.public_url, &self.links, page) {
            Ok(text) => text,
            Err(why) => return fail(format!("cannot send as MMS ({reason}) and {why}")),
        };
        let how = match m.fallback {
            FallbackPolicy::SmsWithLink => "with a link",
            _ => "text only",
        };
        let sms = Arc::new(Message {
            text,
            media: Vec::new(),
            channel: ChannelPref::Sms,
            ..(*m).clone()
        });
        match self.sms_queue(m.to) {
            Some(q) => {
                self.ledger.history().fallback(m.id, how, &reason);
                self.ledger
                    .set_note(m.id, format!("fallback to SMS {how}: {reason}"));
                metrics::counter!("sluice_mms_fallbacks_total").increment(1);
                q.push(std::iter::once(&sms));
            }
            None => fail(format!(
                "cannot send as MMS ({reason}) and no SMS route reaches {}",
                m.to
            )),
        }
    }
}
