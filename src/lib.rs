//! tailfix: a log agent that tails, parses and ships logs, and turns recurring errors into
//! proposed code fixes. See DESIGN.md for the map; `main.rs` is the command line.
//!
//! ## Layers
//!
//! Modules depend one way. A module may use the modules of its own layer (as long as no cycle
//! forms) and of the layers below it, never one above; `tests/layers.rs` reads this list and
//! fails, naming the file and line, on an upward import, a cycle, or a module missing from it.
//! Listed from the bottom:
//!
//! 1. `time`, `error`, `http`, `listen`, `tls` — foundations: timestamps, the seed's error
//!    types, the one HTTP client (TLS installed once, at start), TCP listeners, TLS settings
//! 2. `event`, `settings`, `metrics`, `internal_log` — data: the event model (entries, values,
//!    stack traces), plain config value types, the Prometheus collector, the agent's own log
//!    records
//! 3. `parse`, `framing`, `multiline`, `fingerprint` — pure functions on bytes and entries: no
//!    I/O, no component types
//! 4. `pipeline`, `health`, `state` — plumbing (batches, bounded edges, acknowledgements),
//!    component health, the SQLite state store (data, not policy)
//! 5. `processor`, `ingest`, `nodes`, `remediation` — services and libraries that components
//!    drive: per-node streams, the aggregator's ingest hub, the node registry, remediation
//! 6. `component` — the traits every component implements and what the runtime hands it
//! 7. `plugins` — the registry and the built-in components (one never imports another)
//! 8. `config` — loading and checking a pipeline file, through the registry
//! 9. `topology`, `api`, `fleet` — the runtime that wires components, the HTTP API, fleet
//!    registration
//! 10. `app`, `cli` — the agent's start and stop, the CLI's views; `main.rs` sits on top

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
pub mod internal_log;
pub mod listen;
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
pub mod tls;
pub mod topology;

#[path = "../plugins/mod.rs"]
pub mod plugins;
