//! Opt-out compliance core: who must not be messaged, and how inbound
//! keywords change that. Pure and in memory; the only I/O is reading and
//! writing CSV through caller-supplied readers and writers.
//!
//! - [`set`]: the suppression store, `(scope, number)` entries for program,
//!   tenant-wide and global scopes, with fast concurrent lookups;
//! - [`keywords`]: classification of an inbound message as STOP / START /
//!   HELP (whole message, case- and punctuation-insensitive);
//! - [`import`]: CSV import (streaming, bad rows with line numbers) and export.
//!
//! Recording proof of opt-outs (who, when, which keyword, which number) and
//! persisting the set belong to the caller (journal); this module decides
//! nothing about time or storage.

pub mod import;
pub mod keywords;
pub mod set;

pub use keywords::{Keyword, Keywords};
pub use set::{ScopeId, SuppressionSet};
