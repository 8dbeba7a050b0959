//! The built-in components, one file each, and the registry that maps a config `type` to them.
//!
//! Compiled into the crate (see `lib.rs`); a component knows only the traits in `src/`.

pub mod registry;
pub mod sinks;
pub mod sources;
pub mod transforms;
