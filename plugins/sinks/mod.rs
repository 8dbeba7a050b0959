//! Sinks: where entries leave the pipeline.

pub mod blackhole;
pub mod console;
pub mod file;
pub mod forward;
pub mod remediate;
