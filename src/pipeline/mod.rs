//! The pipeline's plumbing: the `Batch` that travels between components with its end-to-end
//! acknowledgement (`Finalizer`, `DeliveryStatus`), and the bounded edges (`Output`, `Input`,
//! `WhenFull`) that carry it, and the segment files a disk buffer keeps its records in
//! (`segments`).
//!
//! A leaf of the crate: the component traits, the sources and sinks, and the runtime that wires
//! them all use these types; this module knows none of them.

mod batch;
mod channel;
pub mod disk_buffer;
pub mod segments;

pub use batch::{Batch, DeliveryStatus, Finalizer};
pub(crate) use channel::WeakOutput;
pub use channel::{CHANNEL_BATCHES, Input, MAX_BATCH_ENTRIES, Output, RecvError, WhenFull};
