//! The `quic://HOST:PORT` addresses that `atelier join`, `sync --peer` and `serve` take, and
//! that the sync agent connects to (resolved at every connection).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Port used when an address gives none: the relay's default (`atelier-relay`'s `listen`).
pub const DEFAULT_PORT: u16 = 4433;

/// A `quic://HOST:PORT` address as the user typed it. The host may be a name: it is resolved
/// at every connection, so a relay that moves to another IP address stays reachable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QuicUrl {
    host: String,
    port: u16,
}

impl QuicUrl {
    /// The address to connect to now (the first one the resolver gives).
    pub async fn resolve(&self) -> std::io::Result<SocketAddr> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        tokio::net::lookup_host((host, self.port))
            .await?
            .next()
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "aucune adresse pour ce nom")
            })
    }
}

impl FromStr for QuicUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("adresse « {text} » invalide : attendu quic://HÔTE:PORT, ex. quic://relais.caue.fr:4433")
        };
        let rest = text.trim();
        let rest = match rest.split_once("://") {
            Some(("quic", rest)) => rest,
            Some(_) => return Err(bad()),
            None => rest,
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') || rest.contains('@') {
            return Err(bad());
        }
        // `[v6]:port`, `[v6]`, `host:port` or `host`.
        let (host, port) = if let Some(end) = rest.find(']') {
            let host = &rest[..=end];
            match &rest[end + 1..] {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':').ok_or_else(bad)?)),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => return Err(bad()), // v6 without brackets
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
            None => DEFAULT_PORT,
        };
        if host.is_empty() || host == "[]" {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

impl TryFrom<String> for QuicUrl {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<QuicUrl> for String {
    fn from(u: QuicUrl) -> Self {
        u.to_string()
    }
}

impl fmt::Display for QuicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "quic://{}:{}", self.host, self.port)
    }
}

impl From<SocketAddr> for QuicUrl {
    fn from(addr: SocketAddr) -> Self {
        let host = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        Self {
            host,
            port: addr.port(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_or_without_scheme_and_port() {
        let url = |s: &str| s.parse::<QuicUrl>().map(|u| u.to_string());
        assert_eq!(
            url("quic://127.0.0.1:4433").unwrap(),
            "quic://127.0.0.1:4433"
        );
        assert_eq!(url("relais.caue.fr").unwrap(), "quic://relais.caue.fr:4433");
        assert_eq!(url("quic://[::1]:5000/").unwrap(), "quic://[::1]:5000");
        assert_eq!(url("[::1]").unwrap(), "quic://[::1]:4433");
        for bad in [
            "http://x:1",
            "quic://",
            "x:0",
            "x:port",
            "::1",
            "quic://a/b",
            "[::1]5",
        ] {
            assert!(url(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_socket_address_reads_as_its_url() {
        let v4: SocketAddr = "127.0.0.1:4433".parse().unwrap();
        assert_eq!(QuicUrl::from(v4).to_string(), "quic://127.0.0.1:4433");
        let v6: SocketAddr = "[::1]:5000".parse().unwrap();
        assert_eq!(QuicUrl::from(v6).to_string(), "quic://[::1]:5000");
    }
}
