//! Where a simulator connects: a socket address, or a `host:port` name (a compose service
//! name, say) resolved again at every connection attempt, so that a peer that comes back
//! with another address is found.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use tokio::net::TcpStream;

/// A `--connect` argument.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `127.0.0.1:3868`, `[::1]:3868`.
    Addr(SocketAddr),
    /// `sae-2:3868`, `sae-2.sae.localdomain:3868`.
    Name { host: String, port: u16 },
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Endpoint::Addr(addr));
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: expected host:port"))?;
        if host.is_empty() || host.contains([':', '[', ']', '/', ' ']) {
            return Err(format!(
                "{s:?}: bad host name (IPv6 addresses go in brackets)"
            ));
        }
        let port = port
            .parse::<u16>()
            .map_err(|e| format!("{s:?}: bad port: {e}"))?;
        Ok(Endpoint::Name {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Addr(a) => a.fmt(f),
            Endpoint::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(a: SocketAddr) -> Self {
        Endpoint::Addr(a)
    }
}

impl Endpoint {
    /// The addresses it stands for now (a name is looked up each time).
    pub async fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        match self {
            Endpoint::Addr(a) => Ok(vec![*a]),
            Endpoint::Name { host, port } => Ok(tokio::net::lookup_host((host.as_str(), *port))
                .await?
                .collect()),
        }
    }

    /// Resolves and opens a TCP connection to the first address that accepts; returns it
    /// with the address. Without a deadline: see [`Endpoint::connect_within`].
    pub async fn connect(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.connect_with(None).await
    }

    /// [`Endpoint::connect`], giving the name lookup and each address at most `timeout`: an
    /// address whose SYNs go unanswered (a host that is gone) fails with
    /// [`io::ErrorKind::TimedOut`] and the next address is tried.
    pub async fn connect_within(&self, timeout: Duration) -> io::Result<(TcpStream, SocketAddr)> {
        self.connect_with(Some(timeout)).await
    }

    async fn connect_with(&self, timeout: Option<Duration>) -> io::Result<(TcpStream, SocketAddr)> {
        let addrs = within(timeout, self.resolve(), || format!("{self}: name lookup")).await?;
        let mut last = io::Error::new(
            io::ErrorKind::NotFound,
            format!("{self}: the name resolves to no address"),
        );
        for addr in addrs {
            match within(timeout, TcpStream::connect(addr), || addr.to_string()).await {
                Ok(s) => return Ok((s, addr)),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// `op` within `timeout` (if any); on expiry a [`io::ErrorKind::TimedOut`] error naming
/// `what`.
async fn within<T>(
    timeout: Option<Duration>,
    op: impl Future<Output = io::Result<T>>,
    what: impl FnOnce() -> String,
) -> io::Result<T> {
    let Some(t) = timeout else {
        return op.await;
    };
    match tokio::time::timeout(t, op).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{}: connect timed out after {}s", what(), t.as_secs_f64()),
        )),
    }
}

/// A listener on 127.0.0.1 whose accept queue is full (nobody accepts, and the one queued
/// connection fills a backlog of 0): the kernel drops further SYNs, so a connect to it hangs
/// like one to a host that is gone. Probed with blocking sockets on the real clock, so it
/// works under a paused tokio clock too; call it inside a tokio runtime.
#[cfg(test)]
pub(crate) struct UnansweredListener {
    pub addr: SocketAddr,
    _listener: std::net::TcpListener,
    _queued: Vec<std::net::TcpStream>,
}

#[cfg(test)]
impl UnansweredListener {
    pub(crate) fn new() -> UnansweredListener {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("address"))
            .expect("bind");
        let listener = socket.listen(0).and_then(|l| l.into_std()).expect("listen");
        let addr = listener.local_addr().expect("local address");
        let mut queued = Vec::new();
        for _ in 0..8 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => queued.push(s),
                // The queue is full: this SYN was dropped.
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return UnansweredListener {
                        addr,
                        _listener: listener,
                        _queued: queued,
                    };
                }
                Err(e) => panic!("connect to the backlog-0 listener: {e}"),
            }
        }
        panic!("the accept queue of a backlog-0 listener never filled");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names_parse() {
        let a: Endpoint = "127.0.0.1:3868".parse().unwrap();
        assert_eq!(a, Endpoint::Addr("127.0.0.1:3868".parse().unwrap()));
        assert_eq!(a.to_string(), "127.0.0.1:3868");
        let v6: Endpoint = "[::1]:3868".parse().unwrap();
        assert!(matches!(v6, Endpoint::Addr(_)));
        let n: Endpoint = "sae-2:3868".parse().unwrap();
        assert_eq!(
            n,
            Endpoint::Name {
                host: "sae-2".into(),
                port: 3868
            }
        );
        assert_eq!(n.to_string(), "sae-2:3868");
        for bad in [
            "sae-2",
            "sae-2:",
            ":3868",
            "sae-2:99999",
            "::1:3868",
            "a b:1",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn names_resolve_at_connect_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let e = Endpoint::Name {
            host: "localhost".into(),
            port,
        };
        let addrs = e.resolve().await.unwrap();
        assert!(addrs.iter().all(|a| a.port() == port), "{addrs:?}");
        let (_s, addr) = e.connect().await.unwrap();
        assert!(addr.ip().is_loopback());
        let nowhere = Endpoint::Name {
            host: "no-such-host.invalid".into(),
            port,
        };
        assert!(nowhere.connect().await.is_err());
        let (_s, _) = e.connect_within(Duration::from_secs(5)).await.unwrap();
    }

    #[tokio::test]
    async fn a_connect_to_an_unanswered_listener_hangs_without_a_deadline() {
        let dead = UnansweredListener::new();
        let e = Endpoint::Addr(dead.addr);
        let hung = tokio::time::timeout(Duration::from_millis(1500), e.connect()).await;
        assert!(hung.is_err(), "connected or failed: {hung:?}");
    }

    #[tokio::test]
    async fn connect_within_gives_up_at_its_deadline() {
        let dead = UnansweredListener::new();
        let e = Endpoint::Addr(dead.addr);
        let started = tokio::time::Instant::now();
        let err = e
            .connect_within(Duration::from_millis(1500))
            .await
            .expect_err("nobody answers");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains("timed out after 1.5s"), "{err}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(1500) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
    }
}
