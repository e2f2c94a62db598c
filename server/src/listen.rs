//! Accepting connections so that strangers cannot hold the collector.
//!
//! Both listeners (gRPC for agents, HTTP for people and scripts) accept through a
//! [`Listener`]:
//! - **a cap per listener**: past `max_connections` open, the collector stops accepting and
//!   new connections wait in the kernel's backlog until one closes;
//! - **accept errors back off**: out of file descriptors (EMFILE, ENFILE) or memory, the loop
//!   sleeps (10 ms doubling to 1 s) and logs once per episode instead of spinning;
//! - **every connection is [`Guarded`]** until something on it authenticates: it is closed
//!   after `idle` without a byte either way while nothing is in flight, and `lifetime` after
//!   it opened however it trickles bytes. On the gRPC listener a connection authenticates
//!   when a telemetry stream on it has verified signed device claims (from then on HTTP/2
//!   keepalive finds dead peers: a stream may rightly be silent between batches); on the HTTP
//!   listener nothing marks it, so every connection is recycled within its lifetime (the
//!   server closes it gracefully first; clients reconnect).
//!
//! So a connection that never authenticates costs at most one slot under the cap, its
//! buffers, and `lifetime` of time.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::metrics::{Listener as ListenerLabel, ListenerReason, Metrics};

/// What a listener allows each connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    /// Closed after this long with no byte either way and no request in flight.
    pub idle: Duration,
    /// Closed this long after opening, unless something on it is authenticated then.
    pub lifetime: Duration,
}

impl Limits {
    /// Agents' gRPC listener: enrollment takes seconds, an attested stream stays.
    pub fn grpc(max_connections: usize) -> Limits {
        Limits { max_connections, idle: Duration::from_secs(30), lifetime: Duration::from_secs(120) }
    }

    /// The HTTP API: keep-alive for a while, then recycle.
    pub fn http(max_connections: usize) -> Limits {
        Limits { max_connections, idle: Duration::from_secs(60), lifetime: Duration::from_secs(15 * 60) }
    }
}

/// Per-connection facts shared between the socket and whoever serves requests on it.
#[derive(Debug)]
pub struct ConnState {
    pub remote: SocketAddr,
    /// Attested streams open on it now (see [`ConnState::attested`]).
    attested: AtomicUsize,
    in_flight: AtomicUsize,
}

impl ConnState {
    /// Lifts the idle and lifetime bounds while the guard lives: a stream on this connection
    /// proved who it is. When the last such stream ends (replaced, revoked, closed), the
    /// bounds apply again — from when the connection opened, so a connection that outlived
    /// its lifetime goes at its next activity.
    pub fn attested(self: &Arc<Self>) -> Attested {
        self.attested.fetch_add(1, Ordering::Relaxed);
        Attested(self.clone())
    }

    pub fn authenticated(&self) -> bool {
        self.attested.load(Ordering::Relaxed) > 0
    }

    /// Holds off the idle timeout until the guard is dropped (a request being answered).
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }
}

/// An attested stream on a connection; see [`ConnState::attested`].
#[derive(Debug)]
pub struct Attested(Arc<ConnState>);

impl Drop for Attested {
    fn drop(&mut self) {
        self.0.attested.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request in flight on a connection; see [`ConnState::busy`].
#[derive(Debug)]
pub struct Busy(Arc<ConnState>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What tonic hands every request on a guarded connection (inside `TlsConnectInfo`).
#[derive(Debug, Clone)]
pub struct ConnInfo(pub Arc<ConnState>);

/// A listening socket with a connection cap and accept backoff.
pub struct Listener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    limits: Limits,
    name: &'static str,
    metrics: Arc<Metrics>,
    /// When the cap was last reported: once a minute is enough for a flood.
    cap_logged: std::sync::Mutex<Option<Instant>>,
}

impl Listener {
    pub fn new(listener: TcpListener, limits: Limits, name: &'static str, metrics: Arc<Metrics>) -> Listener {
        Listener {
            listener,
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            limits,
            name,
            metrics,
            cap_logged: std::sync::Mutex::new(None),
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The next connection. Waits while the cap is reached; never fails (accept errors are
    /// counted, logged once per episode and backed off).
    pub async fn accept(&self) -> Guarded {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.note_cap();
                self.drop_metric("cap_reached");
                // The semaphore is never closed.
                match self.permits.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => std::future::pending().await,
                }
            }
        };
        let mut backoff = Duration::from_millis(10);
        let mut failing = false;
        loop {
            match self.listener.accept().await {
                Ok((tcp, remote)) => {
                    if failing {
                        tracing::info!(listener = self.name, "Accepting connections again.");
                    }
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "TCP_NODELAY not set.");
                    }
                    return Guarded::new(tcp, remote, permit, self.limits, self.name, self.metrics.clone());
                }
                Err(e) if transient(&e) => continue,
                Err(e) => {
                    self.metrics.accept_errors.get_or_create(&ListenerLabel { listener: self.name }).inc();
                    if !failing {
                        tracing::error!(listener = self.name, error = %e, "Accepting connections failed; backing off until it works again.");
                        failing = true;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// The connections as a stream, for tonic's `serve_with_incoming`.
    pub fn incoming(self) -> impl tokio_stream::Stream<Item = io::Result<Guarded>> {
        futures_util::stream::unfold(self, |l| async move {
            let c = l.accept().await;
            Some((Ok(c), l))
        })
    }

    /// Says the cap was reached, at most once a minute (a flood would repeat it per slot).
    fn note_cap(&self) {
        let mut last = self.cap_logged.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            *last = Some(Instant::now());
            tracing::warn!(
                listener = self.name,
                max = self.limits.max_connections,
                "Connection cap reached; new connections wait until one closes."
            );
        }
    }

    fn drop_metric(&self, reason: &'static str) {
        self.metrics.connections_dropped.get_or_create(&ListenerReason { listener: self.name, reason }).inc();
    }
}

/// Errors about one connection that died in the backlog, not about the listener.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// A TCP connection with its slot under the cap and its deadlines.
pub struct Guarded {
    tcp: TcpStream,
    state: Arc<ConnState>,
    limits: Limits,
    opened: Instant,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
    name: &'static str,
    metrics: Arc<Metrics>,
    _permit: OwnedSemaphorePermit,
}

impl Guarded {
    fn new(
        tcp: TcpStream,
        remote: SocketAddr,
        permit: OwnedSemaphorePermit,
        limits: Limits,
        name: &'static str,
        metrics: Arc<Metrics>,
    ) -> Guarded {
        let now = Instant::now();
        metrics.connections.get_or_create(&ListenerLabel { listener: name }).inc();
        Guarded {
            tcp,
            state: Arc::new(ConnState {
                remote,
                attested: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
            }),
            limits,
            opened: now,
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(now + limits.idle)),
            name,
            metrics,
            _permit: permit,
        }
    }

    pub fn state(&self) -> &Arc<ConnState> {
        &self.state
    }

    /// The next instant this connection must be looked at, and why it would close then;
    /// None once it authenticated (an agent's stream may rightly sit silent between batches:
    /// the protocol's keepalive finds dead peers from then on).
    fn deadline(&self) -> Option<(Instant, &'static str)> {
        if self.state.authenticated() {
            return None;
        }
        let idle = self.last_activity + self.limits.idle;
        let end = self.opened + self.limits.lifetime;
        Some(if end < idle { (end, "unauthenticated_lifetime") } else { (idle, "idle") })
    }

    /// Ready(Err) once a deadline has passed; otherwise arms the timer and stays Pending.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let Some((at, why)) = self.deadline() else { return Poll::Pending };
            let now = Instant::now();
            if now >= at {
                if why == "idle" && self.state.in_flight.load(Ordering::Relaxed) > 0 {
                    // A request is being answered: not idle, look again later.
                    self.last_activity = now;
                    continue;
                }
                self.metrics
                    .connections_dropped
                    .get_or_create(&ListenerReason { listener: self.name, reason: why })
                    .inc();
                tracing::debug!(listener = self.name, remote = %self.state.remote, reason = why, "Connection closed by the collector.");
                let msg = if why == "idle" {
                    "connection idle too long"
                } else {
                    "connection did not authenticate in time"
                };
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, msg)));
            }
            if self.timer.deadline() != at {
                self.timer.as_mut().reset(at);
            }
            match self.timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => continue,
            }
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.metrics.connections.get_or_create(&ListenerLabel { listener: self.name }).dec();
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.tcp).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.last_activity = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.poll_deadline(cx),
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write(cx, buf);
        match r {
            Poll::Ready(Ok(n)) if n > 0 => self.last_activity = Instant::now(),
            // A peer that stops reading holds the writer: the same deadlines apply.
            Poll::Pending => return self.poll_deadline(cx).map(|r| r.map(|()| 0)),
            _ => {}
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.tcp).poll_flush(cx) {
            Poll::Pending => self.poll_deadline(cx),
            r => r,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        match r {
            Poll::Ready(Ok(n)) if n > 0 => self.last_activity = Instant::now(),
            Poll::Pending => return self.poll_deadline(cx).map(|r| r.map(|()| 0)),
            _ => {}
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Guarded {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        ConnInfo(self.state.clone())
    }
}

/// Descriptors for everything but connections: database, WAL, logs, exports, threads.
const RESERVE: u64 = 256;

/// File descriptors for `want` connections in all: raises the soft limit toward the hard
/// one, and returns how many connections the limit leaves room for (`want` if enough).
/// A collector that runs out of descriptors cannot open its database or accept agents.
pub fn fit_descriptors(want: usize) -> usize {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let lim = getrlimit(Resource::Nofile);
        let need = (want as u64).saturating_add(RESERVE);
        let mut have = lim.current.unwrap_or(u64::MAX);
        if have < need {
            let raised = lim.maximum.map_or(need, |max| max.min(need));
            if raised > have
                && setrlimit(Resource::Nofile, Rlimit { current: Some(raised), maximum: lim.maximum }).is_ok()
            {
                have = raised;
            }
        }
        if have < need {
            // Keep a quarter for the rest when the limit is small.
            let fit = have.saturating_sub(RESERVE.min(have / 4)).max(16) as usize;
            tracing::warn!(
                want,
                fit,
                nofile = have,
                "The file descriptor limit is too low for the configured connections; capping them (raise LimitNOFILE)."
            );
            return fit.min(want);
        }
        want
    }
    #[cfg(not(unix))]
    want
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair(limits: Limits) -> (Arc<Listener>, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        (Arc::new(Listener::new(l, limits, "test", Default::default())), addr)
    }

    #[tokio::test]
    async fn silent_connections_are_closed_after_idle_and_tricklers_after_their_lifetime() {
        let limits = Limits {
            max_connections: 8,
            idle: Duration::from_millis(200),
            lifetime: Duration::from_millis(700),
        };
        let (l, addr) = pair(limits).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut g = l.accept().await;
        let started = std::time::Instant::now();
        let mut buf = [0u8; 16];
        let e = g.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(150), "{:?}", started.elapsed());
        drop(g);
        assert_eq!(silent.read(&mut buf).await.unwrap(), 0, "the client sees the close");

        // A byte every 100 ms keeps it from idling, not past its lifetime.
        let mut trickle = TcpStream::connect(addr).await.unwrap();
        let mut g = l.accept().await;
        let started = std::time::Instant::now();
        let writer = tokio::spawn(async move {
            for _ in 0..30 {
                if trickle.write_all(b"x").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let e = loop {
            match g.read(&mut buf).await {
                Ok(0) => panic!("closed by the client"),
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert!(e.to_string().contains("authenticate"), "{e}");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(650) && took < Duration::from_secs(2), "{took:?}");
        writer.abort();

        // Busy: not idle while a request is in flight (the lifetime still holds).
        let _c = TcpStream::connect(addr).await.unwrap();
        let mut g = l.accept().await;
        let busy = g.state().busy();
        let started = std::time::Instant::now();
        let e = g.read(&mut buf).await.unwrap_err();
        assert!(e.to_string().contains("authenticate"), "closed for its lifetime, not as idle: {e}");
        assert!(started.elapsed() >= Duration::from_millis(650), "{:?}", started.elapsed());
        drop(busy);

        // Attested: a silent agent stream is left to the protocol's keepalive; once its
        // stream is gone, the bounds are back (here: its lifetime has long passed).
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut g = l.accept().await;
        let attested = g.state().attested();
        let r = tokio::time::timeout(Duration::from_millis(1200), g.read(&mut buf)).await;
        assert!(r.is_err(), "an attested connection was closed while silent");
        drop(attested);
        c.write_all(b"x").await.unwrap();
        let e = loop {
            match g.read(&mut buf).await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "closed once no stream vouches for it: {e}");
    }

    #[tokio::test]
    async fn the_cap_holds_new_connections_until_one_closes() {
        let limits =
            Limits { max_connections: 2, idle: Duration::from_secs(60), lifetime: Duration::from_secs(60) };
        let (l, addr) = pair(limits).await;
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let _c = TcpStream::connect(addr).await.unwrap();
        let g1 = l.accept().await;
        let _g2 = l.accept().await;
        let l2 = l.clone();
        let third = tokio::spawn(async move { l2.accept().await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!third.is_finished(), "a third connection was served past the cap of 2");
        drop(g1);
        let g3 = tokio::time::timeout(Duration::from_secs(2), third).await.unwrap().unwrap();
        assert_eq!(g3.state().remote.ip(), addr.ip());
        let text = l.metrics.render(crate::metrics::Format::OpenMetrics);
        assert!(text.contains("sightline_open_connections{listener=\"test\"} 2"), "{text}");
    }
}
