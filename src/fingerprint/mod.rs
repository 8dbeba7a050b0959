//! Fingerprints of recurring errors (DESIGN §6.1): what makes "the same bug" one key whatever
//! node, request id or timestamp it shows up with.
//!
//! * [`template`]: the online template miner for messages without a stack trace.

pub mod template;
