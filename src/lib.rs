//! tailfix: a log agent that tails, parses and ships logs, and turns recurring errors into
//! proposed code fixes. See DESIGN.md for the map; `main.rs` is the command line.

pub mod api;
pub mod app;
pub mod cli;
pub mod component;
pub mod config;
pub mod error;
pub mod event;
pub mod fingerprint;
pub mod fleet;
pub mod framing;
pub mod health;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod multiline;
pub mod nodes;
pub mod parse;
pub mod pipeline;
pub mod processor;
pub mod remediation;
pub mod settings;
pub mod state;
pub mod time;
pub mod topology;

#[path = "../plugins/mod.rs"]
pub mod plugins;
