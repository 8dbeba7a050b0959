//! `type = "socket"`: raw lines over TCP (LF framing, many connections) or UDP (a datagram may
//! hold several LF-separated lines, each an entry).

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{LineBatcher, default_max_line_bytes, read_lines};
use crate::component::{
    BuildContext, BuildError, ComponentError, ComponentFuture, Resource, Source, SourceConfig,
    SourceContext,
};
use crate::framing::{Frame, LineFramer, without_terminator};
use crate::metrics::ComponentMetrics;
use crate::topology::Output;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SocketMode {
    #[default]
    Tcp,
    Udp,
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
    /// UDP: kernel receive buffer to ask for, in bytes (bursts beyond it are dropped by the kernel).
    #[serde(default = "default_receive_buffer_bytes")]
    pub receive_buffer_bytes: usize,
}

fn default_receive_buffer_bytes() -> usize {
    8 * 1024 * 1024
}

impl SourceConfig for SocketConfig {
    fn build(&self, _cx: &BuildContext<'_>) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(SocketSource {
            config: self.clone(),
        }))
    }

    fn resources(&self) -> Vec<Resource> {
        vec![match self.mode {
            SocketMode::Tcp => Resource::Tcp(self.address),
            SocketMode::Udp => Resource::Udp(self.address),
        }]
    }
}

struct SocketSource {
    config: SocketConfig,
}

impl Source for SocketSource {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        match self.config.mode {
            SocketMode::Tcp => Box::pin(run_tcp(self.config, cx)),
            SocketMode::Udp => Box::pin(run_udp(self.config, cx)),
        }
    }
}

async fn run_tcp(config: SocketConfig, cx: SourceContext) -> Result<(), ComponentError> {
    let listener = TcpListener::bind(config.address).await.map_err(|error| {
        ComponentError::io(format!("cannot listen on tcp://{}", config.address), error)
    })?;
    tracing::info!(component_id = %cx.id, address = %config.address, "listening on TCP");
    cx.health.running();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = cx.shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(read_connection(
                        stream,
                        peer,
                        LineFramer::new(config.max_line_bytes),
                        LineBatcher::new(cx.id.clone(), cx.node_id.clone(), cx.metrics.clone()),
                        cx.output.clone(),
                        cx.shutdown.clone(),
                        cx.metrics.clone(),
                    ));
                }
                Err(error) => {
                    // Out of file descriptors and similar: back off briefly instead of spinning.
                    cx.metrics.error("accept_failed");
                    tracing::warn!(component_id = %cx.id, %error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn read_connection(
    stream: TcpStream,
    peer: SocketAddr,
    framer: LineFramer,
    mut batcher: LineBatcher,
    output: Output,
    shutdown: CancellationToken,
    metrics: ComponentMetrics,
) {
    if let Err(error) = read_lines(stream, framer, &mut batcher, &output, &shutdown).await {
        metrics.error("read_failed");
        tracing::debug!(%peer, %error, "connection closed with an error");
    }
}

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_536;

async fn run_udp(config: SocketConfig, cx: SourceContext) -> Result<(), ComponentError> {
    let socket = bind_udp(config.address, config.receive_buffer_bytes).map_err(|error| {
        ComponentError::io(format!("cannot listen on udp://{}", config.address), error)
    })?;
    tracing::info!(component_id = %cx.id, address = %config.address, "listening on UDP");
    cx.health.running();
    let mut batcher = LineBatcher::new(cx.id.clone(), cx.node_id.clone(), cx.metrics.clone());
    let mut buffer = BytesMut::with_capacity(MAX_DATAGRAM * 16);
    loop {
        buffer.reserve(MAX_DATAGRAM);
        let received = tokio::select! {
            biased;
            _ = cx.shutdown.cancelled() => break,
            received = socket.recv_buf_from(&mut buffer) => received,
        };
        if let Err(error) = received {
            cx.metrics.error("receive_failed");
            tracing::debug!(component_id = %cx.id, %error, "UDP receive failed");
            continue;
        }
        batcher.refresh_time();
        push_datagram(buffer.split().freeze(), config.max_line_bytes, &mut batcher);
        // Drain whatever else is already queued before handing over one batch.
        while !batcher.is_full() {
            buffer.reserve(MAX_DATAGRAM);
            match socket.try_recv_buf_from(&mut buffer) {
                Ok(_) => {
                    push_datagram(buffer.split().freeze(), config.max_line_bytes, &mut batcher)
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    cx.metrics.error("receive_failed");
                    break;
                }
            }
        }
        batcher.flush(&cx.output).await;
    }
    batcher.flush(&cx.output).await;
    Ok(())
}

fn bind_udp(address: SocketAddr, receive_buffer_bytes: usize) -> std::io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(address)?;
    socket.set_nonblocking(true)?;
    let socket = UdpSocket::from_std(socket)?;
    let socket_ref = socket2::SockRef::from(&socket);
    if let Err(error) = socket_ref.set_recv_buffer_size(receive_buffer_bytes) {
        tracing::warn!(%error, receive_buffer_bytes, "could not enlarge the UDP receive buffer");
    }
    Ok(socket)
}

/// Every LF-separated line of a datagram becomes an entry.
fn push_datagram(datagram: Bytes, max_line_bytes: usize, batcher: &mut LineBatcher) {
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', &datagram).chain(std::iter::once(datagram.len())) {
        if start > datagram.len() {
            break;
        }
        let line = without_terminator(datagram.slice(start..end));
        start = end + 1;
        if line.is_empty() && end == datagram.len() {
            continue;
        }
        if line.len() > max_line_bytes {
            batcher.push_frame(Frame::Truncated(line.slice(..max_line_bytes)));
        } else {
            batcher.push_frame(Frame::Line(line));
        }
    }
}
