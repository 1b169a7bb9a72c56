//! A door: one bound TCP listener with its connection cap, its optional
//! TLS ([`crate::tls::ServerTls`]) and back-off on accept errors.
//!
//! - **Connection cap**: each open connection holds a semaphore permit;
//!   past the cap a new connection is accepted and closed at once (so the
//!   backlog never fills with connections that will wait minutes), and
//!   counted in `sluice_door_refused_total`.
//! - **Per-address cap** ([`Door::per_address`]): at most so many open
//!   connections from one address (an IPv4 address, or the /64 of an IPv6
//!   one: [`throttle::address_key`]), so one client cannot take every slot
//!   before it authenticates; past it, closed at once the same way
//!   (`sluice_door_refused_per_address_total`).
//! - **Accept errors** (`EMFILE`, `ENFILE`, `ENOBUFS`, ...): the loop sleeps
//!   and logs at a bounded rate instead of spinning on a connection it
//!   cannot take ([`AcceptBackoff`]).
//! - **TLS** is negotiated in the connection's own task (never in the
//!   accept loop) within a deadline, see [`Visitor::open`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub mod throttle;

use crate::accept::AcceptBackoff;
use crate::tls::{ServerTls, Stream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A bound listener with its limits; see the module doc.
#[derive(Debug)]
pub struct Door {
    name: &'static str,
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    permits: Arc<Semaphore>,
    cap: usize,
    per_address: Option<Arc<PerAddress>>,
    backoff: AcceptBackoff,
}

/// Open connections per address, for [`Door::per_address`].
#[derive(Debug)]
struct PerAddress {
    cap: usize,
    open: parking_lot::Mutex<HashMap<IpAddr, usize>>,
}

/// What an open connection holds until it ends: its slot under the door's
/// cap and, with a per-address cap, its address's.
#[derive(Debug)]
pub struct Ticket {
    _permit: OwnedSemaphorePermit,
    _address: Option<AddressSlot>,
}

#[derive(Debug)]
struct AddressSlot {
    table: Arc<PerAddress>,
    key: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock();
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// A connection accepted under the cap, before TLS.
#[derive(Debug)]
pub struct Visitor {
    /// The TCP connection.
    pub tcp: TcpStream,
    /// Its peer.
    pub peer: SocketAddr,
    tls: Option<Arc<ServerTls>>,
    permit: Ticket,
}

/// An open connection: TLS negotiated when the door has it.
#[derive(Debug)]
pub struct Conn {
    /// The byte stream.
    pub stream: Stream,
    /// Its peer.
    pub peer: SocketAddr,
    /// The client certificate's identity (mutual TLS only).
    pub identity: Option<Arc<str>>,
    /// Held until the connection ends.
    pub permit: Ticket,
}

impl Door {
    /// Binds `addr`; `name` names the door in logs and metrics.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn bind(
        name: &'static str,
        addr: SocketAddr,
        tls: Option<Arc<ServerTls>>,
        max_connections: usize,
    ) -> io::Result<Door> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Door::new(name, listener, tls, max_connections))
    }

    /// A door over an already bound listener.
    pub fn new(
        name: &'static str,
        listener: TcpListener,
        tls: Option<Arc<ServerTls>>,
        max_connections: usize,
    ) -> Door {
        let cap = max_connections.max(1);
        Door {
            name,
            listener,
            tls,
            permits: Arc::new(Semaphore::new(cap)),
            cap,
            per_address: None,
            backoff: AcceptBackoff::new(name),
        }
    }

    /// At most `cap` open connections from one address (0: no such cap).
    pub fn per_address(mut self, cap: usize) -> Door {
        self.per_address = (cap > 0).then(|| {
            Arc::new(PerAddress {
                cap,
                open: parking_lot::Mutex::default(),
            })
        });
        self
    }

    /// The bound address.
    ///
    /// # Errors
    /// As [`TcpListener::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The door's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.cap.saturating_sub(self.permits.available_permits())
    }

    /// The next connection within the cap. Connections past the cap are
    /// closed at once; accept errors back off. Cancel-safe.
    pub async fn accept(&mut self) -> Visitor {
        loop {
            match self.listener.accept().await {
                Ok((tcp, peer)) => {
                    self.backoff.succeeded();
                    let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                        metrics::counter!("sluice_door_refused_total", "door" => self.name)
                            .increment(1);
                        // Dropping the stream closes it (RST if data is unread).
                        drop(tcp);
                        continue;
                    };
                    let address = match &self.per_address {
                        None => None,
                        Some(table) => {
                            let key = throttle::address_key(peer.ip());
                            let mut open = table.open.lock();
                            let n = open.entry(key).or_insert(0);
                            if *n >= table.cap {
                                drop(open);
                                metrics::counter!("sluice_door_refused_per_address_total", "door" => self.name)
                                    .increment(1);
                                drop(tcp);
                                continue;
                            }
                            *n += 1;
                            Some(AddressSlot {
                                table: table.clone(),
                                key,
                            })
                        }
                    };
                    let _ = tcp.set_nodelay(true);
                    return Visitor {
                        tcp,
                        peer,
                        tls: self.tls.clone(),
                        permit: Ticket {
                            _permit: permit,
                            _address: address,
                        },
                    };
                }
                Err(e) => self.backoff.failed(&e).await,
            }
        }
    }
}

impl Visitor {
    /// Negotiates TLS (when the door has it) within `deadline`.
    ///
    /// # Errors
    /// The TLS handshake failed or timed out.
    pub async fn open(self, deadline: Duration) -> io::Result<Conn> {
        let (stream, identity) = match &self.tls {
            Some(tls) => tls.accept(self.tcp, deadline).await?,
            None => (Stream::Plain(self.tcp), None),
        };
        Ok(Conn {
            stream,
            peer: self.peer,
            identity,
            permit: self.permit,
        })
    }
}

#[cfg(test)]
mod tests;
