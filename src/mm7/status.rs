//! MM7 request status codes (3GPP TS 23.140, "Request Status Codes") and
//! their classification into success, temporary failure (retry later) and
//! permanent failure (give up, e.g. fall back to SMS).
//!
//! The first digit is the class: 1xxx success, 2xxx client errors, 3xxx
//! server errors, 4xxx service errors. Each code's decision:
//!
//! | code | name (TS 23.140)                   | class     | why |
//! |------|------------------------------------|-----------|-----|
//! | 1000 | Success                            | success   | |
//! | 1100 | Partial success                    | success   | the MMSC took the message for some recipients: those `Details` names are refused for good, the others end by their delivery reports |
//! | 1xxx | (other)                            | success   | the class says so |
//! | 2000 | Client error                       | permanent | the request itself is wrong; resending it changes nothing |
//! | 2001 | Operation restricted               | permanent | no permission |
//! | 2002 | Address Error                      | permanent | |
//! | 2003 | Address Not Found                  | permanent | |
//! | 2004 | Multimedia content refused         | permanent | content, size or media type unacceptable (also what size refusals use) |
//! | 2005 | Message ID Not found               | permanent | |
//! | 2006 | LinkedID not found                 | permanent | |
//! | 2007 | Message format corrupt             | permanent | |
//! | 2008 | Application ID not found           | permanent | |
//! | 2009 | Reply Application ID not found     | permanent | |
//! | 2xxx | (other)                            | permanent | |
//! | 3000 | Server Error                       | temporary | "the server failed to fulfil an apparently valid request": a fault of the MMSC, not of the message |
//! | 3001 | Not Possible                       | permanent | the message is no longer in a state that allows the operation |
//! | 3002 | Message rejected                   | permanent | the MMSC refused this message |
//! | 3003 | Multiple addresses not supported   | permanent | the same request will be refused again (it could be split per recipient: the caller's choice) |
//! | 3004 | Application Addressing not supported | permanent | |
//! | 3xxx | (other)                            | temporary | an unknown server-side error; the class is about the MMSC, not the message |
//! | 4000 | General service error              | permanent | |
//! | 4001 | Improper identification            | permanent | wrong VASP/VAS identity: configuration, retrying cannot help |
//! | 4002 | Unsupported version                | permanent | configuration |
//! | 4003 | Unsupported Operation              | permanent | |
//! | 4004 | Validation error                   | permanent | the SOAP/XML could not be validated |
//! | 4005 | Service error                      | permanent | "the requested operation caused a server (system) failure": the request triggers it, so retrying it is not safe to assume helpful |
//! | 4006 | Service unavailable                | temporary | "the service is temporarily not available"; also what MMSCs use for throttling |
//! | 4007 | Service denied                     | permanent | |
//! | 4008 | Application denied                 | permanent | |
//! | 4xxx | (other)                            | permanent | |
//! | else | (not in the spec)                  | permanent | an unknown code must not cause endless retries |
//!
//! HTTP statuses without an MM7 status ([`classify_http`]): 408, 429 and
//! every 5xx but 501 and 505 are temporary; 2xx counts as success; the rest
//! (3xx redirects sluice does not follow, 4xx, 501 Not Implemented, 505 HTTP
//! Version Not Supported) are permanent.

/// 1000 Success.
pub const SUCCESS: u32 = 1000;
/// 1100 Partial success.
pub const PARTIAL_SUCCESS: u32 = 1100;
/// 2000 Client error.
pub const CLIENT_ERROR: u32 = 2000;
/// 2001 Operation restricted.
pub const OPERATION_RESTRICTED: u32 = 2001;
/// 2002 Address Error.
pub const ADDRESS_ERROR: u32 = 2002;
/// 2003 Address Not Found.
pub const ADDRESS_NOT_FOUND: u32 = 2003;
/// 2004 Multimedia content refused (content, size or media type).
pub const MULTIMEDIA_CONTENT_REFUSED: u32 = 2004;
/// 2005 Message ID Not found.
pub const MESSAGE_ID_NOT_FOUND: u32 = 2005;
/// 2006 LinkedID not found.
pub const LINKED_ID_NOT_FOUND: u32 = 2006;
/// 2007 Message format corrupt.
pub const MESSAGE_FORMAT_CORRUPT: u32 = 2007;
/// 2008 Application ID not found.
pub const APPLICATION_ID_NOT_FOUND: u32 = 2008;
/// 2009 Reply Application ID not found.
pub const REPLY_APPLICATION_ID_NOT_FOUND: u32 = 2009;
/// 3000 Server Error.
pub const SERVER_ERROR: u32 = 3000;
/// 3001 Not Possible.
pub const NOT_POSSIBLE: u32 = 3001;
/// 3002 Message rejected.
pub const MESSAGE_REJECTED: u32 = 3002;
/// 3003 Multiple addresses not supported.
pub const MULTIPLE_ADDRESSES_NOT_SUPPORTED: u32 = 3003;
/// 3004 Application Addressing not supported.
pub const APPLICATION_ADDRESSING_NOT_SUPPORTED: u32 = 3004;
/// 4000 General service error.
pub const GENERAL_SERVICE_ERROR: u32 = 4000;
/// 4001 Improper identification.
pub const IMPROPER_IDENTIFICATION: u32 = 4001;
/// 4002 Unsupported version.
pub const UNSUPPORTED_VERSION: u32 = 4002;
/// 4003 Unsupported Operation.
pub const UNSUPPORTED_OPERATION: u32 = 4003;
/// 4004 Validation error.
pub const VALIDATION_ERROR: u32 = 4004;
/// 4005 Service error.
pub const SERVICE_ERROR: u32 = 4005;
/// 4006 Service unavailable.
pub const SERVICE_UNAVAILABLE: u32 = 4006;
/// 4007 Service denied.
pub const SERVICE_DENIED: u32 = 4007;
/// 4008 Application denied.
pub const APPLICATION_DENIED: u32 = 4008;

/// What a status means for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Accepted (1xxx).
    Success,
    /// Failed for now: retry later.
    Temporary,
    /// Failed for good: do not resend this request.
    Permanent,
}

/// The class of an MM7 status code (see the module table).
pub const fn classify(code: u32) -> Class {
    match code {
        1000..=1999 => Class::Success,
        SERVER_ERROR | SERVICE_UNAVAILABLE => Class::Temporary,
        NOT_POSSIBLE
        | MESSAGE_REJECTED
        | MULTIPLE_ADDRESSES_NOT_SUPPORTED
        | APPLICATION_ADDRESSING_NOT_SUPPORTED => Class::Permanent,
        3005..=3999 => Class::Temporary,
        _ => Class::Permanent,
    }
}

/// The class of an HTTP status that carried no MM7 status (see the module
/// doc).
pub const fn classify_http(status: u16) -> Class {
    match status {
        200..=299 => Class::Success,
        408 | 429 => Class::Temporary,
        501 | 505 => Class::Permanent,
        500..=599 => Class::Temporary,
        _ => Class::Permanent,
    }
}

/// The spec's name of a status code, when it has one.
pub const fn name(code: u32) -> Option<&'static str> {
    Some(match code {
        SUCCESS => "Success",
        PARTIAL_SUCCESS => "Partial success",
        CLIENT_ERROR => "Client error",
        OPERATION_RESTRICTED => "Operation restricted",
        ADDRESS_ERROR => "Address Error",
        ADDRESS_NOT_FOUND => "Address Not Found",
        MULTIMEDIA_CONTENT_REFUSED => "Multimedia content refused",
        MESSAGE_ID_NOT_FOUND => "Message ID Not found",
        LINKED_ID_NOT_FOUND => "LinkedID not found",
        MESSAGE_FORMAT_CORRUPT => "Message format corrupt",
        APPLICATION_ID_NOT_FOUND => "Application ID not found",
        REPLY_APPLICATION_ID_NOT_FOUND => "Reply Application ID not found",
        SERVER_ERROR => "Server Error",
        NOT_POSSIBLE => "Not Possible",
        MESSAGE_REJECTED => "Message rejected",
        MULTIPLE_ADDRESSES_NOT_SUPPORTED => "Multiple addresses not supported",
        APPLICATION_ADDRESSING_NOT_SUPPORTED => "Application Addressing not supported",
        GENERAL_SERVICE_ERROR => "General service error",
        IMPROPER_IDENTIFICATION => "Improper identification",
        UNSUPPORTED_VERSION => "Unsupported version",
        UNSUPPORTED_OPERATION => "Unsupported Operation",
        VALIDATION_ERROR => "Validation error",
        SERVICE_ERROR => "Service error",
        SERVICE_UNAVAILABLE => "Service unavailable",
        SERVICE_DENIED => "Service denied",
        APPLICATION_DENIED => "Application denied",
        _ => return None,
    })
}

/// The `Status` of an MM7 response (`responseStatusType`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// `StatusCode`.
    pub code: u32,
    /// `StatusText`.
    pub text: String,
    /// `Details`, flattened to its text content.
    pub details: Option<String>,
}

impl Status {
    /// A status with `code` and the spec's name as its text (or `"Status
    /// <code>"` for codes without a name).
    pub fn new(code: u32) -> Status {
        let text = match name(code) {
            Some(n) => n.to_owned(),
            None => format!("Status {code}"),
        };
        Status {
            code,
            text,
            details: None,
        }
    }

    /// 1000 Success.
    pub fn success() -> Status {
        Status::new(SUCCESS)
    }

    /// This status with `details`.
    #[must_use]
    pub fn with_details(mut self, details: impl Into<String>) -> Status {
        self.details = Some(details.into());
        self
    }

    /// The class of [`Status::code`].
    pub const fn class(&self) -> Class {
        classify(self.code)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text)?;
        if let Some(d) = &self.details {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}
