//! Telling a recipient's click from a machine's fetch, and the coarse
//! network a click came from.
//!
//! Messengers and carriers fetch links to draw previews (often before the
//! recipient has seen the message), and crawlers follow whatever they find.
//! Those fetches are counted apart ([`is_preview`]): a `HEAD` request, a
//! request that says it is a prefetch or a preview (`Sec-Purpose`,
//! `Purpose`, `X-Purpose`, `X-Moz`), no `User-Agent` at all (every browser
//! sends one), or an agent naming a known preview fetcher or crawler.
//!
//! The network ([`ip_class`]) is the address cut to its /24 (IPv4) or /48
//! (IPv6): enough to tell carriers' proxies and regions apart, not a
//! person's address.

use std::net::IpAddr;

use hyper::HeaderMap;
use hyper::header;

/// Substrings (lowercase) of the user agents of link-preview fetchers and
/// crawlers.
const PREVIEW_AGENTS: &[&str] = &[
    "facebookexternalhit",
    "facebot",
    "twitterbot",
    "slackbot",
    "slack-imgproxy",
    "discordbot",
    "telegrambot",
    "whatsapp",
    "linkedinbot",
    "skypeuripreview",
    "applebot",
    "googlebot",
    "google-pagerenderer",
    "googleother",
    "adsbot",
    "bingbot",
    "bingpreview",
    "yandexbot",
    "baiduspider",
    "duckduckbot",
    "embedly",
    "pinterestbot",
    "redditbot",
    "iframely",
    "viber",
    "snapchat",
    "line-poker",
    "mastodon",
    "preview",
    "prefetch",
    "crawler",
    "spider",
    "headlesschrome",
    "python-requests",
    "go-http-client",
    "okhttp",
    "curl/",
    "wget/",
];

/// Whether a request is a preview or crawler fetch rather than a click.
pub fn is_preview(head: bool, headers: &HeaderMap) -> bool {
    if head {
        return true;
    }
    let says = |name: &str, what: &[&str]| {
        headers.get_all(name).iter().any(|v| {
            let v = String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase();
            what.iter().any(|w| v.contains(w))
        })
    };
    if says("sec-purpose", &["prefetch", "prerender"])
        || says("purpose", &["prefetch", "preview"])
        || says("x-purpose", &["preview", "prefetch"])
        || says("x-moz", &["prefetch"])
    {
        return true;
    }
    let Some(agent) = headers.get(header::USER_AGENT) else {
        return true;
    };
    let agent = String::from_utf8_lossy(agent.as_bytes()).to_ascii_lowercase();
    agent.trim().is_empty()
        || PREVIEW_AGENTS.iter().any(|p| agent.contains(p))
        // "compatible; SomeBot/1.0; +http://…": a robot naming its page.
        || agent.contains("+http")
}

/// `ip` cut to its /24 or /48, as text (`203.0.113.0/24`, `2001:db8:1::/48`).
pub fn ip_class(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => ip_class(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
                format!("{net}/48")
            }
        },
    }
}
