//! Listening TCP sockets with a backlog fit for bursts: std binds with a backlog of 128, so
//! 3,000 clients connecting at once wait for retransmits (20 s in one probe). Every TCP listener
//! of the agent (the API, the `socket` and `syslog` sources) binds here.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Connections the kernel queues before the agent accepts them (it caps this at
/// `net.core.somaxconn`).
pub const BACKLOG: i32 = 4096;

/// A non-blocking listener on `address` with `SO_REUSEADDR` (a restart does not wait for the
/// previous process's connections in TIME_WAIT) and a backlog of [`BACKLOG`].
pub fn tcp_listener(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    tokio::net::TcpListener::from_std(socket.into())
}
