//! Simulators of the peers sluice talks to, for tests, the demo and the load
//! tool. They speak the real wire protocols over real sockets, keep exact
//! counters of what they saw, and can be told to misbehave the way real
//! peers do.
//!
//! - [`smsc`]: an SMPP 3.4 SMSC (server side): binds, submit_sm with
//!   throttling and reassembly, delivery receipts, MO injection, forced
//!   disconnects.

pub mod mmsc;
pub mod smsc;
