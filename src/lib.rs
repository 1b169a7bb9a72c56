//! Sluice: a high-throughput SMS/MMS send gateway.
//!
//! The crate is one room per concern; `docs/ARCHITECTURE.md` maps them. Low
//! rooms (protocols, value types, transport, the journal) import no policy
//! room: `smpp` knows bytes, [`model`] and [`shaping`]; `mm7` adds the HTTP
//! door; the journal knows [`model`]. `tests/dependencies.rs` checks that
//! table and that no new cycle forms. Pipeline modules talk to carriers
//! through [`carrier`]; [`gateway`] wires them together.
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations)]

pub mod accept;
pub mod admin;
pub mod admission;
pub mod backlog;
pub mod carrier;
pub mod compliance;
pub mod config;
pub mod demo;
pub mod door;
pub mod events;
pub mod external;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod httpd;
pub mod inbound;
pub mod ingest;
pub mod journal;
pub mod ledger;
pub mod loadgen;
pub mod media;
pub mod mm7;
pub mod model;
pub mod readiness;
pub mod receipts;
pub mod recovery;
pub mod route;
pub mod schedule;
pub mod settings;
pub mod shaping;
pub mod sim;
pub mod smpp;
pub mod spill;
pub mod suppression;
pub mod telemetry;
pub mod tls;
pub mod uploads;
