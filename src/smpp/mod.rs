//! SMPP 3.4: PDU types and codec, GSM-7/UCS-2 text and segmentation, receipt
//! parsing, and the client bind session.

pub mod codec;
pub mod pdu;
pub mod receipt;
pub mod session;
pub mod text;
pub mod tls;
