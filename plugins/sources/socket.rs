//! `type = "socket"`: raw lines over TCP (LF framing, many connections) or UDP (a datagram may
//! hold several LF-separated lines, each an entry), parsed by `format`.

use std::net::SocketAddr;

use serde::Deserialize;

use super::default_max_line_bytes;
use super::net::{
    Datagram, TcpOptions, default_idle_timeout, default_max_connections, serve_tcp, serve_udp,
    tls_acceptor,
};
use crate::component::{
    BuildContext, BuildError, ComponentFuture, Resource, Source, SourceConfig, SourceContext,
};
use crate::framing::StreamFramer;
use crate::multiline::MultilineConfig;
use crate::parse::format::Format;
use crate::settings::ConfigDuration;
use crate::tls::ServerTls;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SocketMode {
    #[default]
    Tcp,
    Udp,
}

impl SocketMode {
    /// What a source listening in this mode on `address` holds.
    pub fn resource(self, address: SocketAddr) -> Resource {
        match self {
            SocketMode::Tcp => Resource::Tcp(address),
            SocketMode::Udp => Resource::Udp(address),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SocketConfig {
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub mode: SocketMode,
    /// Address to listen on, e.g. `127.0.0.1:5170`.
    pub address: SocketAddr,
    /// Longer lines are cut to this many bytes (counted in `component_errors_total`).
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// How lines are parsed: `auto` (default), `text`, `json`, `logfmt`, `syslog`, `cri`, `docker`.
    #[serde(default)]
    pub format: Format,
    /// TCP: join stack traces per connection: `"none"` (default), `"auto"`, or
    /// `{ start_pattern = "regex", timeout = "1s" }`.
    #[serde(default)]
    pub multiline: MultilineConfig,
    /// TCP: close a connection that sends nothing for this long (default 5m; `0s`: never).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: ConfigDuration,
    /// TCP: connections served at once; beyond, new clients wait until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// UDP: kernel receive buffer to ask for, in bytes (bursts beyond it are dropped by the
    /// kernel, and counted).
    #[serde(default = "default_receive_buffer_bytes")]
    pub receive_buffer_bytes: usize,
    /// TCP: serve TLS: `{ cert_file, key_file, ca_file, verify_client }`.
    #[serde(default)]
    pub tls: Option<ServerTls>,
}

pub fn default_receive_buffer_bytes() -> usize {
    8 * 1024 * 1024
}

impl SourceConfig for SocketConfig {
    fn build(&self, _cx: &BuildContext<'_>) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(SocketSource {
            config: self.clone(),
            tls: tls_acceptor(self.tls.as_ref(), self.mode == SocketMode::Tcp)?,
        }))
    }

    fn resources(&self) -> Vec<Resource> {
        vec![self.mode.resource(self.address)]
    }

    fn files(&self) -> Vec<std::path::PathBuf> {
        self.tls.as_ref().map(ServerTls::files).unwrap_or_default()
    }
}

struct SocketSource {
    config: SocketConfig,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Source for SocketSource {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        let config = self.config;
        match config.mode {
            SocketMode::Tcp => Box::pin(serve_tcp(
                config.address,
                TcpOptions {
                    framer: StreamFramer::lines(config.max_line_bytes),
                    format: config.format,
                    idle_timeout: Some(config.idle_timeout.0).filter(|t| !t.is_zero()),
                    max_connections: config.max_connections,
                    tls: self.tls,
                    multiline: config.multiline.clone(),
                    message_multiline: MultilineConfig::None,
                },
                cx,
            )),
            SocketMode::Udp => Box::pin(serve_udp(
                config.address,
                config.receive_buffer_bytes,
                Datagram::Lines,
                config.max_line_bytes,
                config.format,
                MultilineConfig::None,
                cx,
            )),
        }
    }
}
