//! Where a simulator connects: a socket address, or a `host:port` name (a compose service
//! name, say) resolved again at every connection attempt, so that a peer that comes back
//! with another address is found.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;

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
    /// with the address.
    pub async fn connect(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let mut last = io::Error::new(
            io::ErrorKind::NotFound,
            format!("{self}: the name resolves to no address"),
        );
        for addr in self.resolve().await? {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok((s, addr)),
                Err(e) => last = e,
            }
        }
        Err(last)
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
    }
}
