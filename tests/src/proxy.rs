//! A TCP load balancer on loopback: each new connection goes to the next upstream that
//! accepts (round robin, skipping dead ones), bytes are copied both ways untouched, so TLS
//! and client certificates pass through as they would behind a real L4 balancer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct Proxy {
    pub addr: SocketAddr,
    stop: CancellationToken,
    /// Connections handed to each upstream, in the order given.
    pub routed: Arc<Vec<AtomicUsize>>,
}

impl Proxy {
    pub async fn start(upstreams: Vec<SocketAddr>) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let routed: Arc<Vec<AtomicUsize>> = Arc::new(upstreams.iter().map(|_| AtomicUsize::new(0)).collect());
        let (s, r) = (stop.clone(), routed.clone());
        tokio::spawn(async move {
            let next = AtomicUsize::new(0);
            loop {
                let (client, _) = tokio::select! {
                    _ = s.cancelled() => return,
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                };
                let start = next.fetch_add(1, Ordering::Relaxed);
                let (ups, r, s) = (upstreams.clone(), r.clone(), s.clone());
                tokio::spawn(async move {
                    for i in 0..ups.len() {
                        let k = (start + i) % ups.len();
                        if let Ok(mut up) = TcpStream::connect(ups[k]).await {
                            r[k].fetch_add(1, Ordering::Relaxed);
                            let mut client = client;
                            tokio::select! {
                                _ = s.cancelled() => {}
                                _ = tokio::io::copy_bidirectional(&mut client, &mut up) => {}
                            }
                            return;
                        }
                    }
                });
            }
        });
        Ok(Proxy { addr, stop, routed })
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
