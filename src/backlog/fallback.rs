//! SMS fallback: a message that cannot go as MMS (no MMS reach, or an MMSC
//! refused it for good) goes as SMS per its fallback policy — its text with
//! a link to its landing page, its text only — or fails, saying why.
//!
//! The landing page (the tenant's display name, the subject, the whole text
//! and every media item: [`LandingPage`]) is recorded, synced, before the
//! SMS that links to it is queued. Its name is its content, so a campaign's
//! same message is written once; a page not yet on disk is written on a
//! blocking thread (the caller may be an async task), then the SMS queued.

use std::sync::Arc;

use super::Backlog;
use crate::ledger::Ledger;
use crate::media::landing::LandingPage;
use crate::media::link::{LinkSigner, landing_path};
use crate::media::store::MediaStore;
use crate::model::{ChannelPref, DeliveryState, FallbackPolicy, MAX_TEXT_CHARS, Message};
use crate::schedule::CarrierQueue;

/// The SMS text `m` falls back to: with links under `public_url` — one to
/// its landing page `landing` (a code) when given, else one to each media
/// item's page — the text trimmed so the whole stays within the SMS text
/// limit, never a link; or its text only. `Err` says why it cannot fall
/// back.
///
/// # Errors
/// The fallback policy is none, or text-only with no text.
pub fn fallback_text(
    m: &Message,
    public_url: &str,
    links: &LinkSigner,
    landing: Option<&str>,
) -> Result<String, &'static str> {
    if let Some(why) = refusal(m) {
        return Err(why);
    }
    match m.fallback {
        // None was refused above.
        FallbackPolicy::None | FallbackPolicy::SmsTextOnly => Ok(m.text.clone()),
        FallbackPolicy::SmsWithLink => {
            let base = public_url.trim_end_matches('/');
            let links = match landing {
                Some(code) => format!("{base}{}", landing_path(code)),
                None => {
                    let each: Vec<String> = m
                        .media
                        .iter()
                        .map(|id| format!("{base}{}", links.path(m.id.0, id)))
                        .collect();
                    each.join(" ")
                }
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

/// Why `m` cannot fall back to SMS, if it cannot: its policy is none, or
/// text-only with no text.
fn refusal(m: &Message) -> Option<&'static str> {
    match m.fallback {
        FallbackPolicy::None => Some("the fallback policy is none"),
        FallbackPolicy::SmsTextOnly if m.text.trim().is_empty() => Some("there is no text for SMS"),
        _ => None,
    }
}

/// What `m`'s landing page shows; `display_name` is its tenant's.
pub fn landing_page(m: &Message, display_name: Option<&str>) -> LandingPage {
    LandingPage {
        from: display_name.unwrap_or_default().to_owned(),
        subject: m.subject.clone().unwrap_or_default(),
        text: m.text.clone(),
        media: m.media.iter().map(|id| id.to_ascii_lowercase()).collect(),
    }
}

/// A fallback whose text is known: queued on `queue`, its history noted.
struct Going {
    ledger: Arc<Ledger>,
    queue: Arc<CarrierQueue>,
    how: &'static str,
    reason: String,
}

impl Going {
    fn send(self, m: &Message, text: String) {
        let sms = Arc::new(Message {
            text,
            media: Vec::new(),
            channel: ChannelPref::Sms,
            ..m.clone()
        });
        self.ledger.history().fallback(m.id, self.how, &self.reason);
        self.ledger.set_note(
            m.id,
            format!("fallback to SMS {}: {}", self.how, self.reason),
        );
        metrics::counter!("sluice_mms_fallbacks_total").increment(1);
        self.queue.push(std::iter::once(&sms));
    }
}

/// Records `page` as `code` in `store`; false (logged) when it cannot.
fn record(store: &MediaStore, code: &str, page: &LandingPage, m: &Message) -> bool {
    match store.put_landing(code, page) {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(target: "sluice::backlog", id = %m.id, error = %e, "landing page not recorded; linking each media item");
            false
        }
    }
}

impl Backlog {
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
        if let Some(why) = refusal(&m) {
            return fail(format!("cannot send as MMS ({reason}) and {why}"));
        }
        let Some(queue) = self.sms_queue(m.to) else {
            return fail(format!(
                "cannot send as MMS ({reason}) and no SMS route reaches {}",
                m.to
            ));
        };
        let going = Going {
            ledger: self.ledger.clone(),
            queue: queue.clone(),
            how: match m.fallback {
                FallbackPolicy::SmsWithLink => "with a link",
                _ => "text only",
            },
            reason,
        };
        let text = |landing: Option<&str>| {
            // The policy was checked above.
            fallback_text(&m, &self.public_url, &self.links, landing).unwrap_or_default()
        };
        let store = match &self.media {
            Some(store) if m.fallback == FallbackPolicy::SmsWithLink && !m.media.is_empty() => {
                store
            }
            _ => return going.send(&m, text(None)),
        };
        let page = landing_page(&m, self.display_names.get(&m.tenant).map(String::as_str));
        let code = self.links.landing_code(&m.tenant, &page);
        if store.has_landing(&code) {
            return going.send(&m, text(Some(&code)));
        }
        let (store, links, public_url) =
            (store.clone(), self.links.clone(), self.public_url.clone());
        let write_then_send = move || {
            let landing = record(&store, &code, &page, &m).then_some(code.as_str());
            let text = fallback_text(&m, &public_url, &links, landing).unwrap_or_default();
            going.send(&m, text);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(write_then_send)),
            Err(_) => write_then_send(),
        }
    }
}
