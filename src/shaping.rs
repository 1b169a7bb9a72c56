//! Shaping primitives, below every room that paces traffic: a bind's rate
//! limit ([`rate`]), multi-level pacing with daily caps ([`pace`]),
//! adaptive throttling ([`aimd`]) and limits shared with other processes
//! ([`shared`]). They know time and numbers only, so the
//! SMPP session (a protocol room) and the scheduler (policy) both build on
//! them without depending on each other.

pub mod aimd;
pub mod pace;
pub mod rate;
pub mod shared;
