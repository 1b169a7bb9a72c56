//! SMPP 3.4 PDUs: spec-named types and their bounds-checked encoding and decoding.
//!
//! This file owns the wire layout of every PDU sluice speaks: the 16-octet
//! header, [`CommandId`], [`CommandStatus`], TLVs ([`Tlv`], [`tag`]) and the
//! bodies sluice models (binds, submit_sm, deliver_sm, their responses, the
//! header-only PDUs and outbind). Everything else is kept as raw bytes in
//! [`Body::Other`]. Framing a byte stream into PDUs is [`super::codec`]'s job.
//!
//! # Design
//!
//! - **Zero copy.** [`Pdu::decode`] takes one whole frame as [`Bytes`]; every
//!   variable-length field of the result (C-octet strings, `short_message`, TLV
//!   values, unknown bodies) is a [`Bytes::slice`] of that frame. The body
//!   is read by offset over `&[u8]` and the `Bytes` are cut only once it has
//!   all been checked; the frame's own reference becomes the last field
//!   (`short_message`, or the last TLV's value) and empty fields take none, so
//!   a typical submit_sm costs two reference counts beyond the frame's (its
//!   addresses), not one per field.
//! - **One write per PDU.** [`Pdu::encode`] reserves and zero-fills the PDU's
//!   exact length once, then copies each field into place; fixed octets go out
//!   in groups with the NUL before them.
//! - **Never panic on input.** Every read is bounds-checked and every failure
//!   is a [`PduError`] that says what could be read of the header, so a session
//!   can answer with a `generic_nack` echoing the sequence number
//!   ([`PduError::generic_nack`]).
//! - **One struct for submit_sm and deliver_sm.** SMPP 3.4 gives both the same
//!   mandatory fields in the same order (§4.4.1, §4.6.1), so [`DeliverSm`] is an
//!   alias of [`SubmitSm`]: one decoder, one encoder, and the SMSC simulator can
//!   turn a submit into a deliver without copying. The [`Body`] variant carries
//!   the distinction. (Rusmpp uses two types; the price here is that
//!   `DeliverSm::default()` also requests a receipt, see [`SubmitSm`]'s
//!   `Default`.)
//!
//! # Leniency (what is accepted beyond the letter of the spec, and why)
//!
//! - A C-octet string may be up to **twice** its spec maximum (SMSCs in the
//!   wild send longer system ids and message ids); beyond that it is
//!   [`PduError::TooLong`]. It must always end in a NUL inside the body.
//! - Every `_resp` may have an **empty body**: SMPP 3.4 omits the body of a
//!   response whose `command_status` is non-zero, and some peers also omit the
//!   NUL `message_id` of an OK `deliver_sm_resp`. Empty fields are decoded.
//! - Octets after the mandatory fields of a PDU that has no TLVs in 3.4
//!   (binds, submit_sm_resp, deliver_sm_resp, header-only PDUs) are **ignored**:
//!   SMPP 5.0 peers append TLVs to submit_sm_resp, and losing the message id
//!   over them would be worse than dropping them.
//! - Unknown `command_id`s decode to [`Body::Other`] and unknown
//!   `command_status` values are kept as they are; neither is an error.

use std::fmt;
use std::ops::Range;

use bytes::{Buf, BufMut, Bytes, BytesMut};

#[cfg(test)]
mod tests;

/// Length of the PDU header: command_length, command_id, command_status and
/// sequence_number, four octets each, big-endian.
pub const HEADER_LEN: usize = 16;

/// Bit set in the command_id of every response PDU.
pub const RESPONSE_BIT: u32 = 0x8000_0000;

// === impl CommandId ===

/// SMPP 3.4 command ids (§5.1.2.1).
///
/// "The command_id field identifies the particular SMPP PDU. ... Response
/// command_ids are identical to the corresponding request command_id, but with
/// bit 31 set."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CommandId {
    /// `generic_nack`: response to a PDU that could not be decoded.
    GenericNack = 0x8000_0000,
    /// `bind_receiver`.
    BindReceiver = 0x0000_0001,
    /// `bind_receiver_resp`.
    BindReceiverResp = 0x8000_0001,
    /// `bind_transmitter`.
    BindTransmitter = 0x0000_0002,
    /// `bind_transmitter_resp`.
    BindTransmitterResp = 0x8000_0002,
    /// `query_sm`.
    QuerySm = 0x0000_0003,
    /// `query_sm_resp`.
    QuerySmResp = 0x8000_0003,
    /// `submit_sm`.
    SubmitSm = 0x0000_0004,
    /// `submit_sm_resp`.
    SubmitSmResp = 0x8000_0004,
    /// `deliver_sm`.
    DeliverSm = 0x0000_0005,
    /// `deliver_sm_resp`.
    DeliverSmResp = 0x8000_0005,
    /// `unbind`.
    Unbind = 0x0000_0006,
    /// `unbind_resp`.
    UnbindResp = 0x8000_0006,
    /// `replace_sm`.
    ReplaceSm = 0x0000_0007,
    /// `replace_sm_resp`.
    ReplaceSmResp = 0x8000_0007,
    /// `cancel_sm`.
    CancelSm = 0x0000_0008,
    /// `cancel_sm_resp`.
    CancelSmResp = 0x8000_0008,
    /// `bind_transceiver`.
    BindTransceiver = 0x0000_0009,
    /// `bind_transceiver_resp`.
    BindTransceiverResp = 0x8000_0009,
    /// `outbind`: the SMSC asks the ESME to bind (no response PDU).
    Outbind = 0x0000_000B,
    /// `enquire_link`.
    EnquireLink = 0x0000_0015,
    /// `enquire_link_resp`.
    EnquireLinkResp = 0x8000_0015,
    /// `submit_multi`.
    SubmitMulti = 0x0000_0021,
    /// `submit_multi_resp`.
    SubmitMultiResp = 0x8000_0021,
    /// `alert_notification` (no response PDU).
    AlertNotification = 0x0000_0102,
    /// `data_sm`.
    DataSm = 0x0000_0103,
    /// `data_sm_resp`.
    DataSmResp = 0x8000_0103,
}

/// A command_id that SMPP 3.4 does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown command_id {0:#010x}")]
pub struct UnknownCommandId(pub u32);

impl CommandId {
    /// Every command id, for tables and tests.
    pub const ALL: [CommandId; 27] = [
        CommandId::GenericNack,
        CommandId::BindReceiver,
        CommandId::BindReceiverResp,
        CommandId::BindTransmitter,
        CommandId::BindTransmitterResp,
        CommandId::QuerySm,
        CommandId::QuerySmResp,
        CommandId::SubmitSm,
        CommandId::SubmitSmResp,
        CommandId::DeliverSm,
        CommandId::DeliverSmResp,
        CommandId::Unbind,
        CommandId::UnbindResp,
        CommandId::ReplaceSm,
        CommandId::ReplaceSmResp,
        CommandId::CancelSm,
        CommandId::CancelSmResp,
        CommandId::BindTransceiver,
        CommandId::BindTransceiverResp,
        CommandId::Outbind,
        CommandId::EnquireLink,
        CommandId::EnquireLinkResp,
        CommandId::SubmitMulti,
        CommandId::SubmitMultiResp,
        CommandId::AlertNotification,
        CommandId::DataSm,
        CommandId::DataSmResp,
    ];

    /// The numeric id as it goes on the wire.
    pub const fn as_u32(self) -> u32 {
        self as u32
    }

    /// True for response PDUs (bit 31 set), including `generic_nack`.
    pub const fn is_response(self) -> bool {
        self.as_u32() & RESPONSE_BIT != 0
    }

    /// The response that answers this request, if the spec defines one
    /// (`outbind` and `alert_notification` have none; responses have none).
    pub fn response(self) -> Option<CommandId> {
        if self.is_response() {
            return None;
        }
        CommandId::try_from(self.as_u32() | RESPONSE_BIT).ok()
    }

    /// The spec's name, e.g. `"submit_sm_resp"`.
    pub const fn name(self) -> &'static str {
        match self {
            CommandId::GenericNack => "generic_nack",
            CommandId::BindReceiver => "bind_receiver",
            CommandId::BindReceiverResp => "bind_receiver_resp",
            CommandId::BindTransmitter => "bind_transmitter",
            CommandId::BindTransmitterResp => "bind_transmitter_resp",
            CommandId::QuerySm => "query_sm",
            CommandId::QuerySmResp => "query_sm_resp",
            CommandId::SubmitSm => "submit_sm",
            CommandId::SubmitSmResp => "submit_sm_resp",
            CommandId::DeliverSm => "deliver_sm",
            CommandId::DeliverSmResp => "deliver_sm_resp",
            CommandId::Unbind => "unbind",
            CommandId::UnbindResp => "unbind_resp",
            CommandId::ReplaceSm => "replace_sm",
            CommandId::ReplaceSmResp => "replace_sm_resp",
            CommandId::CancelSm => "cancel_sm",
            CommandId::CancelSmResp => "cancel_sm_resp",
            CommandId::BindTransceiver => "bind_transceiver",
            CommandId::BindTransceiverResp => "bind_transceiver_resp",
            CommandId::Outbind => "outbind",
            CommandId::EnquireLink => "enquire_link",
            CommandId::EnquireLinkResp => "enquire_link_resp",
            CommandId::SubmitMulti => "submit_multi",
            CommandId::SubmitMultiResp => "submit_multi_resp",
            CommandId::AlertNotification => "alert_notification",
            CommandId::DataSm => "data_sm",
            CommandId::DataSmResp => "data_sm_resp",
        }
    }
}

impl TryFrom<u32> for CommandId {
    type Error = UnknownCommandId;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Ok(match value {
            0x8000_0000 => CommandId::GenericNack,
            0x0000_0001 => CommandId::BindReceiver,
            0x8000_0001 => CommandId::BindReceiverResp,
            0x0000_0002 => CommandId::BindTransmitter,
            0x8000_0002 => CommandId::BindTransmitterResp,
            0x0000_0003 => CommandId::QuerySm,
            0x8000_0003 => CommandId::QuerySmResp,
            0x0000_0004 => CommandId::SubmitSm,
            0x8000_0004 => CommandId::SubmitSmResp,
            0x0000_0005 => CommandId::DeliverSm,
            0x8000_0005 => CommandId::DeliverSmResp,
            0x0000_0006 => CommandId::Unbind,
            0x8000_0006 => CommandId::UnbindResp,
            0x0000_0007 => CommandId::ReplaceSm,
            0x8000_0007 => CommandId::ReplaceSmResp,
            0x0000_0008 => CommandId::CancelSm,
            0x8000_0008 => CommandId::CancelSmResp,
            0x0000_0009 => CommandId::BindTransceiver,
            0x8000_0009 => CommandId::BindTransceiverResp,
            0x0000_000B => CommandId::Outbind,
            0x0000_0015 => CommandId::EnquireLink,
            0x8000_0015 => CommandId::EnquireLinkResp,
            0x0000_0021 => CommandId::SubmitMulti,
            0x8000_0021 => CommandId::SubmitMultiResp,
            0x0000_0102 => CommandId::AlertNotification,
            0x0000_0103 => CommandId::DataSm,
            0x8000_0103 => CommandId::DataSmResp,
            other => return Err(UnknownCommandId(other)),
        })
    }
}

impl From<CommandId> for u32 {
    fn from(id: CommandId) -> u32 {
        id.as_u32()
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Displays a raw command_id as its spec name when known, hex otherwise.
struct CommandIdName(u32);

impl fmt::Display for CommandIdName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match CommandId::try_from(self.0) {
            Ok(id) => f.write_str(id.name()),
            Err(_) => write!(f, "command_id {:#010x}", self.0),
        }
    }
}

// === impl CommandStatus ===

/// The `command_status` of a PDU (§5.1.3): `ESME_ROK` in requests, the outcome
/// in responses.
///
/// Any `u32` is representable: carriers use vendor-specific codes
/// (0x400..=0x4FF is reserved for them), and an unknown status must never stop
/// the decoder. [`CommandStatus::name`] knows the SMPP 3.4 codes (plus
/// `ESME_RINVDCS` from 5.0, which SMSCs send to 3.4 binds too).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct CommandStatus(pub u32);

macro_rules! command_statuses {
    ($( $(#[$doc:meta])* $name:ident = $value:expr; )*) => {
        impl CommandStatus {
            $( $(#[$doc])* pub const $name: CommandStatus = CommandStatus($value); )*

            /// The spec's name of a known status, e.g. `Some("ESME_RTHROTTLED")`.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some(stringify!($name)), )*
                    _ => None,
                }
            }
        }
    };
}

command_statuses! {
    /// No error.
    ESME_ROK = 0x0000_0000;
    /// Message length is invalid.
    ESME_RINVMSGLEN = 0x0000_0001;
    /// Command length is invalid.
    ESME_RINVCMDLEN = 0x0000_0002;
    /// Invalid command id.
    ESME_RINVCMDID = 0x0000_0003;
    /// Incorrect bind status for given command.
    ESME_RINVBNDSTS = 0x0000_0004;
    /// ESME already in bound state.
    ESME_RALYBND = 0x0000_0005;
    /// Invalid priority flag.
    ESME_RINVPRTFLG = 0x0000_0006;
    /// Invalid registered delivery flag.
    ESME_RINVREGDLVFLG = 0x0000_0007;
    /// System error.
    ESME_RSYSERR = 0x0000_0008;
    /// Invalid source address.
    ESME_RINVSRCADR = 0x0000_000A;
    /// Invalid destination address.
    ESME_RINVDSTADR = 0x0000_000B;
    /// Message id is invalid.
    ESME_RINVMSGID = 0x0000_000C;
    /// Bind failed.
    ESME_RBINDFAIL = 0x0000_000D;
    /// Invalid password.
    ESME_RINVPASWD = 0x0000_000E;
    /// Invalid system id.
    ESME_RINVSYSID = 0x0000_000F;
    /// cancel_sm failed.
    ESME_RCANCELFAIL = 0x0000_0011;
    /// replace_sm failed.
    ESME_RREPLACEFAIL = 0x0000_0013;
    /// Message queue full.
    ESME_RMSGQFUL = 0x0000_0014;
    /// Invalid service type.
    ESME_RINVSERTYP = 0x0000_0015;
    /// Invalid number of destinations.
    ESME_RINVNUMDESTS = 0x0000_0033;
    /// Invalid distribution list name.
    ESME_RINVDLNAME = 0x0000_0034;
    /// Destination flag is invalid (submit_multi).
    ESME_RINVDESTFLAG = 0x0000_0040;
    /// Invalid "submit with replace" request.
    ESME_RINVSUBREP = 0x0000_0042;
    /// Invalid esm_class field data.
    ESME_RINVESMCLASS = 0x0000_0043;
    /// Cannot submit to distribution list.
    ESME_RCNTSUBDL = 0x0000_0044;
    /// submit_sm or submit_multi failed.
    ESME_RSUBMITFAIL = 0x0000_0045;
    /// Invalid source address TON.
    ESME_RINVSRCTON = 0x0000_0048;
    /// Invalid source address NPI.
    ESME_RINVSRCNPI = 0x0000_0049;
    /// Invalid destination address TON.
    ESME_RINVDSTTON = 0x0000_0050;
    /// Invalid destination address NPI.
    ESME_RINVDSTNPI = 0x0000_0051;
    /// Invalid system_type field.
    ESME_RINVSYSTYP = 0x0000_0053;
    /// Invalid replace_if_present flag.
    ESME_RINVREPFLAG = 0x0000_0054;
    /// Invalid number of messages.
    ESME_RINVNUMMSGS = 0x0000_0055;
    /// Throttling error (ESME has exceeded allowed message limits).
    ESME_RTHROTTLED = 0x0000_0058;
    /// Invalid scheduled delivery time.
    ESME_RINVSCHED = 0x0000_0061;
    /// Invalid message validity period (expiry time).
    ESME_RINVEXPIRY = 0x0000_0062;
    /// Predefined message invalid or not found.
    ESME_RINVDFTMSGID = 0x0000_0063;
    /// ESME receiver temporary app error code.
    ESME_RX_T_APPN = 0x0000_0064;
    /// ESME receiver permanent app error code.
    ESME_RX_P_APPN = 0x0000_0065;
    /// ESME receiver reject message error code.
    ESME_RX_R_APPN = 0x0000_0066;
    /// query_sm request failed.
    ESME_RQUERYFAIL = 0x0000_0067;
    /// Error in the optional part of the PDU body.
    ESME_RINVOPTPARSTREAM = 0x0000_00C0;
    /// Optional parameter not allowed.
    ESME_ROPTPARNOTALLWD = 0x0000_00C1;
    /// Invalid parameter length.
    ESME_RINVPARLEN = 0x0000_00C2;
    /// Expected optional parameter missing.
    ESME_RMISSINGOPTPARAM = 0x0000_00C3;
    /// Invalid optional parameter value.
    ESME_RINVOPTPARAMVAL = 0x0000_00C4;
    /// Delivery failure (used for data_sm_resp).
    ESME_RDELIVERYFAILURE = 0x0000_00FE;
    /// Unknown error.
    ESME_RUNKNOWNERR = 0x0000_00FF;
    /// Invalid data_coding scheme (SMPP 5.0; also seen on 3.4 binds).
    ESME_RINVDCS = 0x0000_0104;
}

impl CommandStatus {
    /// True for `ESME_ROK`.
    pub const fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// True for errors worth retrying later on the same route: the submission
    /// was refused for now, not for what it is.
    ///
    /// These are `ESME_RMSGQFUL` (0x14) and `ESME_RTHROTTLED` (0x58) (slow the
    /// bind down, then requeue), `ESME_RSYSERR` (0x08) (a transient SMSC fault
    /// in practice; Kannel, Jasmin and most carriers' integration guides retry
    /// it) and `ESME_RX_T_APPN` (0x64) (by definition a temporary application
    /// error). Everything else, including unknown vendor codes, is permanent:
    /// retry policy must cap attempts either way, and retrying a permanent
    /// error in a loop is the worse failure.
    pub const fn is_temporary(self) -> bool {
        matches!(self.0, 0x08 | 0x14 | 0x58 | 0x64)
    }
}

impl fmt::Debug for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "CommandStatus({name})"),
            None => write!(f, "CommandStatus({:#010x})", self.0),
        }
    }
}

impl fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({:#x})", self.0),
            None => write!(f, "command_status {:#010x}", self.0),
        }
    }
}

impl From<u32> for CommandStatus {
    fn from(value: u32) -> Self {
        CommandStatus(value)
    }
}

// === impl Tlv ===

/// TLV tags of SMPP 3.4 (§5.3.2), as `u16` constants.
pub mod tag {
    /// `dest_addr_subunit`.
    pub const DEST_ADDR_SUBUNIT: u16 = 0x0005;
    /// `dest_network_type`.
    pub const DEST_NETWORK_TYPE: u16 = 0x0006;
    /// `dest_bearer_type`.
    pub const DEST_BEARER_TYPE: u16 = 0x0007;
    /// `dest_telematics_id`.
    pub const DEST_TELEMATICS_ID: u16 = 0x0008;
    /// `source_addr_subunit`.
    pub const SOURCE_ADDR_SUBUNIT: u16 = 0x000D;
    /// `source_network_type`.
    pub const SOURCE_NETWORK_TYPE: u16 = 0x000E;
    /// `source_bearer_type`.
    pub const SOURCE_BEARER_TYPE: u16 = 0x000F;
    /// `source_telematics_id`.
    pub const SOURCE_TELEMATICS_ID: u16 = 0x0010;
    /// `qos_time_to_live`.
    pub const QOS_TIME_TO_LIVE: u16 = 0x0017;
    /// `payload_type`.
    pub const PAYLOAD_TYPE: u16 = 0x0019;
    /// `additional_status_info_text`.
    pub const ADDITIONAL_STATUS_INFO_TEXT: u16 = 0x001D;
    /// `receipted_message_id`: C-octet string, the SMSC message id a receipt is about.
    pub const RECEIPTED_MESSAGE_ID: u16 = 0x001E;
    /// `ms_msg_wait_facilities`.
    pub const MS_MSG_WAIT_FACILITIES: u16 = 0x0030;
    /// `privacy_indicator`.
    pub const PRIVACY_INDICATOR: u16 = 0x0201;
    /// `source_subaddress`.
    pub const SOURCE_SUBADDRESS: u16 = 0x0202;
    /// `dest_subaddress`.
    pub const DEST_SUBADDRESS: u16 = 0x0203;
    /// `user_message_reference`.
    pub const USER_MESSAGE_REFERENCE: u16 = 0x0204;
    /// `user_response_code`.
    pub const USER_RESPONSE_CODE: u16 = 0x0205;
    /// `source_port`.
    pub const SOURCE_PORT: u16 = 0x020A;
    /// `destination_port`.
    pub const DESTINATION_PORT: u16 = 0x020B;
    /// `sar_msg_ref_num`: 16-bit reference shared by the parts of a long message.
    pub const SAR_MSG_REF_NUM: u16 = 0x020C;
    /// `language_indicator`.
    pub const LANGUAGE_INDICATOR: u16 = 0x020D;
    /// `sar_total_segments`: 8-bit number of parts.
    pub const SAR_TOTAL_SEGMENTS: u16 = 0x020E;
    /// `sar_segment_seqnum`: 8-bit part number, from 1.
    pub const SAR_SEGMENT_SEQNUM: u16 = 0x020F;
    /// `sc_interface_version`: 8-bit SMPP version the SMSC supports (bind_resp).
    pub const SC_INTERFACE_VERSION: u16 = 0x0210;
    /// `callback_num_pres_ind`.
    pub const CALLBACK_NUM_PRES_IND: u16 = 0x0302;
    /// `callback_num_atag`.
    pub const CALLBACK_NUM_ATAG: u16 = 0x0303;
    /// `number_of_messages`.
    pub const NUMBER_OF_MESSAGES: u16 = 0x0304;
    /// `callback_num`.
    pub const CALLBACK_NUM: u16 = 0x0381;
    /// `dpf_result`.
    pub const DPF_RESULT: u16 = 0x0420;
    /// `set_dpf`.
    pub const SET_DPF: u16 = 0x0421;
    /// `ms_availability_status`.
    pub const MS_AVAILABILITY_STATUS: u16 = 0x0422;
    /// `network_error_code`: 3 octets, network type then a 16-bit error code.
    pub const NETWORK_ERROR_CODE: u16 = 0x0423;
    /// `message_payload`: the message when it does not fit `short_message`.
    pub const MESSAGE_PAYLOAD: u16 = 0x0424;
    /// `delivery_failure_reason`.
    pub const DELIVERY_FAILURE_REASON: u16 = 0x0425;
    /// `more_messages_to_send`.
    pub const MORE_MESSAGES_TO_SEND: u16 = 0x0426;
    /// `message_state`: 8-bit final state in a receipt.
    pub const MESSAGE_STATE: u16 = 0x0427;
    /// `ussd_service_op`.
    pub const USSD_SERVICE_OP: u16 = 0x0501;
    /// `display_time`.
    pub const DISPLAY_TIME: u16 = 0x1201;
    /// `sms_signal`.
    pub const SMS_SIGNAL: u16 = 0x1203;
    /// `ms_validity`.
    pub const MS_VALIDITY: u16 = 0x1204;
    /// `alert_on_message_delivery`.
    pub const ALERT_ON_MESSAGE_DELIVERY: u16 = 0x130C;
    /// `its_reply_type`.
    pub const ITS_REPLY_TYPE: u16 = 0x1380;
    /// `its_session_info`.
    pub const ITS_SESSION_INFO: u16 = 0x1383;
}

/// An optional parameter (§5.3): 16-bit tag, 16-bit length, value.
///
/// Unknown tags are kept as they are and re-encoded unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tlv {
    /// Tag, see [`tag`].
    pub tag: u16,
    /// Value octets (the length is `value.len()`, at most 65,535).
    pub value: Bytes,
}

impl Tlv {
    /// A TLV with raw value octets.
    pub fn new(tag: u16, value: impl Into<Bytes>) -> Tlv {
        Tlv {
            tag,
            value: value.into(),
        }
    }

    /// A TLV holding one octet (e.g. `message_state`, `sar_total_segments`).
    pub fn from_u8(tag: u16, value: u8) -> Tlv {
        Tlv::new(tag, Bytes::copy_from_slice(&[value]))
    }

    /// A TLV holding a big-endian 16-bit integer (e.g. `sar_msg_ref_num`).
    pub fn from_u16(tag: u16, value: u16) -> Tlv {
        Tlv::new(tag, Bytes::copy_from_slice(&value.to_be_bytes()))
    }

    /// A TLV holding a C-octet string: `value` followed by a NUL.
    pub fn from_c_string(tag: u16, value: &[u8]) -> Tlv {
        let mut v = BytesMut::with_capacity(value.len() + 1);
        v.put_slice(value);
        v.put_u8(0);
        Tlv::new(tag, v.freeze())
    }

    /// The value as one octet; `None` unless it is exactly one octet long.
    pub fn as_u8(&self) -> Option<u8> {
        match self.value.as_ref() {
            [b] => Some(*b),
            _ => None,
        }
    }

    /// The value as a big-endian 16-bit integer; `None` unless it is exactly
    /// two octets long.
    pub fn as_u16(&self) -> Option<u16> {
        match self.value.as_ref() {
            [a, b] => Some(u16::from_be_bytes([*a, *b])),
            _ => None,
        }
    }

    /// The value as a C-octet string without its NUL: the octets before the
    /// first NUL, or all of them when the sender forgot the NUL (common for
    /// `receipted_message_id`). A slice of the value, not a copy.
    pub fn as_c_string(&self) -> Bytes {
        match self.value.iter().position(|&b| b == 0) {
            Some(nul) => self.value.slice(..nul),
            None => self.value.clone(),
        }
    }

    fn encoded_len(&self) -> usize {
        4 + self.value.len()
    }

    fn encode(&self, w: &mut Writer<'_>) {
        let len = u16::try_from(self.value.len())
            .expect("TLV value longer than 65,535 octets cannot be encoded");
        let [t0, t1] = self.tag.to_be_bytes();
        let [l0, l1] = len.to_be_bytes();
        w.put(&[t0, t1, l0, l1]);
        w.put(&self.value);
    }
}

/// The first TLV with this tag, if any.
pub fn find_tlv(tlvs: &[Tlv], tag: u16) -> Option<&Tlv> {
    tlvs.iter().find(|t| t.tag == tag)
}

fn tlvs_len(tlvs: &[Tlv]) -> usize {
    tlvs.iter().map(Tlv::encoded_len).sum()
}

fn encode_tlvs(tlvs: &[Tlv], w: &mut Writer<'_>) {
    for tlv in tlvs {
        tlv.encode(w);
    }
}

// === bodies ===

/// Spec maximum lengths of C-octet strings, NUL included (§4).
mod max {
    pub const SYSTEM_ID: usize = 16;
    pub const PASSWORD: usize = 9;
    pub const SYSTEM_TYPE: usize = 13;
    pub const ADDRESS_RANGE: usize = 41;
    pub const SERVICE_TYPE: usize = 6;
    pub const ADDR: usize = 21;
    pub const TIME: usize = 17;
    pub const MESSAGE_ID: usize = 65;
}

/// Body of `bind_transmitter`, `bind_receiver` and `bind_transceiver` (§4.1.1,
/// §4.1.3, §4.1.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Bind {
    /// "Identifies the ESME system requesting to bind as a transmitter with the
    /// SMSC." C-octet string, max 16 octets.
    pub system_id: Bytes,
    /// "The password may be used by the SMSC to authenticate the ESME
    /// requesting to bind." C-octet string, max 9 octets.
    pub password: Bytes,
    /// "Identifies the type of ESME system requesting to bind as a transmitter
    /// with the SMSC." C-octet string, max 13 octets.
    pub system_type: Bytes,
    /// "Indicates the version number of the SMPP protocol supported by the
    /// ESME." 0x34 for SMPP 3.4.
    pub interface_version: u8,
    /// "Indicates Type of Number of the ESME address. If not known set to NULL."
    pub addr_ton: u8,
    /// "Numbering Plan Indicator for ESME address. If not known set to NULL."
    pub addr_npi: u8,
    /// "The ESME address. If not known set to NULL." C-octet string, max 41
    /// octets (a regular expression for receivers).
    pub address_range: Bytes,
}

/// Body of the three `bind_*_resp` PDUs (§4.1.2, §4.1.4, §4.1.6).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct BindResp {
    /// "SMSC identifier. Identifies the SMSC to the ESME requesting to bind."
    /// C-octet string, max 16 octets. Empty when the bind failed.
    pub system_id: Bytes,
    /// Optional parameters; SMPP 3.4 defines `sc_interface_version` here.
    pub tlvs: Vec<Tlv>,
}

impl BindResp {
    /// The first TLV with this tag, if any.
    pub fn tlv(&self, tag: u16) -> Option<&Tlv> {
        find_tlv(&self.tlvs, tag)
    }
}

/// Body of `submit_sm` (§4.4.1) and, through [`DeliverSm`], `deliver_sm`
/// (§4.6.1).
///
/// # Defaults
/// Every field is empty or zero except `registered_delivery`, which is `0x01`
/// ("SMSC delivery receipt requested where final delivery outcome is delivery
/// success or failure"): a submit_sm that forgets to ask for a receipt never
/// gets one, which is one of the commonest gateway bugs. Set it to 0 when
/// building a `deliver_sm`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubmitSm {
    /// "The service_type parameter can be used to indicate the SMS Application
    /// service associated with the message." C-octet string, max 6 octets;
    /// empty means the SMSC default.
    pub service_type: Bytes,
    /// "Type of Number for source address."
    pub source_addr_ton: u8,
    /// "Numbering Plan Indicator for source address."
    pub source_addr_npi: u8,
    /// "Address of SME which originated this message." C-octet string, max 21
    /// octets.
    pub source_addr: Bytes,
    /// "Type of Number for destination."
    pub dest_addr_ton: u8,
    /// "Numbering Plan Indicator for destination."
    pub dest_addr_npi: u8,
    /// "Destination address of this short message." C-octet string, max 21
    /// octets.
    pub destination_addr: Bytes,
    /// "Indicates Message Mode & Message Type." Bits 5-2 are the message type
    /// (0x04 = SMSC delivery receipt in a deliver_sm); 0x40 is UDHI (the
    /// short_message starts with a User Data Header).
    pub esm_class: u8,
    /// "Protocol Identifier. Network specific field."
    pub protocol_id: u8,
    /// "Designates the priority level of the message."
    pub priority_flag: u8,
    /// "The short message is to be scheduled by the SMSC for delivery." C-octet
    /// string of 0 or 17 octets (absolute or relative time); empty means
    /// immediate delivery. Empty in deliver_sm.
    pub schedule_delivery_time: Bytes,
    /// "The validity period of this message." C-octet string of 0 or 17 octets,
    /// e.g. `000000000100000R` for one minute; empty means the SMSC default.
    /// Empty in deliver_sm.
    pub validity_period: Bytes,
    /// "Indicator to signify if an SMSC delivery receipt or an SME
    /// acknowledgement is required."
    pub registered_delivery: u8,
    /// "Flag indicating if submitted message should replace an existing
    /// message." Zero in deliver_sm.
    pub replace_if_present_flag: u8,
    /// "Defines the encoding scheme of the short message user data." 0x00 SMSC
    /// default (GSM 03.38), 0x01 IA5, 0x03 Latin-1, 0x08 UCS-2.
    pub data_coding: u8,
    /// "Indicates the short message to send from a list of predefined ('canned')
    /// short messages stored on the SMSC."
    pub sm_default_msg_id: u8,
    /// "Up to 254 octets of short message user data." Its length goes on the
    /// wire as `sm_length`; empty when the text is in `message_payload`.
    pub short_message: Bytes,
    /// Optional parameters (SAR, `message_payload`, receipt TLVs, ...).
    pub tlvs: Vec<Tlv>,
}

/// Body of `deliver_sm` (§4.6.1): the same fields as [`SubmitSm`], see the
/// module doc. `schedule_delivery_time`, `validity_period` and
/// `replace_if_present_flag` are NULL in a deliver_sm.
pub type DeliverSm = SubmitSm;

impl Default for SubmitSm {
    fn default() -> Self {
        SubmitSm {
            service_type: Bytes::new(),
            source_addr_ton: 0,
            source_addr_npi: 0,
            source_addr: Bytes::new(),
            dest_addr_ton: 0,
            dest_addr_npi: 0,
            destination_addr: Bytes::new(),
            esm_class: 0,
            protocol_id: 0,
            priority_flag: 0,
            schedule_delivery_time: Bytes::new(),
            validity_period: Bytes::new(),
            registered_delivery: 0x01,
            replace_if_present_flag: 0,
            data_coding: 0,
            sm_default_msg_id: 0,
            short_message: Bytes::new(),
            tlvs: Vec::new(),
        }
    }
}

impl SubmitSm {
    /// The first TLV with this tag, if any.
    pub fn tlv(&self, tag: u16) -> Option<&Tlv> {
        find_tlv(&self.tlvs, tag)
    }

    fn encoded_len(&self) -> usize {
        c_len(&self.service_type)
            + 2
            + c_len(&self.source_addr)
            + 2
            + c_len(&self.destination_addr)
            + 3
            + c_len(&self.schedule_delivery_time)
            + c_len(&self.validity_period)
            + 5
            + self.short_message.len()
            + tlvs_len(&self.tlvs)
    }

    fn encode(&self, w: &mut Writer<'_>) {
        let sm_length = u8::try_from(self.short_message.len())
            .expect("short_message longer than 255 octets cannot be encoded");
        // Each C-octet string's NUL goes out with the fixed octets after it.
        w.put(&self.service_type);
        w.put(&[0, self.source_addr_ton, self.source_addr_npi]);
        w.put(&self.source_addr);
        w.put(&[0, self.dest_addr_ton, self.dest_addr_npi]);
        w.put(&self.destination_addr);
        w.put(&[0, self.esm_class, self.protocol_id, self.priority_flag]);
        w.put_c(&self.schedule_delivery_time);
        w.put(&self.validity_period);
        w.put(&[
            0,
            self.registered_delivery,
            self.replace_if_present_flag,
            self.data_coding,
            self.sm_default_msg_id,
            sm_length,
        ]);
        w.put(&self.short_message);
        encode_tlvs(&self.tlvs, w);
    }

    /// Decodes the body of `frame` (a whole submit_sm or deliver_sm).
    ///
    /// Inlined (as is [`Body::decode`]) so that the fields are written
    /// straight into the caller's [`Pdu`], not moved through each wrapper.
    #[inline(always)]
    fn decode(frame: Bytes, command_id: u32, sequence_number: u32) -> Result<SubmitSm, PduError> {
        let mut r = Reader::body(&frame, command_id, sequence_number);
        let service_type = r.c_string("service_type", max::SERVICE_TYPE)?;
        let [source_addr_ton, source_addr_npi] =
            r.octets(["source_addr_ton", "source_addr_npi"])?;
        let source_addr = r.c_string("source_addr", max::ADDR)?;
        let [dest_addr_ton, dest_addr_npi] = r.octets(["dest_addr_ton", "dest_addr_npi"])?;
        let destination_addr = r.c_string("destination_addr", max::ADDR)?;
        let [esm_class, protocol_id, priority_flag] =
            r.octets(["esm_class", "protocol_id", "priority_flag"])?;
        let schedule_delivery_time = r.c_string("schedule_delivery_time", max::TIME)?;
        let validity_period = r.c_string("validity_period", max::TIME)?;
        let [
            registered_delivery,
            replace_if_present_flag,
            data_coding,
            sm_default_msg_id,
            sm_length,
        ] = r.octets([
            "registered_delivery",
            "replace_if_present_flag",
            "data_coding",
            "sm_default_msg_id",
            "sm_length",
        ])?;
        let short_message = r.short_message(sm_length)?;
        let (mut tlvs, last_tlv) = r.tlvs(&frame)?;
        // Everything is checked: now take the references, the frame's own
        // going to the last non-empty field.
        let service_type = cut(&frame, service_type);
        let source_addr = cut(&frame, source_addr);
        let destination_addr = cut(&frame, destination_addr);
        let schedule_delivery_time = cut(&frame, schedule_delivery_time);
        let validity_period = cut(&frame, validity_period);
        let short_message = match (last_tlv, tlvs.last_mut()) {
            (Some(value), Some(tlv)) => {
                let short_message = cut(&frame, short_message);
                tlv.value = cut_last(frame, value);
                short_message
            }
            _ => cut_last(frame, short_message),
        };
        Ok(SubmitSm {
            service_type,
            source_addr_ton,
            source_addr_npi,
            source_addr,
            dest_addr_ton,
            dest_addr_npi,
            destination_addr,
            esm_class,
            protocol_id,
            priority_flag,
            schedule_delivery_time,
            validity_period,
            registered_delivery,
            replace_if_present_flag,
            data_coding,
            sm_default_msg_id,
            short_message,
            tlvs,
        })
    }
}

impl SubmitSm {
    /// Reads the body of a `data_sm` (§4.7.1; the octets after its header,
    /// as [`Body::Other`] keeps them) into the fields it shares with a
    /// submit_sm: `short_message` stays empty (a data_sm carries its text in
    /// `message_payload`), the time fields, `protocol_id`, `priority_flag`
    /// and `replace_if_present_flag` are zero. Addresses may be up to 65
    /// octets, as the spec allows in a data_sm.
    ///
    /// # Errors
    /// A [`PduError`] as [`Pdu::decode`] gives for a malformed body.
    pub fn decode_data_sm(body: &[u8], sequence_number: u32) -> Result<SubmitSm, PduError> {
        const DATA_SM: u32 = 0x0000_0103;
        // The reader works in frame offsets: put a blank header in front.
        let mut buf = BytesMut::with_capacity(HEADER_LEN + body.len());
        buf.put_bytes(0, HEADER_LEN);
        buf.put_slice(body);
        let frame = buf.freeze();
        let mut r = Reader::body(&frame, DATA_SM, sequence_number);
        let service_type = r.c_string("service_type", max::SERVICE_TYPE)?;
        let [source_addr_ton, source_addr_npi] =
            r.octets(["source_addr_ton", "source_addr_npi"])?;
        let source_addr = r.c_string("source_addr", max::MESSAGE_ID)?;
        let [dest_addr_ton, dest_addr_npi] = r.octets(["dest_addr_ton", "dest_addr_npi"])?;
        let destination_addr = r.c_string("destination_addr", max::MESSAGE_ID)?;
        let [esm_class, registered_delivery, data_coding] =
            r.octets(["esm_class", "registered_delivery", "data_coding"])?;
        let (mut tlvs, last) = r.tlvs(&frame)?;
        if let (Some(range), Some(tlv)) = (last, tlvs.last_mut()) {
            tlv.value = cut(&frame, range);
        }
        Ok(SubmitSm {
            service_type: cut(&frame, service_type),
            source_addr_ton,
            source_addr_npi,
            source_addr: cut(&frame, source_addr),
            dest_addr_ton,
            dest_addr_npi,
            destination_addr: cut(&frame, destination_addr),
            esm_class,
            protocol_id: 0,
            priority_flag: 0,
            schedule_delivery_time: Bytes::new(),
            validity_period: Bytes::new(),
            registered_delivery,
            replace_if_present_flag: 0,
            data_coding,
            sm_default_msg_id: 0,
            short_message: Bytes::new(),
            tlvs,
        })
    }
}

/// Body of `submit_sm_resp` (§4.4.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SubmitSmResp {
    /// "This field contains the SMSC message_id of the submitted message. It
    /// may be used at a later stage to query the status of a message, cancel or
    /// replace the message." C-octet string, max 65 octets. Empty when the
    /// submission failed (the body is then usually absent).
    pub message_id: Bytes,
}

/// Body of `deliver_sm_resp` (§4.6.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct DeliverSmResp {
    /// "This field is unused and is set to NULL." Kept for peers that fill it.
    pub message_id: Bytes,
}

/// The body of a PDU, by command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `bind_transmitter`.
    BindTransmitter(Bind),
    /// `bind_receiver`.
    BindReceiver(Bind),
    /// `bind_transceiver`.
    BindTransceiver(Bind),
    /// `bind_transmitter_resp`.
    BindTransmitterResp(BindResp),
    /// `bind_receiver_resp`.
    BindReceiverResp(BindResp),
    /// `bind_transceiver_resp`.
    BindTransceiverResp(BindResp),
    /// `submit_sm`.
    SubmitSm(SubmitSm),
    /// `submit_sm_resp`.
    SubmitSmResp(SubmitSmResp),
    /// `deliver_sm`.
    DeliverSm(DeliverSm),
    /// `deliver_sm_resp`.
    DeliverSmResp(DeliverSmResp),
    /// `enquire_link` (no body).
    EnquireLink,
    /// `enquire_link_resp` (no body).
    EnquireLinkResp,
    /// `unbind` (no body).
    Unbind,
    /// `unbind_resp` (no body).
    UnbindResp,
    /// `generic_nack` (no body; the error is in the header's command_status).
    GenericNack,
    /// `outbind` (§4.1.7): the SMSC asks the ESME to bind to it.
    Outbind {
        /// SMSC identifier, C-octet string, max 16 octets.
        system_id: Bytes,
        /// Password for the ESME to check, C-octet string, max 9 octets.
        password: Bytes,
    },
    /// Any PDU sluice does not model (query_sm, data_sm, submit_multi, unknown
    /// ids, ...): its body octets are kept as they are.
    ///
    /// `command_id` should not be one of the modelled commands above: such a
    /// PDU encodes fine but decodes as the modelled variant.
    Other {
        /// The header's command_id.
        command_id: u32,
        /// Everything after the header.
        body: Bytes,
    },
}

impl Body {
    /// The command_id that goes in the header for this body.
    pub fn command_id(&self) -> u32 {
        let id = match self {
            Body::BindTransmitter(_) => CommandId::BindTransmitter,
            Body::BindReceiver(_) => CommandId::BindReceiver,
            Body::BindTransceiver(_) => CommandId::BindTransceiver,
            Body::BindTransmitterResp(_) => CommandId::BindTransmitterResp,
            Body::BindReceiverResp(_) => CommandId::BindReceiverResp,
            Body::BindTransceiverResp(_) => CommandId::BindTransceiverResp,
            Body::SubmitSm(_) => CommandId::SubmitSm,
            Body::SubmitSmResp(_) => CommandId::SubmitSmResp,
            Body::DeliverSm(_) => CommandId::DeliverSm,
            Body::DeliverSmResp(_) => CommandId::DeliverSmResp,
            Body::EnquireLink => CommandId::EnquireLink,
            Body::EnquireLinkResp => CommandId::EnquireLinkResp,
            Body::Unbind => CommandId::Unbind,
            Body::UnbindResp => CommandId::UnbindResp,
            Body::GenericNack => CommandId::GenericNack,
            Body::Outbind { .. } => CommandId::Outbind,
            Body::Other { command_id, .. } => return *command_id,
        };
        id.as_u32()
    }

    /// True for a response body whose fields are all empty: SMPP 3.4 sends no
    /// body at all for such a response when its command_status is an error.
    fn is_empty_resp(&self) -> bool {
        match self {
            Body::BindTransmitterResp(r)
            | Body::BindReceiverResp(r)
            | Body::BindTransceiverResp(r) => r.system_id.is_empty() && r.tlvs.is_empty(),
            Body::SubmitSmResp(r) => r.message_id.is_empty(),
            Body::DeliverSmResp(r) => r.message_id.is_empty(),
            _ => false,
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Body::BindTransmitter(b) | Body::BindReceiver(b) | Body::BindTransceiver(b) => {
                c_len(&b.system_id)
                    + c_len(&b.password)
                    + c_len(&b.system_type)
                    + 3
                    + c_len(&b.address_range)
            }
            Body::BindTransmitterResp(r)
            | Body::BindReceiverResp(r)
            | Body::BindTransceiverResp(r) => c_len(&r.system_id) + tlvs_len(&r.tlvs),
            Body::SubmitSm(sm) | Body::DeliverSm(sm) => sm.encoded_len(),
            Body::SubmitSmResp(r) => c_len(&r.message_id),
            Body::DeliverSmResp(r) => c_len(&r.message_id),
            Body::EnquireLink
            | Body::EnquireLinkResp
            | Body::Unbind
            | Body::UnbindResp
            | Body::GenericNack => 0,
            Body::Outbind {
                system_id,
                password,
            } => c_len(system_id) + c_len(password),
            Body::Other { body, .. } => body.len(),
        }
    }

    fn encode(&self, w: &mut Writer<'_>) {
        match self {
            Body::BindTransmitter(b) | Body::BindReceiver(b) | Body::BindTransceiver(b) => {
                w.put_c(&b.system_id);
                w.put_c(&b.password);
                w.put(&b.system_type);
                w.put(&[0, b.interface_version, b.addr_ton, b.addr_npi]);
                w.put_c(&b.address_range);
            }
            Body::BindTransmitterResp(r)
            | Body::BindReceiverResp(r)
            | Body::BindTransceiverResp(r) => {
                w.put_c(&r.system_id);
                encode_tlvs(&r.tlvs, w);
            }
            Body::SubmitSm(sm) | Body::DeliverSm(sm) => sm.encode(w),
            Body::SubmitSmResp(r) => w.put_c(&r.message_id),
            Body::DeliverSmResp(r) => w.put_c(&r.message_id),
            Body::EnquireLink
            | Body::EnquireLinkResp
            | Body::Unbind
            | Body::UnbindResp
            | Body::GenericNack => {}
            Body::Outbind {
                system_id,
                password,
            } => {
                w.put_c(system_id);
                w.put_c(password);
            }
            Body::Other { body, .. } => w.put(body),
        }
    }

    /// Decodes the body of `frame`, a whole PDU whose header says
    /// `command_id` and `sequence_number`.
    #[inline(always)]
    fn decode(command_id: u32, sequence_number: u32, frame: Bytes) -> Result<Body, PduError> {
        let other = |mut frame: Bytes| {
            frame.advance(HEADER_LEN);
            Body::Other {
                command_id,
                body: frame,
            }
        };
        let Ok(id) = CommandId::try_from(command_id) else {
            return Ok(other(frame));
        };
        let mut r = Reader::body(&frame, command_id, sequence_number);
        // Responses may come without a body (see the module doc).
        let empty_resp = id.is_response() && r.is_empty();
        Ok(match id {
            CommandId::SubmitSm => {
                Body::SubmitSm(SubmitSm::decode(frame, command_id, sequence_number)?)
            }
            CommandId::DeliverSm => {
                Body::DeliverSm(SubmitSm::decode(frame, command_id, sequence_number)?)
            }
            CommandId::BindTransmitter => Body::BindTransmitter(decode_bind(&frame, r)?),
            CommandId::BindReceiver => Body::BindReceiver(decode_bind(&frame, r)?),
            CommandId::BindTransceiver => Body::BindTransceiver(decode_bind(&frame, r)?),
            CommandId::BindTransmitterResp => {
                Body::BindTransmitterResp(decode_bind_resp(&frame, r, empty_resp)?)
            }
            CommandId::BindReceiverResp => {
                Body::BindReceiverResp(decode_bind_resp(&frame, r, empty_resp)?)
            }
            CommandId::BindTransceiverResp => {
                Body::BindTransceiverResp(decode_bind_resp(&frame, r, empty_resp)?)
            }
            CommandId::SubmitSmResp => Body::SubmitSmResp(SubmitSmResp {
                message_id: cut(
                    &frame,
                    r.resp_c_string(empty_resp, "message_id", max::MESSAGE_ID)?,
                ),
            }),
            CommandId::DeliverSmResp => Body::DeliverSmResp(DeliverSmResp {
                message_id: cut(
                    &frame,
                    r.resp_c_string(empty_resp, "message_id", max::MESSAGE_ID)?,
                ),
            }),
            CommandId::EnquireLink => Body::EnquireLink,
            CommandId::EnquireLinkResp => Body::EnquireLinkResp,
            CommandId::Unbind => Body::Unbind,
            CommandId::UnbindResp => Body::UnbindResp,
            CommandId::GenericNack => Body::GenericNack,
            CommandId::Outbind => {
                let system_id = r.c_string("system_id", max::SYSTEM_ID)?;
                let password = r.c_string("password", max::PASSWORD)?;
                Body::Outbind {
                    system_id: cut(&frame, system_id),
                    password: cut(&frame, password),
                }
            }
            CommandId::QuerySm
            | CommandId::QuerySmResp
            | CommandId::ReplaceSm
            | CommandId::ReplaceSmResp
            | CommandId::CancelSm
            | CommandId::CancelSmResp
            | CommandId::SubmitMulti
            | CommandId::SubmitMultiResp
            | CommandId::AlertNotification
            | CommandId::DataSm
            | CommandId::DataSmResp => other(frame),
        })
    }
}

fn decode_bind(frame: &Bytes, mut r: Reader<'_>) -> Result<Bind, PduError> {
    let system_id = r.c_string("system_id", max::SYSTEM_ID)?;
    let password = r.c_string("password", max::PASSWORD)?;
    let system_type = r.c_string("system_type", max::SYSTEM_TYPE)?;
    let [interface_version, addr_ton, addr_npi] =
        r.octets(["interface_version", "addr_ton", "addr_npi"])?;
    let address_range = r.c_string("address_range", max::ADDRESS_RANGE)?;
    Ok(Bind {
        system_id: cut(frame, system_id),
        password: cut(frame, password),
        system_type: cut(frame, system_type),
        interface_version,
        addr_ton,
        addr_npi,
        address_range: cut(frame, address_range),
    })
}

fn decode_bind_resp(frame: &Bytes, mut r: Reader<'_>, empty: bool) -> Result<BindResp, PduError> {
    if empty {
        return Ok(BindResp::default());
    }
    let system_id = r.c_string("system_id", max::SYSTEM_ID)?;
    let (mut tlvs, last) = r.tlvs(frame)?;
    if let (Some(value), Some(tlv)) = (last, tlvs.last_mut()) {
        tlv.value = cut(frame, value);
    }
    Ok(BindResp {
        system_id: cut(frame, system_id),
        tlvs,
    })
}

/// Encoded length of a C-octet string: its octets plus the NUL.
fn c_len(s: &Bytes) -> usize {
    s.len() + 1
}

// === impl Writer ===

/// Cursor over the exact span of one PDU being encoded. [`Pdu::encode`]
/// reserves and zero-fills the span once, so each field is a plain copy with
/// one bounds check: no capacity check and no length update per field, and
/// fixed octets are grouped into one small copy (compiled to plain stores).
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    #[inline(always)]
    fn put(&mut self, s: &[u8]) {
        if s.is_empty() {
            // Most optional C-octet strings: no call to copy nothing.
            return;
        }
        let end = self.pos + s.len();
        self.buf[self.pos..end].copy_from_slice(s);
        self.pos = end;
    }

    /// A C-octet string: its octets, then the NUL.
    #[inline(always)]
    fn put_c(&mut self, s: &[u8]) {
        self.put(s);
        self.put(&[0]);
    }
}

// === impl Pdu ===

/// One SMPP PDU: header fields plus the body. `command_length` and
/// `command_id` are derived from the body when encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    /// `ESME_ROK` in requests; the outcome in responses.
    pub command_status: CommandStatus,
    /// "A sequence number allowing requests and responses to be associated."
    /// 0x00000001..=0x7FFFFFFF in requests, echoed in responses.
    pub sequence_number: u32,
    /// The command and its fields.
    pub body: Body,
}

impl Pdu {
    /// A PDU with `ESME_ROK` status.
    pub fn new(sequence_number: u32, body: Body) -> Pdu {
        Pdu {
            command_status: CommandStatus::ESME_ROK,
            sequence_number,
            body,
        }
    }

    /// `enquire_link`.
    pub fn enquire_link(sequence_number: u32) -> Pdu {
        Pdu::new(sequence_number, Body::EnquireLink)
    }

    /// `enquire_link_resp` (OK).
    pub fn enquire_link_resp(sequence_number: u32) -> Pdu {
        Pdu::new(sequence_number, Body::EnquireLinkResp)
    }

    /// `generic_nack` with an error status.
    pub fn generic_nack(sequence_number: u32, status: CommandStatus) -> Pdu {
        Pdu {
            command_status: status,
            sequence_number,
            body: Body::GenericNack,
        }
    }

    /// `submit_sm_resp`. With an error status and an empty `message_id` it is
    /// encoded without a body, as the spec says.
    pub fn submit_sm_resp(
        sequence_number: u32,
        status: CommandStatus,
        message_id: impl Into<Bytes>,
    ) -> Pdu {
        Pdu {
            command_status: status,
            sequence_number,
            body: Body::SubmitSmResp(SubmitSmResp {
                message_id: message_id.into(),
            }),
        }
    }

    /// `deliver_sm_resp` (message_id NULL).
    pub fn deliver_sm_resp(sequence_number: u32, status: CommandStatus) -> Pdu {
        Pdu {
            command_status: status,
            sequence_number,
            body: Body::DeliverSmResp(DeliverSmResp::default()),
        }
    }

    /// `unbind`.
    pub fn unbind(sequence_number: u32) -> Pdu {
        Pdu::new(sequence_number, Body::Unbind)
    }

    /// `unbind_resp` (OK).
    pub fn unbind_resp(sequence_number: u32) -> Pdu {
        Pdu::new(sequence_number, Body::UnbindResp)
    }

    /// The header's command_id.
    pub fn command_id(&self) -> u32 {
        self.body.command_id()
    }

    /// The command, when SMPP 3.4 defines its id.
    pub fn command(&self) -> Option<CommandId> {
        CommandId::try_from(self.command_id()).ok()
    }

    /// True for responses (command_id bit 31 set), including `generic_nack`.
    pub fn is_response(&self) -> bool {
        self.command_id() & RESPONSE_BIT != 0
    }

    /// True when this response goes without a body: an error status and
    /// nothing to say (§4.1.2, §4.4.2: "the body is not returned if the
    /// command_status field contains a non-zero value").
    fn omits_body(&self) -> bool {
        !self.command_status.is_ok() && self.body.is_empty_resp()
    }

    /// Length of the encoded PDU, header included: the `command_length`.
    pub fn encoded_len(&self) -> usize {
        if self.omits_body() {
            HEADER_LEN
        } else {
            HEADER_LEN + self.body.encoded_len()
        }
    }

    /// Appends the whole PDU, header included, to `dst`, reserving its length
    /// once up front.
    ///
    /// # Panics
    /// If the body cannot be represented on the wire: a `short_message` longer
    /// than 255 octets, a TLV value longer than 65,535 octets, or a PDU longer
    /// than `u32::MAX`. Bodies built by [`super::text`] never are. (Interior
    /// NULs in C-octet strings are written as they are; the peer will cut the
    /// string there.)
    pub fn encode(&self, dst: &mut BytesMut) {
        self.encode_len(self.encoded_len(), dst);
    }

    /// [`Pdu::encode`] given `len`, the [`Pdu::encoded_len`] the caller has
    /// already computed (the codec checks it against its maximum first).
    pub(super) fn encode_len(&self, len: usize, dst: &mut BytesMut) {
        let command_length = u32::try_from(len).expect("PDU longer than u32::MAX");
        let start = dst.len();
        // One reservation and one fill for the whole PDU; the fields are then
        // copied in place (see `Writer`).
        dst.resize(start + len, 0);
        let mut w = Writer {
            buf: &mut dst[start..],
            pos: 0,
        };
        let mut header = [0; HEADER_LEN];
        header[0..4].copy_from_slice(&command_length.to_be_bytes());
        header[4..8].copy_from_slice(&self.command_id().to_be_bytes());
        header[8..12].copy_from_slice(&self.command_status.0.to_be_bytes());
        header[12..16].copy_from_slice(&self.sequence_number.to_be_bytes());
        w.put(&header);
        if len > HEADER_LEN {
            self.body.encode(&mut w);
        }
        debug_assert_eq!(w.pos, len);
    }

    /// Encodes into a fresh buffer of exactly [`Pdu::encoded_len`] octets.
    ///
    /// # Panics
    /// As [`Pdu::encode`].
    pub fn to_bytes(&self) -> Bytes {
        let mut dst = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut dst);
        dst.freeze()
    }

    /// Decodes one whole PDU, header included. Variable-length fields of the
    /// result are slices of `frame`.
    ///
    /// # Errors
    /// A [`PduError`] when the frame is shorter than a header, its
    /// `command_length` is not the frame's length, or a modelled body is
    /// malformed (a field runs past the end, a C-octet string lacks its NUL or
    /// is far too long, `sm_length` exceeds the rest, a TLV is truncated).
    /// Unknown command ids and statuses are not errors.
    #[inline]
    pub fn decode(frame: Bytes) -> Result<Pdu, PduError> {
        let frame_len = frame.len();
        if frame_len < HEADER_LEN {
            let command_id = frame
                .get(4..8)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            return Err(PduError::TruncatedHeader {
                len: frame_len,
                command_id,
            });
        }
        let mut header = &frame[..HEADER_LEN];
        let command_length = header.get_u32();
        let command_id = header.get_u32();
        let command_status = CommandStatus(header.get_u32());
        let sequence_number = header.get_u32();
        if command_length as usize != frame_len {
            return Err(PduError::LengthMismatch {
                command_length,
                frame_len,
                command_id,
                sequence_number,
            });
        }
        let body = Body::decode(command_id, sequence_number, frame)?;
        Ok(Pdu {
            command_status,
            sequence_number,
            body,
        })
    }
}

// === impl Reader ===

/// Bounds-checked cursor over a PDU frame that reads by offset: C-octet
/// strings, `short_message` and TLV values come back as ranges of the frame,
/// and the decoder turns them into [`Bytes`] once the whole body has been
/// checked ([`cut`], [`cut_last`]). Nothing is reference-counted while
/// reading, and a malformed body costs no reference count at all.
struct Reader<'a> {
    /// The whole frame, header included (offsets are frame offsets).
    buf: &'a [u8],
    pos: usize,
    command_id: u32,
    sequence_number: u32,
}

/// How far past its spec maximum a C-octet string may run (see the module doc).
const C_STRING_SLACK: usize = 2;

impl<'a> Reader<'a> {
    /// A reader positioned after the header.
    fn body(frame: &'a [u8], command_id: u32, sequence_number: u32) -> Reader<'a> {
        Reader {
            buf: frame,
            pos: HEADER_LEN.min(frame.len()),
            command_id,
            sequence_number,
        }
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn is_empty(&self) -> bool {
        self.rest().is_empty()
    }

    /// `N` consecutive one-octet fields, named `fields` for the error when
    /// the body ends among them (the first missing one is named).
    #[inline(always)]
    fn octets<const N: usize>(&mut self, fields: [&'static str; N]) -> Result<[u8; N], PduError> {
        match self.rest().first_chunk::<N>() {
            Some(octets) => {
                self.pos += N;
                Ok(*octets)
            }
            None => Err(self.truncated(fields[self.rest().len().min(N - 1)])),
        }
    }

    /// A C-octet string of at most `max` octets including the NUL (tolerating
    /// [`C_STRING_SLACK`] times that): the range of its octets, without the
    /// NUL.
    #[inline(always)]
    fn c_string(&mut self, field: &'static str, max: usize) -> Result<Range<usize>, PduError> {
        let rest = self.rest();
        let limit = max * C_STRING_SLACK;
        let window = rest.get(..limit).unwrap_or(rest);
        match window.iter().position(|&b| b == 0) {
            Some(nul) => {
                let start = self.pos;
                self.pos += nul + 1;
                Ok(start..start + nul)
            }
            None => Err(self.unterminated(field, max)),
        }
    }

    /// A response's C-octet string, empty when the response has no body.
    fn resp_c_string(
        &mut self,
        empty: bool,
        field: &'static str,
        max: usize,
    ) -> Result<Range<usize>, PduError> {
        if empty {
            Ok(0..0)
        } else {
            self.c_string(field, max)
        }
    }

    #[inline(always)]
    fn short_message(&mut self, sm_length: u8) -> Result<Range<usize>, PduError> {
        let n = usize::from(sm_length);
        let remaining = self.rest().len();
        if n > remaining {
            return Err(PduError::SmLength {
                command_id: self.command_id,
                sequence_number: self.sequence_number,
                sm_length,
                remaining,
            });
        }
        let start = self.pos;
        self.pos += n;
        Ok(start..start + n)
    }

    /// TLVs up to the end of the frame, their values sliced from `frame` (the
    /// frame this reader reads). The last TLV's value is left empty when it
    /// runs to the end of the frame, and its range returned, so that the
    /// caller can hand it the frame itself ([`cut_last`]).
    #[inline(always)]
    fn tlvs(&mut self, frame: &Bytes) -> Result<(Vec<Tlv>, Option<Range<usize>>), PduError> {
        if self.pos >= self.buf.len() {
            // No TLVs, the common case: nothing to call or allocate.
            return Ok((Vec::new(), None));
        }
        self.tlvs_slow(frame)
    }

    #[inline(never)]
    fn tlvs_slow(&mut self, frame: &Bytes) -> Result<(Vec<Tlv>, Option<Range<usize>>), PduError> {
        let mut tlvs = Vec::new();
        let mut last = None;
        while let Some(rest) = self.buf.get(self.pos..)
            && !rest.is_empty()
        {
            let Some(&[t0, t1, l0, l1]) = rest.first_chunk::<4>() else {
                let tag = (rest.len() >= 2).then(|| u16::from_be_bytes([rest[0], rest[1]]));
                return Err(self.truncated_tlv(tag));
            };
            let tag = u16::from_be_bytes([t0, t1]);
            let len = usize::from(u16::from_be_bytes([l0, l1]));
            if rest.len() - 4 < len {
                return Err(self.truncated_tlv(Some(tag)));
            }
            let value = self.pos + 4..self.pos + 4 + len;
            self.pos = value.end;
            if self.pos == self.buf.len() {
                tlvs.push(Tlv {
                    tag,
                    value: Bytes::new(),
                });
                last = Some(value);
            } else {
                tlvs.push(Tlv {
                    tag,
                    value: cut(frame, value),
                });
            }
        }
        Ok((tlvs, last))
    }

    // Errors, out of line: the hot path only tests and branches.

    #[cold]
    #[inline(never)]
    fn truncated(&self, field: &'static str) -> PduError {
        PduError::Truncated {
            command_id: self.command_id,
            sequence_number: self.sequence_number,
            field,
        }
    }

    #[cold]
    #[inline(never)]
    fn unterminated(&self, field: &'static str, max: usize) -> PduError {
        if self.rest().len() >= max * C_STRING_SLACK {
            PduError::TooLong {
                command_id: self.command_id,
                sequence_number: self.sequence_number,
                field,
                max,
            }
        } else {
            PduError::MissingNul {
                command_id: self.command_id,
                sequence_number: self.sequence_number,
                field,
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn truncated_tlv(&self, tag: Option<u16>) -> PduError {
        PduError::TruncatedTlv {
            command_id: self.command_id,
            sequence_number: self.sequence_number,
            tag,
            offset: self.pos,
        }
    }
}

/// The field at `range` of `frame`: a shared slice (one reference count), or
/// no reference at all when empty (most optional fields).
#[inline(always)]
fn cut(frame: &Bytes, range: Range<usize>) -> Bytes {
    if range.is_empty() {
        Bytes::new()
    } else {
        frame.slice(range)
    }
}

/// [`cut`] for the last field taken from `frame`: the frame's own reference
/// becomes the field, so the field costs no reference count.
#[inline(always)]
fn cut_last(mut frame: Bytes, range: Range<usize>) -> Bytes {
    if range.is_empty() {
        return Bytes::new();
    }
    if range.end < frame.len() {
        frame.truncate(range.end);
    }
    frame.advance(range.start);
    frame
}

// === impl PduError ===

/// Why a frame is not a valid PDU. Returned by [`Pdu::decode`], and by the
/// codec inside `Ok(Some(Err(_)))` so that the connection carries on.
///
/// Whatever could be read of the header is exposed through
/// [`PduError::command_id`] and [`PduError::sequence_number`], and
/// [`PduError::command_status`] picks the status to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PduError {
    /// The frame is shorter than the 16-octet header.
    #[error("frame of {len} octets is shorter than the 16-octet PDU header")]
    TruncatedHeader {
        /// Frame length.
        len: usize,
        /// The command_id, when at least 8 octets were there.
        command_id: Option<u32>,
    },
    /// The header's command_length is not the frame's length (this includes
    /// a command_length below 16).
    #[error("{}: command_length {command_length} but the frame has {frame_len} octets", CommandIdName(*.command_id))]
    LengthMismatch {
        /// The header's command_length.
        command_length: u32,
        /// The frame's length.
        frame_len: usize,
        /// The header's command_id.
        command_id: u32,
        /// The header's sequence_number.
        sequence_number: u32,
    },
    /// The body ends inside a mandatory field.
    #[error("{}: body ends inside mandatory field `{field}`", CommandIdName(*.command_id))]
    Truncated {
        /// The header's command_id.
        command_id: u32,
        /// The header's sequence_number.
        sequence_number: u32,
        /// Spec name of the field.
        field: &'static str,
    },
    /// A C-octet string has no NUL before the end of the body.
    #[error("{}: C-octet string `{field}` has no NUL terminator", CommandIdName(*.command_id))]
    MissingNul {
        /// The header's command_id.
        command_id: u32,
        /// The header's sequence_number.
        sequence_number: u32,
        /// Spec name of the field.
        field: &'static str,
    },
    /// A C-octet string runs far past its spec maximum (twice `max`).
    #[error("{}: C-octet string `{field}` is far longer than its maximum of {max} octets", CommandIdName(*.command_id))]
    TooLong {
        /// The header's command_id.
        command_id: u32,
        /// The header's sequence_number.
        sequence_number: u32,
        /// Spec name of the field.
        field: &'static str,
        /// Spec maximum, NUL included.
        max: usize,
    },
    /// `sm_length` is larger than what is left of the body.
    #[error("{}: sm_length {sm_length} but only {remaining} octets remain", CommandIdName(*.command_id))]
    SmLength {
        /// The header's command_id.
        command_id: u32,
        /// The header's sequence_number.
        sequence_number: u32,
        /// The declared sm_length.
        sm_length: u8,
        /// Octets left in the body.
        remaining: usize,
    },
    /// The body ends inside a TLV header or value.
    #[error("{}: truncated TLV at offset {offset}", CommandIdName(*.command_id))]
    TruncatedTlv {
        /// The header's command_id.
        command_id: u32,
        /// The header's sequence_number.
        sequence_number: u32,
        /// The TLV's tag, when its first two octets were there.
        tag: Option<u16>,
        /// Offset of the TLV from the start of the frame.
        offset: usize,
    },
}

impl PduError {
    /// The header's command_id, when it could be read.
    pub fn command_id(&self) -> Option<u32> {
        match self {
            PduError::TruncatedHeader { command_id, .. } => *command_id,
            PduError::LengthMismatch { command_id, .. }
            | PduError::Truncated { command_id, .. }
            | PduError::MissingNul { command_id, .. }
            | PduError::TooLong { command_id, .. }
            | PduError::SmLength { command_id, .. }
            | PduError::TruncatedTlv { command_id, .. } => Some(*command_id),
        }
    }

    /// The header's sequence_number, when it could be read.
    pub fn sequence_number(&self) -> Option<u32> {
        match self {
            PduError::TruncatedHeader { .. } => None,
            PduError::LengthMismatch {
                sequence_number, ..
            }
            | PduError::Truncated {
                sequence_number, ..
            }
            | PduError::MissingNul {
                sequence_number, ..
            }
            | PduError::TooLong {
                sequence_number, ..
            }
            | PduError::SmLength {
                sequence_number, ..
            }
            | PduError::TruncatedTlv {
                sequence_number, ..
            } => Some(*sequence_number),
        }
    }

    /// The status to answer with, in a `generic_nack` or in the request's own
    /// response:
    ///
    /// - `ESME_RINVCMDLEN` when the lengths do not add up (short header,
    ///   command_length mismatch, body ending inside a field or before a NUL);
    /// - `ESME_RINVMSGLEN` when `sm_length` exceeds the body;
    /// - `ESME_RINVOPTPARSTREAM` for a truncated TLV;
    /// - for an overlong string, the field's own error (`ESME_RINVSRCADR`,
    ///   `ESME_RINVDSTADR`, `ESME_RINVSYSID`, `ESME_RINVPASWD`, ...), else
    ///   `ESME_RSYSERR`.
    ///
    /// (An unknown command id is not a decode error; answer a request in
    /// [`Body::Other`] with `ESME_RINVCMDID`.)
    pub fn command_status(&self) -> CommandStatus {
        match self {
            PduError::TruncatedHeader { .. }
            | PduError::LengthMismatch { .. }
            | PduError::Truncated { .. }
            | PduError::MissingNul { .. } => CommandStatus::ESME_RINVCMDLEN,
            PduError::SmLength { .. } => CommandStatus::ESME_RINVMSGLEN,
            PduError::TruncatedTlv { .. } => CommandStatus::ESME_RINVOPTPARSTREAM,
            PduError::TooLong { field, .. } => match *field {
                "source_addr" => CommandStatus::ESME_RINVSRCADR,
                "destination_addr" => CommandStatus::ESME_RINVDSTADR,
                "system_id" => CommandStatus::ESME_RINVSYSID,
                "password" => CommandStatus::ESME_RINVPASWD,
                "system_type" => CommandStatus::ESME_RINVSYSTYP,
                "service_type" => CommandStatus::ESME_RINVSERTYP,
                "schedule_delivery_time" => CommandStatus::ESME_RINVSCHED,
                "validity_period" => CommandStatus::ESME_RINVEXPIRY,
                "message_id" => CommandStatus::ESME_RINVMSGID,
                _ => CommandStatus::ESME_RSYSERR,
            },
        }
    }

    /// The `generic_nack` to send back: [`PduError::command_status`], echoing
    /// the sequence number (0, "NULL", when it could not be read).
    pub fn generic_nack(&self) -> Pdu {
        Pdu::generic_nack(self.sequence_number().unwrap_or(0), self.command_status())
    }
}
