//! [`Mm7Error`]: everything that can go wrong decoding or exchanging MM7,
//! each variant classified for retry decisions ([`Mm7Error::class`]) and
//! mapped to the status code an answer would carry
//! ([`Mm7Error::status_code`]).

use std::time::Duration;

use super::mime::MimeError;
use super::status::{self, Class, classify_http};

/// Why an MM7 operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mm7Error {
    /// The SOAP part is not well-formed XML (any decode).
    #[error("malformed XML: {0}")]
    Xml(String),
    /// The multipart body does not parse (any decode).
    #[error("malformed MIME: {0}")]
    Mime(#[from] MimeError),
    /// Well-formed XML that is not a SOAP envelope with a body (any decode).
    #[error("not an MM7 SOAP envelope: {0}")]
    NotSoap(String),
    /// A mandatory element is missing (any decode).
    #[error("missing mandatory element <{0}>")]
    Missing(&'static str),
    /// An element holds a value that does not parse (any decode).
    #[error("bad value in <{element}>: {value:?}")]
    BadValue {
        /// The element.
        element: &'static str,
        /// What it held (cut to 64 characters).
        value: String,
    },
    /// The `Content href` names no MIME part (decoding SubmitReq/DeliverReq).
    #[error("Content href {0:?} names no MIME part")]
    ContentNotFound(String),
    /// The peer answered with a different message than expected (client
    /// calls).
    #[error("unexpected answer <{got}> (expected {expected})")]
    Unexpected {
        /// What the call expects.
        expected: &'static str,
        /// The body element received.
        got: String,
    },
    /// A SOAP Fault without an MM7 status (client calls).
    #[error("SOAP fault {code}: {string} (HTTP {http_status})")]
    Fault {
        /// `faultcode`.
        code: String,
        /// `faultstring`.
        string: String,
        /// The HTTP status it came with.
        http_status: u16,
    },
    /// The encoded message is bigger than the configured limit; it was not
    /// sent ([`crate::mm7::Mm7Client::submit`]).
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the whole HTTP body.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An HTTP error status without a decodable MM7 answer (client calls).
    #[error("HTTP {status} without an MM7 answer")]
    Http {
        /// The status.
        status: u16,
    },
    /// HTTP 401 or 403: the peer refused the credentials or our address
    /// (client calls).
    #[error("HTTP {status}: the peer refused our credentials or address")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
    },
    /// The TCP or TLS connection could not be set up (client calls);
    /// nothing was sent.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// host:port.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The request was not sent: the connection closed before it, or no
    /// connection was ready within the request timeout (client calls).
    /// Sending it again cannot duplicate it.
    #[error("request not sent: {0}")]
    NotSent(String),
    /// The HTTP exchange failed after the request started to leave (client
    /// calls); the peer may or may not have processed the request.
    #[error("HTTP exchange failed: {0}")]
    Transport(String),
    /// No complete answer within the request timeout, the request sent
    /// (client calls); the peer may or may not have processed the request.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Unusable configuration (building a client, or a header value).
    #[error("bad MM7 configuration: {0}")]
    Config(String),
}

impl Mm7Error {
    /// Whether retrying may help:
    ///
    /// - temporary: connection failures and requests not sent, transport
    ///   errors and timeouts (the classic "maybe it went through" cases,
    ///   see [`Mm7Error::maybe_processed`]: a retry may duplicate, a drop
    ///   may lose), HTTP 408/429/5xx, and faults whose `faultcode` is
    ///   `Server`;
    /// - permanent: everything about the content or the configuration
    ///   (undecodable answers included: an endpoint answering garbage will
    ///   keep doing so), [`Mm7Error::TooLarge`] and
    ///   [`Mm7Error::Unauthorized`].
    pub fn class(&self) -> Class {
        match self {
            Mm7Error::Connect { .. }
            | Mm7Error::NotSent(_)
            | Mm7Error::Transport(_)
            | Mm7Error::Timeout(_) => Class::Temporary,
            Mm7Error::Http { status } => match classify_http(*status) {
                Class::Success => Class::Permanent,
                c => c,
            },
            Mm7Error::Fault { code, .. } => {
                let local = code.rsplit(':').next().unwrap_or(code);
                if local.trim().eq_ignore_ascii_case("Server") {
                    Class::Temporary
                } else {
                    Class::Permanent
                }
            }
            _ => Class::Permanent,
        }
    }

    /// True when the request left but no answer says what became of it:
    /// the peer may have processed it (a SubmitReq may have been accepted,
    /// and sending it again would deliver a second copy). That is a
    /// [`Mm7Error::Timeout`], a [`Mm7Error::Transport`] failure, or HTTP 504
    /// Gateway Timeout (a proxy in front of the peer gave up waiting for
    /// it). [`Mm7Error::Connect`] and [`Mm7Error::NotSent`] are not: nothing
    /// left.
    pub fn maybe_processed(&self) -> bool {
        matches!(
            self,
            Mm7Error::Timeout(_) | Mm7Error::Transport(_) | Mm7Error::Http { status: 504 }
        )
    }

    /// The MM7 status an answer to a request that failed with this error
    /// should carry: 2004 Multimedia content refused for MIME and content
    /// problems and size, 4004 Validation error for XML and SOAP problems,
    /// 3000 Server Error otherwise.
    pub fn status_code(&self) -> u32 {
        match self {
            Mm7Error::Mime(_) | Mm7Error::ContentNotFound(_) | Mm7Error::TooLarge { .. } => {
                status::MULTIMEDIA_CONTENT_REFUSED
            }
            Mm7Error::Xml(_)
            | Mm7Error::NotSoap(_)
            | Mm7Error::Missing(_)
            | Mm7Error::BadValue { .. } => status::VALIDATION_ERROR,
            _ => status::SERVER_ERROR,
        }
    }

    pub(crate) fn bad_value(element: &'static str, value: &str) -> Mm7Error {
        Mm7Error::BadValue {
            element,
            value: value.chars().take(64).collect(),
        }
    }
}
