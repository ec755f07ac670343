//! The gRPC listener's connections, before HTTP/2 sees them: accepted
//! under the per-address and per-second connection limits, taken through
//! the TLS handshake (within `tls_handshake_timeout_ms`) when TLS is on,
//! and labelled with the [`Peer`] that authentication reads (address,
//! client certificate principal).
//!
//! With `--auth`, a connection none of whose calls has authenticated
//! within `unauthenticated_connection_ms` is closed: what an
//! unauthenticated client can hold is one connection's HTTP/2 state for
//! that long (its calls are refused from their headers, which are bounded
//! by `request_headers_bytes_max`, before any body is read).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

use super::auth::AUDIT;
use super::tls::Tls;
use crate::core::security::quota::Bucket;

/// Who is on the other end of a connection; in every call's extensions.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// The principal name its certificate maps to (mutual TLS).
    pub cert_principal: Option<Arc<str>>,
    /// Whether the connection is TLS (SASL PLAIN is served only then).
    pub tls: bool,
    authenticated: Arc<AtomicBool>,
}

impl Peer {
    /// Marks the connection as having carried an authenticated call.
    pub fn authenticated(&self) {
        self.authenticated.store(true, Ordering::Relaxed);
    }
}

/// The client address of a call, as group members record it ("" if none).
pub fn peer_host<T>(req: &tonic::Request<T>) -> String {
    req.extensions()
        .get::<Peer>()
        .map(|p| p.addr.to_string())
        .unwrap_or_default()
}

/// The listener's connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections from one IP address (connections_per_ip_max).
    pub per_ip_max: u32,
    /// New connections accepted per second (connections_per_sec_max).
    pub per_sec_max: u32,
    /// Time for a TLS handshake (tls_handshake_timeout_ms).
    pub handshake_timeout_ms: u64,
    /// With --auth: time for a connection to carry an authenticated call
    /// (unauthenticated_connection_ms).
    pub unauthenticated_ms: Option<u64>,
}

/// Open connections per address.
#[derive(Debug, Default)]
struct PerIp(Mutex<HashMap<IpAddr, u32>>);

/// One connection's place in [`PerIp`], given back on drop.
#[derive(Debug)]
struct Slot(Arc<PerIp>, IpAddr);

impl PerIp {
    fn enter(self: &Arc<Self>, ip: IpAddr, max: u32) -> Option<Slot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot(self.clone(), ip))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.0.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.1);
            }
        }
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// An accepted connection, as tonic serves it.
pub struct Conn {
    io: Io,
    peer: Peer,
    /// Until a call authenticates (with --auth).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    unauthenticated_ms: u64,
    _slot: Slot,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("peer", &self.peer).finish()
    }
}

impl Connected for Conn {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl Conn {
    /// Who is on the other end.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Fails the connection once its time to authenticate has run out.
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let Some(d) = &mut self.deadline else {
            return Ok(());
        };
        if self.peer.authenticated.load(Ordering::Relaxed) {
            self.deadline = None;
            return Ok(());
        }
        if d.as_mut().poll(cx).is_pending() {
            return Ok(());
        }
        tracing::warn!(target: AUDIT, event = "connection_closed", peer = %self.peer.addr,
            limit = "unauthenticated_connection_ms", ms = self.unauthenticated_ms);
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no call authenticated within unauthenticated_connection_ms ({} ms)",
                self.unauthenticated_ms
            ),
        ))
    }
}

macro_rules! delegate {
    ($self:ident, $io:ident => $e:expr) => {
        match &mut $self.get_mut().io {
            Io::Plain($io) => $e,
            Io::Tls($io) => $e,
        }
    };
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check_deadline(cx) {
            return Poll::Ready(Err(e));
        }
        delegate!(self, io => Pin::new(io).poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        delegate!(self, io => Pin::new(io).poll_write(cx, b))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, io => Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(io) => io.is_write_vectored(),
            Io::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, io => Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, io => Pin::new(io).poll_shutdown(cx))
    }
}

/// Milliseconds since `start`, the connection-rate bucket's clock.
fn ms_since(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

/// Accepts connections on `listener` until `stop`, and yields each once
/// it is ready for HTTP/2 (handshake done, limits passed).
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    limits: Limits,
    stop: CancellationToken,
) -> impl futures::Stream<Item = io::Result<Conn>> {
    let (tx, rx) = mpsc::channel::<io::Result<Conn>>(64);
    tokio::spawn(async move {
        let per_ip = Arc::new(PerIp::default());
        let start = Instant::now();
        let mut rate = Bucket::full(u64::from(limits.per_sec_max), 1000, 0);
        loop {
            let (stream, addr) = tokio::select! {
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: wait, do not spin.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stop.cancelled() => return,
                _ = tx.closed() => return,
            };
            let rate_ok = rate
                .take(u64::from(limits.per_sec_max), 1000, 1, ms_since(start))
                .is_ok();
            if !rate_ok {
                tracing::warn!(target: AUDIT, event = "connection_refused", peer = %addr,
                    limit = "connections_per_sec_max", max = limits.per_sec_max);
                continue;
            }
            let Some(slot) = per_ip.enter(addr.ip(), limits.per_ip_max) else {
                tracing::warn!(target: AUDIT, event = "connection_refused", peer = %addr,
                    limit = "connections_per_ip_max", max = limits.per_ip_max);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (tls, tx) = (tls.clone(), tx.clone());
            tokio::spawn(async move {
                if let Some(conn) = open(stream, addr, slot, tls, limits).await {
                    let _ = tx.send(Ok(conn)).await;
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// The handshake (with TLS) and the connection's [`Peer`]; `None` (the
/// connection dropped, the reason logged) if it fails.
async fn open(
    stream: TcpStream,
    addr: SocketAddr,
    slot: Slot,
    tls: Option<Arc<Tls>>,
    limits: Limits,
) -> Option<Conn> {
    let (io, cert_principal) = match tls {
        None => (Io::Plain(stream), None),
        Some(tls) => {
            let handshake = tls.acceptor().accept(stream);
            let timeout = Duration::from_millis(limits.handshake_timeout_ms);
            let stream = match tokio::time::timeout(timeout, handshake).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(target: AUDIT, event = "tls_handshake_failed", peer = %addr, error = %e);
                    return None;
                }
                Err(_) => {
                    tracing::warn!(target: AUDIT, event = "tls_handshake_failed", peer = %addr,
                        limit = "tls_handshake_timeout_ms", ms = limits.handshake_timeout_ms);
                    return None;
                }
            };
            let leaf = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first());
            let principal = match leaf.map(|c| tls.principal_name(c)) {
                None => None,
                Some(Ok(name)) => Some(Arc::<str>::from(name)),
                Some(Err(why)) => {
                    tracing::warn!(target: AUDIT, event = "authentication_failed", peer = %addr, reason = %why);
                    return None;
                }
            };
            (Io::Tls(Box::new(stream)), principal)
        }
    };
    let tls = matches!(io, Io::Tls(_));
    let deadline = limits
        .unauthenticated_ms
        .map(|ms| Box::pin(tokio::time::sleep(Duration::from_millis(ms))));
    Some(Conn {
        io,
        peer: Peer {
            addr,
            tls,
            cert_principal,
            authenticated: Arc::new(AtomicBool::new(false)),
        },
        deadline,
        unauthenticated_ms: limits.unauthenticated_ms.unwrap_or(0),
        _slot: slot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_slots_are_counted_and_given_back() {
        let per_ip = Arc::new(PerIp::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let a = per_ip.enter(ip, 2).unwrap();
        let _b = per_ip.enter(ip, 2).unwrap();
        assert!(per_ip.enter(ip, 2).is_none(), "a third from one address");
        assert!(per_ip.enter(other, 2).is_some(), "another address is apart");
        drop(a);
        assert!(per_ip.enter(ip, 2).is_some(), "a closed one frees its slot");
    }

    #[test]
    fn the_connection_rate_refills_each_second() {
        let mut rate = Bucket::full(3, 1000, 0);
        let taken = (0..5).filter(|_| rate.take(3, 1000, 1, 0).is_ok()).count();
        assert_eq!(taken, 3, "a burst takes the second's allowance");
        assert_eq!(rate.take(3, 1000, 1, 100), Err(234));
        assert!(
            rate.take(3, 1000, 1, 334).is_ok(),
            "a third of a second later, one more"
        );
    }
}
