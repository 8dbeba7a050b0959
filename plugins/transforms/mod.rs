//! Transforms: synchronous steps applied to each batch.

pub mod filter;
