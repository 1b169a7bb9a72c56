//! SMS fallback: a message that cannot go as MMS (no MMS reach, or an MMSC
//! refused it for good) goes as SMS per its fallback policy — its text with
//! a link to its landing page, its text only — or fails, saying why.
//!
//! The landing page (the tenant's display name, the subject, the whole text
//! and every media item: [`LandingPage`]) is recorded, synced, before the
//! SMS that links to it is queued. For a tenant with `track_links` the link
//! is a tracked short link too ([`crate::links`]), stored and synced before
//! the SMS is queued, so the page's visits count as the campaign's clicks. Its name is its content, so a campaign's
//! same message is written once; a page not yet on disk is written on a
//! blocking thread (the caller may be an async task), then the SMS queued.

use std::collections::HashMap;
use std::sync::Arc;

use super::Backlog;
use crate::ledger::Ledger;
use crate::links::{LinkStore, Ticket, rewrite};
use crate::media::landing::LandingPage;
use crate::media::link::{LinkSigner, landing_path};
use crate::media::store::MediaStore;
use crate::model::{ChannelPref, DeliveryState, FallbackPolicy, MAX_TEXT_CHARS, Message};

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
        FallbackPolicy::None | FallbackPolicy::SmsTextOnly => Ok(String::from(&*m.text)),
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
        subject: m.subject().unwrap_or_default().to_owned(),
        text: String::from(&*m.text),
        media: m.media.iter().map(|id| id.to_ascii_lowercase()).collect(),
    }
}

/// Where the fallback links of tenants with `track_links` are shortened:
/// the landing link at the end of the SMS becomes `<link_url>/<code>`,
/// redirecting to the page and counting its clicks like any tracked link.
#[derive(Debug)]
pub(crate) struct ShortLinks {
    pub(crate) store: LinkStore,
    /// Tenants with `track_links` → the base of their short links
    /// (replaced by a reload, [`super::Backlog::set_tenants`]).
    pub(crate) bases: Arc<parking_lot::RwLock<HashMap<Arc<str>, Arc<str>>>>,
}

impl ShortLinks {
    /// `text` (a fallback's) with its trailing links shortened for `m`'s
    /// tenant, and the ticket to wait on before sending it; `None` when the
    /// tenant does not track links or the text ends with none.
    fn shorten(&self, m: &Message, text: &str) -> Option<(String, Ticket)> {
        if m.fallback != FallbackPolicy::SmsWithLink {
            return None;
        }
        let base = self.bases.read().get(&m.tenant)?.clone();
        // The links follow the last line break (or are the whole text).
        let (body, links) = match text.rsplit_once('\n') {
            Some((body, links)) => (Some(body), links),
            None => (None, text),
        };
        let plan = rewrite::plan(links, &base)?;
        let mut tracked = Message {
            text: plan.text.into(),
            ..m.clone()
        };
        let ticket = self.store.shorten(&mut tracked, &plan.links);
        let text = match body {
            Some(body) => format!("{body}\n{}", tracked.text),
            None => tracked.text.into(),
        };
        Some((text, ticket))
    }
}

/// A fallback whose text is known: queued on the SMS carrier its route
/// picks when it goes (storing its short link may take a while, and a
/// reload may remove a carrier meanwhile), its history noted.
struct Going {
    ledger: Arc<Ledger>,
    scheduler: Arc<crate::schedule::Scheduler>,
    router: Arc<crate::route::Router>,
    receipts: Arc<crate::receipts::Receipts>,
    how: &'static str,
    reason: String,
}

impl Going {
    /// Sends `text`, its links shortened first when `short` tracks them for
    /// `m`'s tenant (and stored durably before the SMS is queued; if they
    /// cannot be stored, the SMS goes with the long link). From a blocking
    /// thread (`blocking`), waits in place; else in a task of its own.
    fn send_tracked(
        self,
        m: Arc<Message>,
        text: String,
        short: Option<&ShortLinks>,
        blocking: bool,
    ) {
        let Some((short_text, ticket)) = short.and_then(|s| s.shorten(&m, &text)) else {
            return self.send(&m, text);
        };
        let store = short.map(|s| s.store.clone());
        let finish = move |stored: bool| {
            self.send(&m, if stored { short_text } else { text });
        };
        let Some(store) = store else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if blocking => {
                let stored = rt.block_on(store.durable(ticket)).is_ok();
                finish(stored);
            }
            Ok(rt) => drop(rt.spawn(async move {
                let stored = store.durable(ticket).await.is_ok();
                finish(stored);
            })),
            // No runtime (tools, tests): no waiting, so the long link.
            Err(_) => finish(false),
        }
    }

    fn send(self, m: &Message, text: String) {
        let sms = Arc::new(Message {
            text: text.into(),
            media: Box::default(),
            channel: ChannelPref::Sms,
            ..m.clone()
        });
        let note = format!("fallback to SMS {}: {}", self.how, self.reason);
        if !self.ledger.set_note(m.id, note) {
            // It ended (expired, suppressed, refused) before its SMS could
            // be queued: nothing is left to send.
            return;
        }
        // A final landing right here carries the note, and its history
        // step may precede this one: harmless, the timeline still holds
        // both.
        self.ledger.history().fallback(m.id, self.how, &self.reason);
        metrics::counter!("sluice_mms_fallbacks_total").increment(1);
        match super::sms_queue(&self.scheduler, &self.router, sms.to) {
            Some(q) => q.push(std::iter::once(&sms)),
            // A reload took the last route to it since the fallback began.
            None => {
                self.receipts.end(
                    m.id,
                    DeliveryState::Rejected,
                    &"no route to this recipient".into(),
                );
            }
        }
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
    /// Sends `m` as SMS per its fallback policy (or fails it), saying why;
    /// nothing, when `m` has ended meanwhile.
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
        if super::sms_queue(&self.scheduler, &self.router, m.to).is_none() {
            return fail(format!(
                "cannot send as MMS ({reason}) and no SMS route reaches {}",
                m.to
            ));
        }
        let going = Going {
            ledger: self.ledger.clone(),
            scheduler: self.scheduler.clone(),
            router: self.router.clone(),
            receipts: self.receipts.clone(),
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
            _ => {
                let text = text(None);
                return going.send_tracked(m, text, self.short_links.as_ref(), false);
            }
        };
        let display_name = self.display_names.read().get(&m.tenant).cloned();
        let page = landing_page(&m, display_name.as_deref());
        let code = self.links.landing_code(&m.tenant, &page);
        if store.has_landing(&code) {
            let text = text(Some(&code));
            return going.send_tracked(m, text, self.short_links.as_ref(), false);
        }
        let (store, links, public_url) =
            (store.clone(), self.links.clone(), self.public_url.clone());
        let short = self.short_links.as_ref().map(|s| ShortLinks {
            store: s.store.clone(),
            bases: s.bases.clone(),
        });
        let write_then_send = move || {
            let landing = record(&store, &code, &page, &m).then_some(code.as_str());
            let text = fallback_text(&m, &public_url, &links, landing).unwrap_or_default();
            going.send_tracked(m, text, short.as_ref(), true);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(write_then_send)),
            Err(_) => write_then_send(),
        }
    }
}
