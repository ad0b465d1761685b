//! A small TCP proxy on 127.0.0.1 for fault tests: it forwards every
//! connection made to it to a target port on 127.0.0.1, and can
//!
//! - [`freeze`](TcpProxy::freeze): stop forwarding bytes in both directions
//!   while keeping every socket open (a silently stalled network path: the
//!   peer sees neither data nor a close),
//! - [`thaw`](TcpProxy::thaw): forward again (bytes held meanwhile are then
//!   delivered, in order),
//! - [`cut`](TcpProxy::cut): close every current connection at once (both
//!   sides); later connections are forwarded normally.
//!
//! Bounded: at most [`MAX_CONNECTIONS`] connections at a time (more are
//! closed at once), connecting to the target is bounded by 2 s, and the proxy
//! stops (closing everything) when dropped. Needs a tokio runtime with I/O
//! and timers enabled.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Most connections open at once through one proxy.
pub const MAX_CONNECTIONS: usize = 64;

#[derive(Debug)]
struct Shared {
    /// `true` while frozen.
    frozen: watch::Sender<bool>,
    /// Bumped by every `cut`: connections opened before it close.
    cuts: watch::Sender<u64>,
    /// Connections accepted and forwarded since the start.
    accepted: AtomicU64,
    /// Connections open now.
    open: AtomicUsize,
}

/// A running proxy: `127.0.0.1:{port()}` → `127.0.0.1:{target}`.
#[derive(Debug)]
pub struct TcpProxy {
    port: u16,
    target: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to
    /// `127.0.0.1:target_port`.
    pub async fn start(target_port: u16) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy: bind 127.0.0.1:0");
        let port = listener.local_addr().expect("proxy: local addr").port();
        let shared = Arc::new(Shared {
            frozen: watch::channel(false).0,
            cuts: watch::channel(0).0,
            accepted: AtomicU64::new(0),
            open: AtomicUsize::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, target_port, shared.clone()));
        TcpProxy {
            port,
            target: target_port,
            shared,
            accept,
        }
    }

    /// The port the proxy listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port it forwards to.
    pub fn target(&self) -> u16 {
        self.target
    }

    /// `redis://127.0.0.1:{port}/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops forwarding in both directions; sockets stay open, bytes
    /// already read are held until [`thaw`](Self::thaw). New connections
    /// are accepted (and connected to the target) but forward nothing
    /// either.
    pub fn freeze(&self) {
        self.shared.frozen.send_replace(true);
    }

    /// Forwards again, held bytes first.
    pub fn thaw(&self) {
        self.shared.frozen.send_replace(false);
    }

    /// Whether frozen now.
    pub fn is_frozen(&self) -> bool {
        *self.shared.frozen.borrow()
    }

    /// Closes every connection open now (both sides, held bytes dropped).
    /// The proxy keeps listening; it does not change the frozen state.
    pub fn cut(&self) {
        self.shared.cuts.send_modify(|n| *n += 1);
    }

    /// Connections accepted and forwarded since the start.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn connections_open(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn accept_loop(listener: TcpListener, target: u16, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if shared.open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            drop(client);
            continue;
        }
        shared.open.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        tokio::spawn(async move {
            let generation = *shared.cuts.borrow();
            let connect = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(("127.0.0.1", target)));
            if let Ok(Ok(server)) = connect.await {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let mut cuts = shared.cuts.subscribe();
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let up = pump(cr, sw, shared.frozen.subscribe());
                let down = pump(sr, cw, shared.frozen.subscribe());
                let cut = async {
                    // Closes when a cut after this connection's start is seen
                    // (or the proxy is gone).
                    let _ = cuts.wait_for(|&n| n != generation).await;
                };
                tokio::select! {
                    _ = cut => {}
                    // One direction ended (EOF or error): close both.
                    _ = up => {}
                    _ = down => {}
                }
            }
            shared.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Copies `from` to `to`, holding bytes while frozen. Returns on EOF or an
/// error of either side.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Frozen while reading: hold these bytes until thawed.
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    /// An echo server on 127.0.0.1; its port.
    async fn echo() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    async fn round_trip(c: &mut TcpStream, msg: &[u8], within: Duration) -> Option<Vec<u8>> {
        c.write_all(msg).await.ok()?;
        let mut got = vec![0u8; msg.len()];
        match tokio::time::timeout(within, c.read_exact(&mut got)).await {
            Ok(Ok(_)) => Some(got),
            _ => None,
        }
    }

    #[tokio::test]
    async fn forwards_freezes_thaws_and_cuts() {
        let proxy = TcpProxy::start(echo().await).await;
        let mut c = TcpStream::connect(("127.0.0.1", proxy.port())).await.unwrap();
        let second = Duration::from_secs(1);
        assert_eq!(round_trip(&mut c, b"one", second).await.as_deref(), Some(&b"one"[..]));
        assert_eq!((proxy.connections_accepted(), proxy.connections_open()), (1, 1));

        proxy.freeze();
        assert!(proxy.is_frozen());
        assert_eq!(
            round_trip(&mut c, b"two", Duration::from_millis(200)).await,
            None,
            "frozen"
        );
        proxy.thaw();
        let mut got = [0u8; 3];
        tokio::time::timeout(second, c.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"two", "held bytes delivered after the thaw");

        proxy.cut();
        let mut buf = [0u8; 8];
        let closed = tokio::time::timeout(second, c.read(&mut buf)).await.unwrap();
        assert!(
            matches!(closed, Ok(0) | Err(_)),
            "cut closes the connection: {closed:?}"
        );
        let mut c2 = TcpStream::connect(("127.0.0.1", proxy.port())).await.unwrap();
        assert_eq!(
            round_trip(&mut c2, b"three", second).await.as_deref(),
            Some(&b"three"[..])
        );
        assert_eq!(proxy.connections_accepted(), 2);
    }
}
