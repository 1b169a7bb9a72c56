//! Sluice: a high-throughput SMS/MMS send gateway.
//!
//! The crate is one room per concern; `docs/ARCHITECTURE.md` maps them. Low
//! rooms (protocols, value types, transport, the journal) import no policy
//! room: `smpp` knows bytes, [`model`], [`shaping`] and [`wire`]; `mm7` adds the HTTP
//! door; the journal knows [`model`]. `tests/dependencies.rs` checks that
//! table, that no cycle forms and that only `ingest` and [`grpc`] (the
//! doors that speak them) name the wire's `pb` types. [`gateway`] only wires the rooms
//! together; [`tools`] holds what is around the gateway, not part of it
//! (simulators, `sluice bench`, `sluice demo`).
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations)]

pub mod accept;
pub mod admin;
pub mod admission;
pub mod api;
pub mod backlog;
pub mod carrier;
pub mod cluster;
pub mod compliance;
pub mod config;
pub mod door;
pub mod events;
pub mod external;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod grpc;
pub mod history;
pub mod httpd;
pub mod inbound;
pub mod ingest;
pub mod journal;
pub mod ledger;
pub mod links;
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
pub mod smpp;
pub mod smpp_server;
pub mod spill;
pub mod suppression;
pub mod telemetry;
pub mod tls;
pub mod tools;
pub mod uploads;
pub mod webhooks;
pub mod wire;

// The tools, also at the crate root where tests, benches and the binary
// have always found them.
pub use tools::{demo, loadgen, sim};
