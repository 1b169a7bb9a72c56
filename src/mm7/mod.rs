//! MM7 (3GPP TS 23.140): SOAP 1.1 over HTTP between a VASP (sluice) and an
//! MMSC.
//!
//! Pure encode/decode first, transport beside it, as `STYLE.md` asks for
//! protocols without an anchor:
//!
//! - [`version`]: the supported schema versions (`REL-5-MM7-1-2` …
//!   `REL-6-MM7-1-4`), their namespaces and `MM7Version` values;
//! - [`soap`]: the messages (`SubmitReq`, `SubmitRsp`, `DeliveryReportReq`,
//!   `DeliverReq`, their answers, SOAP Faults), encoders and [`decode`];
//! - [`mime`]: `multipart/related` layout and parsing;
//! - [`status`]: status codes and their [`Class`] (success, temporary,
//!   permanent);
//! - [`client`]: [`Mm7Client`], HTTP(S) with keep-alive, basic auth,
//!   timeouts and a size limit;
//! - [`server`]: [`serve`], the HTTP receiver of MMSC callbacks, handing
//!   delivery reports and inbound messages to an [`Mm7Inbound`];
//! - [`auth`]: basic-auth [`Credentials`] and source allow-lists ([`IpNet`]).
//!
//! Nothing here knows the gateway: the gateway maps [`SubmitOutcome`] and
//! [`DeliveryReportReq`] to its own states.

pub mod auth;
pub mod base64;
pub mod client;
mod error;
pub mod mime;
pub mod server;
pub mod soap;
pub mod status;
pub mod version;

#[cfg(test)]
mod tests;

pub use auth::{Credentials, IpNet};
pub use client::{ClientConfig, HttpReply, Mm7Client, SubmitOutcome};
pub use error::Mm7Error;
pub use server::{HandlerError, Mm7Inbound, Mm7Server, ServerConfig, serve, serve_now};
pub use soap::{
    Address, ChargedParty, DeliverReq, DeliveryReportReq, Encoded, ErrorRspKind, Expiry, Fault,
    MediaEncoding, MediaPart, Message, MessageClass, MmStatus, Presentation, Priority,
    ReceivedSubmitReq, RecipientField, ReplyCharging, Rsp, RspKind, SubmitReq, SubmitRsp, decode,
};
pub use status::{Class, Status};
pub use version::Version;

/// Tracing target of this module.
const TARGET: &str = "sluice::mm7";
