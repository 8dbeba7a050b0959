//! Listening on the network, shared by the `socket` and `syslog` sources: a TCP accept loop with
//! a task per connection (optionally TLS, with an idle timeout), and a UDP receive loop that
//! drains the socket in bursts and counts what the kernel dropped.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::{LineBatcher, read_lines};
use crate::component::{BuildError, ComponentError, SourceContext};
use crate::framing::{Frame, StreamFramer, without_terminator};
use crate::multiline::MultilineConfig;
use crate::parse::format::Format;
use crate::settings::ConfigDuration;

/// How long a busy UDP socket is left to fill before it is drained again: at 100,000 datagrams
/// a second, a wake-up for every hundred rather than for each (the kernel's buffer holds far
/// more than arrives meanwhile).
const COALESCE: Duration = Duration::from_millis(1);

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_536;
/// Received datagrams are copied into shared chunks of this size, so a 200-byte message pins
/// about 200 bytes while it waits in a queue, not the 64 KiB buffer it was received into.
const DATAGRAM_CHUNK_BYTES: usize = 1 << 20;

/// A TCP connection that sends nothing for this long is closed (config `idle_timeout`; `0s`
/// never closes): idle connections hold a descriptor each, and enough of them starve the
/// agent of descriptors for everything else.
pub fn default_idle_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(300))
}

/// Connections one TCP source serves at once (config `max_connections`); beyond, new clients
/// wait in the listen backlog until one closes.
pub fn default_max_connections() -> usize {
    4096
}

/// How a TCP source frames and parses each connection.
#[derive(Clone)]
pub struct TcpOptions {
    pub framer: StreamFramer,
    pub format: Format,
    /// `None`: never close an idle connection.
    pub idle_timeout: Option<Duration>,
    pub max_connections: usize,
    pub tls: Option<TlsAcceptor>,
    /// Stack-trace joining of lines, per connection.
    pub multiline: MultilineConfig,
    /// Stack-trace joining of decoded messages, per host and program (syslog).
    pub message_multiline: MultilineConfig,
}

/// The acceptor of a source's `tls` table; TLS is for TCP only.
pub fn tls_acceptor(
    tls: Option<&crate::tls::ServerTls>,
    tcp: bool,
) -> Result<Option<TlsAcceptor>, BuildError> {
    match (tls, tcp) {
        (Some(_), false) => Err(BuildError("`tls` needs `mode = \"tcp\"`".to_string())),
        (Some(tls), true) => tls
            .acceptor()
            .map(Some)
            .map_err(|error| BuildError(error.to_string())),
        (None, _) => Ok(None),
    }
}

/// Accepts connections until shutdown; each is read by its own task.
pub async fn serve_tcp(
    address: SocketAddr,
    options: TcpOptions,
    cx: SourceContext,
) -> Result<(), ComponentError> {
    let listener = crate::listen::tcp_listener(address)
        .map_err(|error| ComponentError::io(format!("cannot listen on tcp://{address}"), error))?;
    let max_connections = options.max_connections.max(1);
    let mut at_limit = false;
    tracing::info!(component_id = %cx.id, %address, tls = options.tls.is_some(), "listening on TCP");
    cx.health.running();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = cx.shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {
                at_limit = false;
            }
            // At the limit, clients wait in the backlog until a connection closes.
            _ = std::future::ready(()), if connections.len() >= max_connections && !at_limit => {
                at_limit = true;
                cx.metrics.error("connection_limit");
                tracing::warn!(component_id = %cx.id, max_connections, "connection limit reached; new clients wait");
            }
            accepted = listener.accept(), if connections.len() < max_connections => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let batcher = LineBatcher::new(cx.id.clone(), cx.node_id.clone(), cx.metrics.clone(), options.format)
                        .with_multiline(&options.multiline)
                        .with_message_multiline(&options.message_multiline);
                    let connection = Connection {
                        peer,
                        options: options.clone(),
                        batcher,
                        output: cx.output.clone(),
                        shutdown: cx.shutdown.clone(),
                        metrics: cx.metrics.clone(),
                    };
                    match options.tls.clone() {
                        Some(acceptor) => connections.spawn(async move {
                            let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await;
                            match handshake {
                                Ok(Ok(tls_stream)) => connection.read(tls_stream).await,
                                Ok(Err(error)) => {
                                    connection.metrics.error("tls_handshake_failed");
                                    tracing::debug!(%peer, %error, "TLS handshake failed");
                                }
                                Err(_) => connection.metrics.error("tls_handshake_timeout"),
                            }
                        }),
                        None => connections.spawn(connection.read(stream)),
                    };
                }
                Err(error) => {
                    // Out of file descriptors and similar: back off briefly instead of spinning.
                    cx.metrics.error("accept_failed");
                    tracing::warn!(component_id = %cx.id, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

struct Connection {
    peer: SocketAddr,
    options: TcpOptions,
    batcher: LineBatcher,
    output: crate::pipeline::Output,
    shutdown: tokio_util::sync::CancellationToken,
    metrics: crate::metrics::ComponentMetrics,
}

impl Connection {
    async fn read<S: AsyncRead + AsyncWrite + Unpin>(mut self, stream: S) {
        let result = read_lines(
            stream,
            self.options.framer.clone(),
            &mut self.batcher,
            &self.output,
            &self.shutdown,
            self.options.idle_timeout,
        )
        .await;
        match result {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                self.metrics.error("idle_timeout");
                tracing::debug!(peer = %self.peer, "idle connection closed");
            }
            Err(error) => {
                self.metrics.error("read_failed");
                tracing::debug!(peer = %self.peer, %error, "connection closed with an error");
            }
        }
    }
}

/// How a UDP source cuts a datagram into entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram {
    /// Every LF-separated line is an entry (`socket`).
    Lines,
    /// The whole datagram is one message (`syslog`).
    Message,
}

/// Receives datagrams until shutdown. Kernel drops (receive buffer overflow) are read from
/// `/proc/net/udp` and counted as discarded with reason `receive_buffer_full`.
pub async fn serve_udp(
    address: SocketAddr,
    receive_buffer_bytes: usize,
    datagram: Datagram,
    max_message_bytes: usize,
    format: Format,
    message_multiline: MultilineConfig,
    cx: SourceContext,
) -> Result<(), ComponentError> {
    let socket = bind_udp(address, receive_buffer_bytes)
        .map_err(|error| ComponentError::io(format!("cannot listen on udp://{address}"), error))?;
    let local = socket.local_addr().unwrap_or(address);
    tracing::info!(component_id = %cx.id, %address, "listening on UDP");
    cx.health.running();
    let mut batcher = LineBatcher::new(
        cx.id.clone(),
        cx.node_id.clone(),
        cx.metrics.clone(),
        format,
    )
    .with_message_multiline(&message_multiline);
    let mut scratch = vec![0u8; MAX_DATAGRAM];
    let mut kept = DatagramChunks::default();
    let mut drops = KernelDrops::new(local);
    let mut drop_check = tokio::time::interval(Duration::from_secs(1));
    // Whether datagrams are arriving faster than one per `COALESCE`: then, once the socket is
    // drained, the loop lets them gather for that long instead of waking for each one.
    let mut dense = false;
    loop {
        if dense {
            tokio::select! {
                biased;
                _ = cx.shutdown.cancelled() => break,
                _ = tokio::time::sleep(COALESCE) => {}
            }
        }
        let held_until = batcher.deadline();
        let waiting_since = tokio::time::Instant::now();
        let received = tokio::select! {
            biased;
            _ = cx.shutdown.cancelled() => break,
            _ = super::sleep_until_deadline(held_until), if held_until.is_some() => {
                batcher.flush_held(false);
                batcher.flush(&cx.output).await;
                continue;
            }
            _ = drop_check.tick() => {
                cx.metrics.discarded("receive_buffer_full", drops.new_drops());
                continue;
            }
            received = socket.recv_from(&mut scratch) => received,
        };
        let length = match received {
            Ok((length, _)) => length,
            Err(error) => {
                cx.metrics.error("receive_failed");
                tracing::debug!(component_id = %cx.id, %error, "UDP receive failed");
                continue;
            }
        };
        let waited = waiting_since.elapsed();
        batcher.refresh_time();
        push_datagram(
            kept.keep(&scratch[..length]),
            datagram,
            max_message_bytes,
            &mut batcher,
        );
        // Drain whatever else is already queued before handing over one batch.
        let mut drained = false;
        while !batcher.is_full() {
            match socket.try_recv_from(&mut scratch) {
                Ok((length, _)) => push_datagram(
                    kept.keep(&scratch[..length]),
                    datagram,
                    max_message_bytes,
                    &mut batcher,
                ),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                Err(_) => {
                    cx.metrics.error("receive_failed");
                    break;
                }
            }
        }
        batcher.flush(&cx.output).await;
        // A full batch means more is queued: read on at once.
        dense = drained && waited < COALESCE;
    }
    batcher.flush(&cx.output).await;
    cx.metrics
        .discarded("receive_buffer_full", drops.new_drops());
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

/// Where received datagrams are kept while their entries are in flight.
#[derive(Default)]
struct DatagramChunks {
    chunk: BytesMut,
}

impl DatagramChunks {
    fn keep(&mut self, datagram: &[u8]) -> Bytes {
        if self.chunk.capacity() - self.chunk.len() < datagram.len() {
            self.chunk = BytesMut::with_capacity(DATAGRAM_CHUNK_BYTES.max(datagram.len()));
        }
        self.chunk.extend_from_slice(datagram);
        self.chunk.split().freeze()
    }
}

fn push_datagram(
    datagram: Bytes,
    mode: Datagram,
    max_message_bytes: usize,
    batcher: &mut LineBatcher,
) {
    let push = |batcher: &mut LineBatcher, message: Bytes| {
        if message.len() > max_message_bytes {
            batcher.push_frame(Frame::Truncated(message.slice(..max_message_bytes)));
        } else {
            batcher.push_frame(Frame::Line(message));
        }
    };
    match mode {
        Datagram::Message => push(batcher, without_terminator(datagram)),
        Datagram::Lines => {
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', &datagram).chain(std::iter::once(datagram.len()))
            {
                if start >= datagram.len() {
                    break;
                }
                push(batcher, without_terminator(datagram.slice(start..end)));
                start = end + 1;
            }
        }
    }
}

/// The kernel's drop counter of one UDP socket, from `/proc/net/udp` (or `udp6`).
struct KernelDrops {
    port_hex: String,
    table: &'static str,
    last: Option<u64>,
}

impl KernelDrops {
    fn new(local: SocketAddr) -> Self {
        KernelDrops {
            port_hex: format!(":{:04X}", local.port()),
            table: if local.is_ipv4() {
                "/proc/net/udp"
            } else {
                "/proc/net/udp6"
            },
            last: None,
        }
    }

    /// Drops since the last call (the first call only takes the baseline).
    fn new_drops(&mut self) -> usize {
        let Ok(table) = std::fs::read_to_string(self.table) else {
            return 0;
        };
        let total: u64 = table
            .lines()
            .skip(1)
            .filter(|line| {
                line.split_whitespace()
                    .nth(1)
                    .is_some_and(|local| local.ends_with(&self.port_hex))
            })
            .filter_map(|line| line.split_whitespace().last()?.parse::<u64>().ok())
            .sum();
        let new = self.last.map_or(0, |last| total.saturating_sub(last));
        self.last = Some(total);
        new as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_datagrams_share_a_chunk_and_a_large_one_gets_its_own() {
        let mut kept = DatagramChunks::default();
        let first = kept.keep(&[b'a'; 200]);
        let second = kept.keep(&[b'b'; 200]);
        // Adjacent in one allocation: 200 bytes in flight pin about 200 bytes.
        assert_eq!(second.as_ptr(), first.as_ptr().wrapping_add(first.len()));
        assert_eq!(&second[..], &[b'b'; 200][..]);

        let mut chunk_count = 1;
        let mut previous = second;
        for _ in 0..(2 * DATAGRAM_CHUNK_BYTES / 200) {
            let next = kept.keep(&[b'c'; 200]);
            if next.as_ptr() != previous.as_ptr().wrapping_add(previous.len()) {
                chunk_count += 1;
            }
            previous = next;
        }
        assert!(
            chunk_count <= 3,
            "{chunk_count} chunks for 2 MiB of datagrams"
        );

        let large = kept.keep(&vec![b'd'; MAX_DATAGRAM]);
        assert_eq!(large.len(), MAX_DATAGRAM);
        assert!(large.iter().all(|b| *b == b'd'));
    }
}
