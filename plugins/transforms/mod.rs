//! Transforms: synchronous steps applied to each batch.

pub mod filter;
pub mod fingerprint;
pub mod throttle;
