//! `type = "syslog"`: RFC 5424 and RFC 3164 messages, auto-detected per message, over UDP (one
//! datagram is one message) or TCP (LF framing or RFC 6587 octet counting, detected per
//! connection; optionally TLS). Header fields go into `metadata` (DESIGN §5).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::net::{
    Datagram, TcpOptions, default_idle_timeout, default_max_connections, serve_tcp, serve_udp,
    tls_acceptor,
};
use super::socket::{SocketMode, default_receive_buffer_bytes};
use crate::component::{
    BuildContext, BuildError, ComponentFuture, Resource, Source, SourceConfig, SourceContext,
};
use crate::framing::StreamFramer;
use crate::multiline::MultilineConfig;
use crate::parse::format::Format;
use crate::settings::ConfigDuration;
use crate::tls::ServerTls;

#[derive(Debug, Clone, Deserialize)]
pub struct SyslogConfig {
    /// `udp` (default) or `tcp`.
    #[serde(default = "default_mode")]
    pub mode: SocketMode,
    /// Address to listen on, e.g. `0.0.0.0:5514`.
    pub address: SocketAddr,
    /// Longer messages are cut to this many bytes (counted in `component_errors_total`); the
    /// connection goes on with the next message.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// TCP: close a connection that sends nothing for this long (default 5m; `0s`: never).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: ConfigDuration,
    /// TCP: connections served at once; beyond, new clients wait until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// TCP: serve TLS with this certificate and key.
    #[serde(default)]
    pub tls: Option<ServerTls>,
    /// Join stack traces sent as one message per line, per host and program: `"none"`
    /// (default), `"auto"`, or `{ start_pattern = "…", timeout = "1s" }`.
    #[serde(default)]
    pub multiline: MultilineConfig,
    /// UDP: kernel receive buffer to ask for, in bytes.
    #[serde(default = "default_receive_buffer_bytes")]
    pub receive_buffer_bytes: usize,
}

fn default_mode() -> SocketMode {
    SocketMode::Udp
}

fn default_max_message_bytes() -> usize {
    64 * 1024
}

impl SourceConfig for SyslogConfig {
    fn build(&self, _cx: &BuildContext<'_>) -> Result<Box<dyn Source>, BuildError> {
        let tls = tls_acceptor(self.tls.as_ref(), self.mode == SocketMode::Tcp)?;
        Ok(Box::new(SyslogSource {
            config: self.clone(),
            tls,
        }))
    }

    fn resources(&self) -> Vec<Resource> {
        vec![self.mode.resource(self.address)]
    }

    fn files(&self) -> Vec<PathBuf> {
        self.tls.as_ref().map(ServerTls::files).unwrap_or_default()
    }
}

struct SyslogSource {
    config: SyslogConfig,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Source for SyslogSource {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        let config = self.config;
        match config.mode {
            SocketMode::Tcp => Box::pin(serve_tcp(
                config.address,
                TcpOptions {
                    framer: StreamFramer::detect(config.max_message_bytes),
                    format: Format::Syslog,
                    idle_timeout: Some(config.idle_timeout.0).filter(|t| !t.is_zero()),
                    max_connections: config.max_connections,
                    tls: self.tls,
                    multiline: MultilineConfig::None,
                    message_multiline: config.multiline.clone(),
                },
                cx,
            )),
            SocketMode::Udp => Box::pin(serve_udp(
                config.address,
                config.receive_buffer_bytes,
                Datagram::Message,
                config.max_message_bytes,
                Format::Syslog,
                config.multiline.clone(),
                cx,
            )),
        }
    }
}
