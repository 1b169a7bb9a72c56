//! Tracked links: the links in a message's text replaced by short links on
//! the tenant's domain (`<link_url>/<code>`), each redirecting to its
//! original and recording every click, so a campaign's click-through is
//! measured where the message is sent.
//!
//! # What it owns
//! - [`code`]: a link's code, its number through a keyed 64-bit
//!   permutation in 11 base62 characters (unguessable, and decodes to where
//!   the link is stored: no index in memory);
//! - [`rewrite`]: finding URLs in a text and leaving room for their codes,
//!   so admission checks the length of the text as it will be sent;
//! - [`store`]: the durable link store (segments, group commit, retention)
//!   and click counts per campaign;
//! - [`agent`]: preview fetchers and crawlers told from clicks, and the
//!   coarse network of a click;
//! - [`serve`]: the redirect on the public door, and the click event;
//! - [`campaigns`]: each campaign's delivered and opt-out figures, and the
//!   attribution of an opt-out to the campaign last delivered to that
//!   number by that sender program (beside the clicks: the figures a brand
//!   reads side by side).
//!
//! # Where it sits
//! Admission plans the rewrite (tenant `track_links`, or a message's own
//! `track_links`), and once a message passes dedupe stores its links and
//! waits for them to be durable before the message is journaled and
//! acknowledged. The SMS is then segmented from the shortened text like any
//! other. Clicks go upstream as `click` events through the event hub
//! (stream, gRPC, webhooks).

pub mod agent;
pub mod campaigns;
pub mod code;
pub mod rewrite;
pub mod serve;
pub mod store;

pub use code::{CODE_CHARS, Codec};
pub use store::{LinkStore, Lookup, Ticket};

#[cfg(test)]
mod tests;
