//! The embedded MQTT broker: rumqttd, configured in code with bounded memory.
//!
//! rumqttd's listeners never report failures to bind (they log them on their own threads), so
//! [`start`] checks the ports first, starts rumqttd's router and one thread per listener, and
//! waits until the ports accept connections. Every listener takes MQTT 3.1.1 and MQTT 5
//! clients ([`protocol`]). The broker cannot be stopped; it lives
//! as long as the process, which is what `dtwin up` and the tests need.
//!
//! # Layout
//! - [`BrokerConfig`]: listen address and memory bounds, with defaults for `up`.
//! - [`start`]: bind check, thread, readiness.
//! - [`run`]: the service entry point (start, then wait for shutdown).
//! - [`nodelay`]: TCP_NODELAY on rumqttd's listening sockets (inherited by accepted ones).
//! - [`protocol`]: MQTT 3.1.1 and MQTT 5 clients on the same listener.
//! - [`skips`]: counts what a stalled subscriber still loses.

pub mod auth;
pub mod nodelay;
pub mod protocol;
pub mod skips;
pub mod wills;

use protocol::AnyVersion;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Default listen address of the embedded broker.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1883";

/// Bytes per commit-log segment. rumqttd keeps `segment_count` segments per subscribed
/// filter; its example config (100 MiB x 10) let RSS reach 2.3 GB under load.
pub const DEFAULT_SEGMENT_BYTES: usize = 4 * 1024 * 1024;
/// Segments kept per filter when the backlog is not sized (the old fixed bound: 16 MiB per
/// filter, 1.6 s of 1 KiB messages at 10,000 msg/s).
pub const DEFAULT_SEGMENT_COUNT: usize = 4;
/// Seconds of backlog each subscribed filter keeps by default (see [`backlog_segments`]).
pub const DEFAULT_BACKLOG_S: f64 = 10.0;
/// Fleet rate the default backlog is sized for: messages per second on one filter.
pub const DEFAULT_FLEET_RATE: f64 = 10_000.0;
/// Bytes rumqttd counts per message when sizing the backlog (a features message is ~1 KiB of
/// JSON plus its topic).
pub const DEFAULT_MESSAGE_BYTES: usize = 1024;

/// Segments of `segment_bytes` that hold `backlog_s` seconds of `rate` messages/s of
/// `message_bytes` each (at least [`DEFAULT_SEGMENT_COUNT`]), plus one: rumqttd drops the
/// oldest segment whole when the active one fills.
///
/// Why: rumqttd keeps one commit log per subscribed filter, shared by its subscribers, and
/// never holds a publisher back. A subscriber that stops acknowledging (a stalled stage) keeps
/// its read cursor while the log moves on; once its cursor falls behind the oldest retained
/// segment, the router jumps it to the head ("Read cursor start jumped", a warning of
/// rumqttd's) and the messages in between are lost although they were published at QoS 1.
/// The log's bytes are therefore the longest stall that loses nothing.
#[must_use]
pub fn backlog_segments(
    backlog_s: f64,
    rate: f64,
    message_bytes: usize,
    segment_bytes: usize,
) -> usize {
    let bytes = backlog_s.max(0.0) * rate.max(0.0) * message_bytes as f64;
    let segments = (bytes / segment_bytes.max(1) as f64).ceil() as usize;
    segments.max(DEFAULT_SEGMENT_COUNT) + 1
}
/// Largest payload the broker accepts: a model artifact on `models/current` must fit.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

/// Settings of the embedded broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Most concurrent client connections.
    pub max_connections: usize,
    /// Largest accepted payload in bytes.
    pub max_payload_bytes: usize,
    /// Bytes per commit-log segment.
    pub segment_bytes: usize,
    /// Segments per filter: with `segment_bytes`, the backlog a stalled subscriber may have
    /// before it loses messages ([`backlog_segments`], [`BrokerConfig::with_backlog`]).
    pub segment_count: usize,
    /// QoS 1 messages in flight per connection.
    pub max_inflight: usize,
    /// Users allowed to connect (Argon2id hashes); `None` allows anonymous clients, which
    /// [`start`] refuses unless every listener is on loopback.
    pub passwords: Option<Arc<auth::PasswordFile>>,
    /// A second listener speaking MQTT over TLS.
    pub tls: Option<TlsListener>,
    /// Turn Nagle's algorithm off on every accepted socket (see [`nodelay`]): without it each
    /// small publish the broker forwards can wait for the client's delayed ACK (up to 40 ms).
    pub tcp_nodelay: bool,
}

/// An MQTT-over-TLS listener (rustls): the server certificate chain and key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsListener {
    /// Address to listen on (8883 is MQTT's TLS port).
    pub listen: SocketAddr,
    /// PEM certificate chain of the server, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the server.
    pub key: PathBuf,
}

impl BrokerConfig {
    /// Defaults, listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            max_connections: 10_000,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            segment_count: backlog_segments(
                DEFAULT_BACKLOG_S,
                DEFAULT_FLEET_RATE,
                DEFAULT_MESSAGE_BYTES,
                DEFAULT_SEGMENT_BYTES,
            ),
            max_inflight: 500,
            passwords: None,
            tls: None,
            tcp_nodelay: true,
        }
    }

    /// Keeps `backlog_s` seconds of `rate` messages/s of `message_bytes` per filter (see
    /// [`backlog_segments`]): a subscriber may stall that long without losing a message.
    /// Memory: the log of a busy filter fills to this size and stays there.
    #[must_use]
    pub fn with_backlog(mut self, backlog_s: f64, rate: f64, message_bytes: usize) -> Self {
        self.segment_count = backlog_segments(backlog_s, rate, message_bytes, self.segment_bytes);
        self
    }

    /// Seconds of backlog per filter at `rate` messages/s of `message_bytes`.
    #[must_use]
    pub fn backlog_seconds(&self, rate: f64, message_bytes: usize) -> f64 {
        // The oldest segment goes whole: one segment less is what is always kept.
        let kept = self.segment_bytes * self.segment_count.saturating_sub(1);
        kept as f64 / (rate * message_bytes as f64).max(1.0)
    }

    /// Every address the broker listens on.
    pub fn listeners(&self) -> Vec<SocketAddr> {
        let mut out = vec![self.listen];
        out.extend(self.tls.as_ref().map(|t| t.listen));
        out
    }

    fn connection_settings(&self) -> rumqttd::ConnectionSettings {
        let mut connections = rumqttd::ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: self.max_payload_bytes,
            max_inflight_count: self.max_inflight,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        };
        if let Some(passwords) = &self.passwords {
            let passwords = passwords.clone();
            connections.set_auth_handler(move |client_id: String, user: String, pass: String| {
                let passwords = passwords.clone();
                async move {
                    // Argon2id takes tens of milliseconds: keep it off the broker's workers.
                    let ok = tokio::task::spawn_blocking(move || passwords.verify(&user, &pass))
                        .await
                        .unwrap_or(false);
                    if !ok {
                        tracing::warn!(
                            client_id,
                            "broker refused a login (wrong user or password)"
                        );
                    }
                    ok
                }
            });
        }
        connections
    }

    /// The listeners, each speaking MQTT 3.1.1 and 5 (see [`protocol`]). The names are the
    /// names of their threads: `rumqttd` first, so `dtwin loadtest` counts them as the broker.
    fn servers(&self) -> Vec<rumqttd::ServerSettings> {
        let connections = self.connection_settings();
        let mut servers = vec![rumqttd::ServerSettings {
            name: "rumqttd-mqtt".to_owned(),
            listen: self.listen,
            tls: None,
            next_connection_delay_ms: 0,
            connections: connections.clone(),
        }];
        if let Some(tls) = &self.tls {
            servers.push(rumqttd::ServerSettings {
                name: "rumqttd-mqtts".to_owned(),
                listen: tls.listen,
                tls: Some(rumqttd::TlsConfig::Rustls {
                    capath: None,
                    certpath: tls.cert.display().to_string(),
                    keypath: tls.key.display().to_string(),
                }),
                next_connection_delay_ms: 0,
                connections,
            });
        }
        servers
    }

    fn router(&self) -> rumqttd::RouterConfig {
        rumqttd::RouterConfig {
            max_connections: self.max_connections,
            max_outgoing_packet_count: 200,
            max_segment_size: self.segment_bytes,
            max_segment_count: self.segment_count,
            ..Default::default()
        }
    }
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Something else listens on the port.
    #[error("cannot listen on {addr}: {source} (is another broker running? choose another port with --port or DTWIN_PORT)")]
    PortTaken {
        /// The address asked for.
        addr: SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// The broker thread did not start accepting connections in time.
    #[error("embedded broker did not start listening on {0} within 5 s")]
    NotReady(SocketAddr),
    /// The configuration is unsafe or unusable (anonymous access beyond loopback, TLS files).
    #[error("{0}")]
    Config(String),
    /// The broker thread could not be spawned.
    #[error("cannot spawn broker thread: {0}")]
    Thread(std::io::Error),
    /// The task that starts the broker panicked.
    #[error("broker start task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A started broker.
#[derive(Debug, Clone, Copy)]
pub struct BrokerHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
}

/// Starts the broker on its own thread and waits until it accepts connections.
///
/// # Errors
/// [`BrokerError::PortTaken`] when the port is in use, [`BrokerError::NotReady`] when the
/// broker does not come up within 5 s.
pub fn start(config: &BrokerConfig) -> Result<BrokerHandle, BrokerError> {
    let addr = config.listen;
    for listen in config.listeners() {
        auth::check_exposure(listen, config.passwords.is_some())
            .map_err(|e| BrokerError::Config(e.to_string()))?;
    }
    if let Some(tls) = &config.tls {
        for (what, path) in [("certificate", &tls.cert), ("key", &tls.key)] {
            if !path.is_file() {
                return Err(BrokerError::Config(format!(
                    "TLS {what} file {} does not exist",
                    path.display()
                )));
            }
        }
    }
    // Bind once ourselves: rumqttd would only log the failure on its own thread.
    for addr in config.listeners() {
        drop(TcpListener::bind(addr).map_err(|source| BrokerError::PortTaken { addr, source })?);
    }
    // rumqttd's `Broker::start` would run each listener with one protocol (v4 or v5); the
    // same parts assembled here run each with `AnyVersion`: one router (its own thread), one
    // thread per listener, as `Broker::start` does.
    let router_tx = rumqttd::Router::new(0, config.router()).spawn();
    let (link_tx, link_rx, _) =
        rumqttd::local::LinkBuilder::new("dtwin-broker-wills", router_tx.clone())
            .build()
            .map_err(|e| BrokerError::Config(format!("cannot open the broker's will link: {e}")))?;
    let wills = start_wills(link_tx, link_rx)?;
    for settings in config.servers() {
        let mut server = rumqttd::Server::new(
            settings.clone(),
            router_tx.clone(),
            AnyVersion::with_wills(wills.clone()),
        );
        std::thread::Builder::new()
            .name(settings.name.clone())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, listen = %settings.listen, "cannot start the broker's listener");
                        return;
                    }
                };
                runtime.block_on(async {
                    if let Err(e) = server.start(rumqttd::LinkType::Remote).await {
                        tracing::error!(error = %e, listen = %settings.listen, "embedded broker's listener stopped");
                    }
                });
            })
            .map_err(BrokerError::Thread)?;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for listen in config.listeners() {
        loop {
            if TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(BrokerError::NotReady(listen));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if config.tcp_nodelay {
        // Every listener answered above, so rumqttd has bound them all: set the option before
        // any client of ours connects.
        match nodelay::set_on_listeners(&config.listeners()) {
            Ok(n) if n == config.listeners().len() => {}
            Ok(n) => tracing::warn!(
                found = n,
                "TCP_NODELAY set on only some of the broker's listeners; the others keep Nagle"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot set TCP_NODELAY on the broker's listeners; latency will suffer")
            }
        }
    }
    info!(
        %addr,
        tls = ?config.tls.as_ref().map(|t| t.listen),
        authentication = config.passwords.is_some(),
        mqtt = "3.1.1 and 5",
        backlog_mib_per_filter = config.segment_bytes * config.segment_count.saturating_sub(1) / (1024 * 1024),
        backlog_s_at_10k_per_s = config.backlog_seconds(DEFAULT_FLEET_RATE, DEFAULT_MESSAGE_BYTES),
        "embedded MQTT broker listening (a subscriber stalled longer than its backlog loses messages: rumqttd warns 'Read cursor start jumped')"
    );
    Ok(BrokerHandle { addr })
}

/// The will registry of the broker's connections, and the thread that publishes their wills
/// into the router through the local link `tx` (see [`wills`]). A local link publishes at
/// QoS 0; rumqttd delivers every message at the subscription's QoS, so a will reaches a QoS 1
/// subscriber at QoS 1 as before.
fn start_wills(
    mut tx: rumqttd::local::LinkTx,
    rx_link: rumqttd::local::LinkRx,
) -> Result<Arc<wills::Wills>, BrokerError> {
    use rumqttd::protocol::{Packet, Publish, PublishProperties};
    let (registry, rx) = wills::Wills::new();
    std::thread::Builder::new()
        .name("dtwin-broker-wills".into())
        .spawn(move || {
            // Kept open as long as the link: the router drops a link whose receiver is gone.
            let _rx_link = rx_link;
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
                tracing::error!("cannot start the broker's will publisher");
                return;
            };
            for (will, props) in rx {
                let publish = Publish::new(will.topic, will.message, will.retain);
                let properties = props.map(|p| PublishProperties {
                    payload_format_indicator: p.payload_format_indicator,
                    message_expiry_interval: p.message_expiry_interval,
                    response_topic: p.response_topic,
                    correlation_data: p.correlation_data,
                    user_properties: p.user_properties,
                    content_type: p.content_type,
                    ..Default::default()
                });
                if let Err(e) = runtime.block_on(tx.send(Packet::Publish(publish, properties))) {
                    tracing::error!(error = %e, "the broker's will link closed: wills are no longer published");
                    return;
                }
            }
        })
        .map_err(BrokerError::Thread)?;
    Ok(Arc::new(registry))
}

/// Service entry point: starts the broker and returns when `shutdown` fires.
///
/// # Errors
/// As [`start`].
pub async fn run(config: BrokerConfig, shutdown: CancellationToken) -> Result<(), BrokerError> {
    let cfg = config.clone();
    tokio::task::spawn_blocking(move || start(&cfg)).await??;
    shutdown.cancelled().await;
    Ok(())
}

/// Reserves a free port on 127.0.0.1 (for tests and `--port 0`).
///
/// The port is free when this returns; another process could take it before the broker binds.
/// To make that rare it is drawn below Linux's ephemeral range (32768-60999 by default), where
/// the kernel never puts the source port of an outgoing connection: a port from `bind(":0")`
/// would be in that range, and a test's own outgoing connections could land on it before the
/// broker binds (seen here as PortTaken in parallel tests).
///
/// # Errors
/// The bind error when no port can be had.
pub fn free_port() -> std::io::Result<u16> {
    use std::hash::{BuildHasher, Hasher};
    const LOW: u16 = 20_000;
    const HIGH: u16 = 32_000;
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    for attempt in 0..200u64 {
        h.write_u64(attempt);
        let port = LOW + (h.finish() % u64::from(HIGH - LOW)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_and_refuses_a_taken_port() {
        let port = free_port().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let handle = start(&BrokerConfig::new(addr)).unwrap();
        assert_eq!(handle.addr, addr);
        assert!(TcpStream::connect(addr).is_ok());
        let err = start(&BrokerConfig::new(addr)).unwrap_err();
        assert!(matches!(err, BrokerError::PortTaken { .. }), "{err}");
        assert!(err.to_string().contains("--port"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn accepted_connections_have_nagle_off_unless_asked() {
        for on in [true, false] {
            let port = free_port().unwrap();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut cfg = BrokerConfig::new(addr);
            cfg.tcp_nodelay = on;
            start(&cfg).unwrap();
            let client = TcpStream::connect(addr).unwrap();
            let me = client.local_addr().unwrap();
            // rumqttd accepts on its own thread: wait until its side of the socket exists.
            let mut seen = None;
            for _ in 0..200 {
                seen = nodelay::nodelay_of_socket_to(me);
                if seen.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(seen, Some(on), "broker side of {me}");
        }
    }
}
