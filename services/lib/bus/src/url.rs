//! Broker addresses: `mqtt://[user[:password]@]host[:port]`, and over TLS
//! `mqtts://[user[:password]@]host[:port][?ca=/path/ca.pem]` (port 8883 by default; without
//! `ca` the system's trusted roots verify the broker).
//!
//! [`Brokers`]: one or more of them, the nodes of one broker cluster, as a comma-separated
//! list (`mqtt://n1:1883,mqtt://n2:1883,mqtt://n3:1883`); a connection tries them in turn.

use std::fmt;
use std::path::PathBuf;

/// Where a broker listens, and the credentials to use.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (default 1883).
    pub port: u16,
    /// Username and password, when the URL carries them.
    pub credentials: Option<(String, String)>,
    /// MQTT over TLS (`mqtts://`).
    pub tls: bool,
    /// PEM file of the CA that signed the broker's certificate (`?ca=`), for TLS.
    pub ca: Option<PathBuf>,
}

/// Why a broker URL could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerUrlError {
    /// Only `mqtt://` (`tcp://`) and `mqtts://` (`ssl://`) are supported.
    #[error("unsupported scheme in {0:?}: use mqtt://host:port or mqtts://host:port")]
    Scheme(String),
    /// A query parameter other than `ca`, or `ca` on a plain connection.
    #[error("bad query in broker URL {0:?}: only mqtts:// takes ?ca=/path/ca.pem")]
    Query(String),
    /// The host part is empty.
    #[error("no host in broker URL {0:?}")]
    NoHost(String),
    /// The port is not a number in 1..=65535.
    #[error("bad port in broker URL {0:?}")]
    Port(String),
    /// A list of brokers with none in it.
    #[error("no broker URL given")]
    Empty,
}

impl BrokerUrl {
    /// A broker on `host:port` without credentials.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            credentials: None,
            tls: false,
            ca: None,
        }
    }

    /// Parses `mqtt://[user[:password]@]host[:port]`.
    ///
    /// # Errors
    /// [`BrokerUrlError`] naming what is wrong.
    pub fn parse(s: &str) -> Result<Self, BrokerUrlError> {
        let (tls, rest) = if let Some(r) = s
            .strip_prefix("mqtt://")
            .or_else(|| s.strip_prefix("tcp://"))
        {
            (false, r)
        } else if let Some(r) = s
            .strip_prefix("mqtts://")
            .or_else(|| s.strip_prefix("ssl://"))
        {
            (true, r)
        } else {
            return Err(BrokerUrlError::Scheme(s.to_owned()));
        };
        let (rest, ca) = match rest.split_once('?') {
            Some((r, q)) => match q.strip_prefix("ca=") {
                Some(path) if tls && !path.is_empty() && !path.contains('&') => {
                    (r, Some(PathBuf::from(path)))
                }
                _ => return Err(BrokerUrlError::Query(s.to_owned())),
            },
            None => (rest, None),
        };
        let rest = rest.trim_end_matches('/');
        let (creds, hostport) = match rest.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, rest),
        };
        let credentials = creds.map(|c| match c.split_once(':') {
            Some((u, p)) => (u.to_owned(), p.to_owned()),
            None => (c.to_owned(), String::new()),
        });
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port: u16 = p.parse().map_err(|_| BrokerUrlError::Port(s.to_owned()))?;
                if port == 0 {
                    return Err(BrokerUrlError::Port(s.to_owned()));
                }
                (h, port)
            }
            _ => (hostport, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(BrokerUrlError::NoHost(s.to_owned()));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            credentials,
            tls,
            ca,
        })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the password.
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        match &self.credentials {
            Some((u, _)) => write!(f, "{scheme}://{u}:***@{}:{}", self.host, self.port),
            None => write!(f, "{scheme}://{}:{}", self.host, self.port),
        }
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for BrokerUrl {
    type Err = BrokerUrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The brokers a connection may use: the nodes of one cluster, in order of preference. A
/// connection starts on the first and, each time its link fails, tries the next one (after the
/// last, the first again). Never empty.
#[derive(Clone, PartialEq, Eq)]
pub struct Brokers(Vec<BrokerUrl>);

impl Brokers {
    /// The brokers `urls`, in this order.
    ///
    /// # Errors
    /// [`BrokerUrlError::Empty`] when `urls` is empty.
    pub fn new(urls: Vec<BrokerUrl>) -> Result<Self, BrokerUrlError> {
        if urls.is_empty() {
            return Err(BrokerUrlError::Empty);
        }
        Ok(Self(urls))
    }

    /// Parses one URL or a comma-separated list of them (spaces around the commas are allowed).
    ///
    /// # Errors
    /// The first URL that does not parse, or [`BrokerUrlError::Empty`] for a blank string.
    pub fn parse(s: &str) -> Result<Self, BrokerUrlError> {
        if s.trim().is_empty() {
            return Err(BrokerUrlError::Empty);
        }
        s.split(',')
            .map(|u| BrokerUrl::parse(u.trim()))
            .collect::<Result<Vec<_>, _>>()
            .and_then(Self::new)
    }

    /// The first broker, where a connection starts.
    pub fn first(&self) -> &BrokerUrl {
        &self.0[0]
    }

    /// Every broker, in order.
    pub fn urls(&self) -> &[BrokerUrl] {
        &self.0
    }

    /// The same brokers starting at the `k`-th (modulo their number), the rest in order after
    /// it: give instance `k` of a service `rotated(k)` and the instances spread over the nodes,
    /// each with every other node to fail over to.
    pub fn rotated(&self, k: usize) -> Self {
        let mut urls = self.0.clone();
        urls.rotate_left(k % self.0.len());
        Self(urls)
    }

    /// How many brokers there are (at least one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a list of brokers is never empty.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl From<BrokerUrl> for Brokers {
    fn from(url: BrokerUrl) -> Self {
        Self(vec![url])
    }
}

impl TryFrom<Vec<BrokerUrl>> for Brokers {
    type Error = BrokerUrlError;
    fn try_from(urls: Vec<BrokerUrl>) -> Result<Self, Self::Error> {
        Self::new(urls)
    }
}

impl fmt::Display for Brokers {
    /// The URLs, comma-separated, passwords left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, u) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            fmt::Display::fmt(u, f)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Brokers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Brokers {
    type Err = BrokerUrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tls_urls() {
        let u = BrokerUrl::parse("mqtts://gw:pw@broker.plant?ca=/etc/dtwin/ca.pem").unwrap();
        assert!(u.tls);
        assert_eq!(u.port, 8883);
        assert_eq!(u.ca, Some(PathBuf::from("/etc/dtwin/ca.pem")));
        assert_eq!(u.to_string(), "mqtts://gw:***@broker.plant:8883");
        let u = BrokerUrl::parse("ssl://broker:9883").unwrap();
        assert!(u.tls && u.ca.is_none() && u.port == 9883);
        assert!(matches!(
            BrokerUrl::parse("mqtt://h?ca=/x"),
            Err(BrokerUrlError::Query(_))
        ));
        assert!(matches!(
            BrokerUrl::parse("mqtts://h?cert=/x"),
            Err(BrokerUrlError::Query(_))
        ));
        assert!(!BrokerUrl::parse("mqtt://h").unwrap().tls);
    }

    #[test]
    fn parses_urls() {
        assert_eq!(
            BrokerUrl::parse("mqtt://localhost").unwrap(),
            BrokerUrl::new("localhost", 1883)
        );
        assert_eq!(
            BrokerUrl::parse("mqtt://10.0.0.5:1884/").unwrap(),
            BrokerUrl::new("10.0.0.5", 1884)
        );
        let u = BrokerUrl::parse("mqtt://gw:s3cr@t@broker:8883").unwrap();
        assert_eq!(
            u.credentials,
            Some(("gw".to_string(), "s3cr@t".to_string()))
        );
        assert_eq!(u.host, "broker");
        assert_eq!(u.port, 8883);
        assert!(!format!("{u}").contains("s3cr"));
        assert_eq!(
            BrokerUrl::parse("http://x"),
            Err(BrokerUrlError::Scheme("http://x".into()))
        );
        assert_eq!(
            BrokerUrl::parse("mqtt://:1883"),
            Err(BrokerUrlError::NoHost("mqtt://:1883".into()))
        );
        assert_eq!(
            BrokerUrl::parse("mqtt://h:0"),
            Err(BrokerUrlError::Port("mqtt://h:0".into()))
        );
        assert_eq!(
            BrokerUrl::parse("mqtt://h:x"),
            Err(BrokerUrlError::Port("mqtt://h:x".into()))
        );
        assert_eq!(
            BrokerUrl::parse("mqtt://[::1]:1900").unwrap(),
            BrokerUrl::new("::1", 1900)
        );
    }

    #[test]
    fn parses_lists_of_brokers() {
        let b = Brokers::parse("mqtt://n1:1883, mqtt://u:pw@n2:1884,mqtts://n3").unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b.first(), &BrokerUrl::new("n1", 1883));
        assert_eq!(b.urls()[2].port, 8883);
        assert_eq!(
            b.to_string(),
            "mqtt://n1:1883,mqtt://u:***@n2:1884,mqtts://n3:8883",
            "passwords stay out of the list too"
        );
        assert_eq!(
            Brokers::parse(&b.to_string().replace("***", "pw")).unwrap(),
            b
        );
        let one: Brokers = "mqtt://h".parse().unwrap();
        assert_eq!(one, Brokers::from(BrokerUrl::new("h", 1883)));
        let r = b.rotated(4);
        assert_eq!(r.first(), &b.urls()[1]);
        assert_eq!(r.urls()[1..], [b.urls()[2].clone(), b.urls()[0].clone()]);
        assert_eq!(b.rotated(3), b);
        assert_eq!(Brokers::parse(" "), Err(BrokerUrlError::Empty));
        assert_eq!(Brokers::new(Vec::new()), Err(BrokerUrlError::Empty));
        assert_eq!(
            Brokers::parse("mqtt://a,,mqtt://b"),
            Err(BrokerUrlError::Scheme(String::new())),
            "an empty item is an error, not skipped"
        );
        assert_eq!(
            Brokers::parse("mqtt://a,http://b"),
            Err(BrokerUrlError::Scheme("http://b".into()))
        );
    }
}
