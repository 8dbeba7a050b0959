//! Parsers: pure functions on bytes that return slices of their input. No I/O, no component
//! types; the sources call them.

pub mod level;
