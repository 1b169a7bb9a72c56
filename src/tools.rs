//! The tools around the gateway, not part of it: `sim` (an SMSC and an
//! MMSC simulator with faults, for tests, demos and benchmarks), `loadgen`
//! (`sluice bench`: load through the ingest protocol, with a report) and
//! `demo` (`sluice demo`: the gateway, the simulators and a client in one
//! process). They use the gateway only as a client would (`gateway::start`,
//! the ingest client); nothing in the gateway imports them except the fuzz
//! harness, which drives the simulator's submit decoder.

pub mod demo;
pub mod loadgen;
pub mod sim;
