//! `dtwin healthcheck URL`: one HTTP GET with a timeout, exit status 0 for a 2xx answer and 1
//! otherwise. The container image has no curl or wget; compose's and Kubernetes' exec probes
//! call this instead (`dtwin healthcheck http://127.0.0.1:9464/healthz`).
//!
//! Plain HTTP/1.0 over `std::net` (no TLS, no redirects): the endpoints it checks are the
//! services' own `/healthz` on loopback inside the container.

use anyhow::Context;
use clap::Args;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Most bytes of an answer read (the status line is all that counts).
const MAX_RESPONSE: u64 = 64 * 1024;

/// `dtwin healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// URL to GET, e.g. http://127.0.0.1:9464/healthz (plain http only).
    #[arg(env = "DTWIN_HEALTHCHECK_URL")]
    pub url: String,
    /// Give up after this many milliseconds (connect, send and answer together).
    #[arg(long, env = "DTWIN_HEALTHCHECK_TIMEOUT_MS", default_value_t = 2000)]
    pub timeout_ms: u64,
}

/// Where an `http://` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (80 when the URL names none).
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

/// Why a healthcheck URL was refused; each variant holds the URL given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not `http://` (`https://` included: there is no TLS here).
    #[error("{0:?}: only http:// URLs are supported")]
    NotHttp(String),
    /// Whitespace or control characters, which would break the request line.
    #[error("{0:?}: spaces or control characters in the URL")]
    BadCharacters(String),
    /// `user:password@` before the host.
    #[error("{0:?}: credentials in the URL are not supported")]
    Credentials(String),
    /// `[` without its `]`.
    #[error("{0:?}: unclosed [ in the host")]
    UnclosedBracket(String),
    /// Something other than `:port` after `[address]`.
    #[error("{0:?}: bad text after the IPv6 address")]
    AfterIpv6(String),
    /// Nothing before the port or path.
    #[error("{0:?}: no host")]
    NoHost(String),
    /// A port that is not a number from 1 to 65535.
    #[error("{url:?}: bad port {port:?}")]
    BadPort {
        /// The URL given.
        url: String,
        /// The text after the host's `:`.
        port: String,
    },
}

/// Parses `http://host[:port][/path]`.
///
/// # Errors
/// Another scheme, no host, a bad port, or characters that would break the request line: see
/// [`UrlError`].
pub fn parse_url(url: &str) -> Result<Target, UrlError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| UrlError::NotHttp(url.to_owned()))?;
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError::BadCharacters(url.to_owned()));
    }
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('?') => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    if authority.contains('@') {
        return Err(UrlError::Credentials(url.to_owned()));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| UrlError::UnclosedBracket(url.to_owned()))?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| UrlError::AfterIpv6(url.to_owned()))?,
                ),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::NoHost(url.to_owned()));
    }
    let port = match port {
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| UrlError::BadPort {
                url: url.to_owned(),
                port: p.to_owned(),
            })?,
    };
    Ok(Target {
        host: host.to_owned(),
        port,
        path,
    })
}

/// The request sent for `target`.
pub fn request(target: &Target) -> String {
    let host = if target.host.contains(':') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    format!(
        "GET {} HTTP/1.0\r\nHost: {host}:{}\r\nUser-Agent: dtwin-healthcheck\r\nConnection: close\r\n\r\n",
        target.path, target.port
    )
}

/// The status code of an HTTP answer (`HTTP/1.x NNN ...` on its first line).
pub fn status_code(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok().filter(|c| (100..600).contains(c))
}

/// GETs `url` within `timeout`: the status code and the answer's body.
///
/// # Errors
/// A bad URL, a name that does not resolve, no connection, a timeout, or an answer that is
/// not HTTP.
pub fn get(url: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let target = parse_url(url)?;
    let deadline = Instant::now() + timeout;
    let addrs: Vec<_> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {}", target.host))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(format!("{addr}: {e}")),
        }
    }
    let mut stream = stream.with_context(|| {
        format!(
            "cannot connect to {url}: {}",
            last.unwrap_or_else(|| "timed out".to_owned())
        )
    })?;
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    stream.set_write_timeout(Some(left))?;
    stream.set_read_timeout(Some(left))?;
    stream
        .write_all(request(&target).as_bytes())
        .with_context(|| format!("sending the request to {url}"))?;
    let mut answer = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut answer)
        .with_context(|| format!("reading the answer of {url}"))?;
    let code = status_code(&answer)
        .with_context(|| format!("{url} did not answer with an HTTP status line"))?;
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| String::from_utf8_lossy(&answer[i + 4..]).trim().to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

/// Runs the check: `Ok` for a 2xx answer.
///
/// # Errors
/// Not 2xx (with the status and the answer's first line), or no answer at all.
pub fn run(args: &HealthcheckArgs) -> anyhow::Result<()> {
    let (code, body) = get(&args.url, Duration::from_millis(args.timeout_ms.max(1)))?;
    let first = body.lines().next().unwrap_or_default();
    anyhow::ensure!(
        (200..300).contains(&code),
        "{} answered {code}: {first}",
        args.url
    );
    println!("{code} {first}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_http_urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:9464/healthz").unwrap(),
            Target {
                host: "127.0.0.1".into(),
                port: 9464,
                path: "/healthz".into()
            }
        );
        assert_eq!(
            parse_url("http://dashboard").unwrap(),
            Target {
                host: "dashboard".into(),
                port: 80,
                path: "/".into()
            }
        );
        assert_eq!(
            parse_url("http://[::1]:8080/healthz?x=1").unwrap(),
            Target {
                host: "::1".into(),
                port: 8080,
                path: "/healthz?x=1".into()
            }
        );
        assert_eq!(parse_url("http://h:1?q").unwrap().path, "/?q");
        for bad in [
            "https://h/healthz",
            "h:80/healthz",
            "http://:80/",
            "http://h:0/",
            "http://h:70000/",
            "http://h:x/",
            "http://u:p@h/",
            "http://h/a b",
            "http://h/a\r\nX: y",
            "http://[::1/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn each_bad_url_has_its_own_error() {
        use UrlError::*;
        let port = |url: &str, port: &str| BadPort {
            url: url.into(),
            port: port.into(),
        };
        for (bad, want) in [
            ("https://h/healthz", NotHttp("https://h/healthz".into())),
            ("h:80/healthz", NotHttp("h:80/healthz".into())),
            ("http://h/a b", BadCharacters("http://h/a b".into())),
            (
                "http://h/a\r\nX: y",
                BadCharacters("http://h/a\r\nX: y".into()),
            ),
            ("http://u:p@h/", Credentials("http://u:p@h/".into())),
            ("http://[::1/", UnclosedBracket("http://[::1/".into())),
            ("http://[::1]x/", AfterIpv6("http://[::1]x/".into())),
            ("http://:80/", NoHost("http://:80/".into())),
            ("http://[]:80/", NoHost("http://[]:80/".into())),
            ("http://h:0/", port("http://h:0/", "0")),
            ("http://h:70000/", port("http://h:70000/", "70000")),
            ("http://h:x/", port("http://h:x/", "x")),
            ("http://h:/", port("http://h:/", "")),
        ] {
            assert_eq!(parse_url(bad), Err(want), "{bad:?}");
        }
        assert_eq!(
            parse_url("http://h:x/").unwrap_err().to_string(),
            "\"http://h:x/\": bad port \"x\""
        );
        assert_eq!(
            parse_url("ftp://h/").unwrap_err().to_string(),
            "\"ftp://h/\": only http:// URLs are supported"
        );
    }

    #[test]
    fn builds_a_request_line_and_reads_a_status_line() {
        let t = parse_url("http://[::1]:9464/healthz").unwrap();
        assert_eq!(
            request(&t),
            "GET /healthz HTTP/1.0\r\nHost: [::1]:9464\r\nUser-Agent: dtwin-healthcheck\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n\r\nok\n"), Some(200));
        assert_eq!(status_code(b"HTTP/1.0 503\r\n"), Some(503));
        assert_eq!(status_code(b"HTTP/1.1 20 OK\r\n"), None);
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b""), None);
        assert_eq!(status_code(b"HTTP/1.1 999 x"), None);
    }

    proptest! {
        #[test]
        fn url_parsing_never_panics_and_round_trips(
            host in "[a-z][a-z0-9.-]{0,20}",
            port in 1u16..,
            path in "(/[A-Za-z0-9._~-]{0,10}){0,4}",
            junk in "\\PC{0,40}",
        ) {
            let _ = parse_url(&junk);
            let _ = status_code(junk.as_bytes());
            let url = format!("http://{host}:{port}{path}");
            let t = parse_url(&url).unwrap();
            prop_assert_eq!(&t.host, &host);
            prop_assert_eq!(t.port, port);
            let want = if path.is_empty() { "/".to_owned() } else { path.clone() };
            prop_assert_eq!(&t.path, &want);
            let line = format!("GET {want} HTTP/1.0\r\n");
            prop_assert!(request(&t).starts_with(&line));
        }

        #[test]
        fn any_status_line_gives_its_code(code in 100u16..600, reason in "[A-Za-z ]{0,20}") {
            let answer = format!("HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\n\r\n");
            prop_assert_eq!(status_code(answer.as_bytes()), Some(code));
        }
    }
}
