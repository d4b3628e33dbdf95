//! MQTT plumbing shared by every dtwin service.
//!
//! rumqttc only makes progress while its event loop is polled, so each connection gets one
//! poll task that does nothing but decode and hand incoming publishes to a bounded channel;
//! the service's worker does the real work and publishes through [`BusClient`]. The poll task
//! also owns the connection's life: it resubscribes on every ConnAck (after a broker restart the
//! session is new and would otherwise receive nothing) and backs off between reconnects (poll()
//! retries at once, tens of thousands of times a second, if left alone). Given several brokers
//! (the nodes of a cluster), it moves to the next one each time the link fails ([`Failover`]).
//!
//! # Layout
//! - [`url`]: [`BrokerUrl`], the `mqtt://[user:pass@]host[:port]` address of a broker, and
//!   [`Brokers`], a list of them.
//! - [`Failover`]: which broker to try next and how long to wait first (pure).
//! - [`connect`]: opens a connection and returns the client, the inbox and the poll task.

pub mod url;

pub use rumqttc::QoS;
pub use url::{BrokerUrl, BrokerUrlError, Brokers};

use bytes::Bytes;
use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, NetworkOptions, Packet, Publish,
    SubscribeFilter, SubscribeReasonCode,
};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// Largest MQTT packet sent or received. rumqttc's default (10 KiB) is too small for model
/// artifacts on `models/current`; payload limits per message type are enforced by the decoders.
pub const DEFAULT_MAX_PACKET_BYTES: usize = 16 * 1024 * 1024;

/// Incoming publishes buffered between the poll task and the worker. When the worker falls
/// behind the poll task waits, which stops reading the socket: backpressure reaches the broker
/// instead of growing memory here.
pub const DEFAULT_INBOX_CAPACITY: usize = 4096;

/// Outgoing requests buffered in rumqttc before `publish` waits.
pub const DEFAULT_REQUEST_CAPACITY: usize = 4096;

/// First reconnect delay; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// After a DISCONNECT, how long the poll task waits for the broker to close the connection.
pub const CLOSE_DRAIN: Duration = Duration::from_secs(2);

/// How one connection is opened.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// Where the broker is: one URL, or the nodes of a cluster to fail over between.
    pub brokers: Brokers,
    /// MQTT client id; fixed ids (with `clean_session = false`) keep a session across restarts.
    pub client_id: String,
    /// Start a fresh session on every connect.
    pub clean_session: bool,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// Largest packet in either direction.
    pub max_packet_bytes: usize,
    /// When true, QoS 1 publishes are acknowledged only by [`BusClient::ack`], after the work
    /// they trigger is done (the alerter uses this so a crash never loses a verdict).
    pub manual_acks: bool,
    /// Retained message the broker publishes if this connection dies: (topic, payload).
    pub last_will: Option<(String, Vec<u8>)>,
    /// Whether the last will is retained (default true; a Sparkplug NDEATH is not).
    pub last_will_retain: bool,
    /// Capacity of the inbox channel.
    pub inbox_capacity: usize,
    /// Capacity of rumqttc's request channel.
    pub request_capacity: usize,
    /// QoS 1 messages in flight at once.
    pub inflight: u16,
}

impl BusConfig {
    /// Defaults for a connection to `brokers` (one [`BrokerUrl`] or several) as `client_id`.
    pub fn new(brokers: impl Into<Brokers>, client_id: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            client_id: client_id.into(),
            clean_session: true,
            keep_alive: Duration::from_secs(10),
            max_packet_bytes: DEFAULT_MAX_PACKET_BYTES,
            manual_acks: false,
            last_will: None,
            last_will_retain: true,
            inbox_capacity: DEFAULT_INBOX_CAPACITY,
            request_capacity: DEFAULT_REQUEST_CAPACITY,
            inflight: 100,
        }
    }

    /// The options of a connection to `url`, one of the brokers.
    fn mqtt_options(&self, url: &BrokerUrl) -> MqttOptions {
        let mut o = MqttOptions::new(&self.client_id, &url.host, url.port);
        o.set_keep_alive(self.keep_alive)
            .set_clean_session(self.clean_session)
            .set_max_packet_size(self.max_packet_bytes, self.max_packet_bytes)
            .set_manual_acks(self.manual_acks)
            .set_inflight(self.inflight)
            .set_request_channel_capacity(self.request_capacity);
        if let Some((user, pass)) = &url.credentials {
            o.set_credentials(user, pass);
        }
        if url.tls {
            o.set_transport(tls_transport(url));
        }
        if let Some((topic, payload)) = &self.last_will {
            o.set_last_will(LastWill::new(
                topic,
                payload.clone(),
                rumqttc::QoS::AtLeastOnce,
                self.last_will_retain,
            ));
        }
        o
    }
}

/// TLS with the URL's CA file, or the system's trusted roots without one. An unreadable CA
/// file is logged and leaves no trusted root, so the connection fails verification (and says
/// so in the reconnect warnings) instead of silently trusting anything.
fn tls_transport(url: &BrokerUrl) -> rumqttc::Transport {
    match &url.ca {
        None => rumqttc::Transport::tls_with_default_config(),
        Some(path) => match std::fs::read(path) {
            Ok(ca) => rumqttc::Transport::tls(ca, None, None),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read the broker's CA file");
                rumqttc::Transport::tls(Vec::new(), None, None)
            }
        },
    }
}

/// A topic filter to subscribe to on every (re)connect.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Topic filter (may hold `+` and `#`).
    pub filter: String,
    /// Maximum QoS to receive at.
    pub qos: QoS,
}

impl Subscription {
    /// A subscription to `filter` at `qos`.
    pub fn new(filter: impl Into<String>, qos: QoS) -> Self {
        Self {
            filter: filter.into(),
            qos,
        }
    }
}

/// One incoming publish.
#[derive(Debug, Clone)]
pub struct Message {
    /// The topic it was published to.
    pub topic: String,
    /// Its payload.
    pub payload: Bytes,
    /// Whether the broker delivered it as a retained message.
    pub retain: bool,
    packet: Publish,
}

impl Message {
    /// A message that did not come from a broker (an in-process hand-off, a test). Acking it
    /// is a no-op for the broker: it was never delivered with a packet id.
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        let topic = topic.into();
        let payload = payload.into();
        Self {
            packet: Publish::new(topic.clone(), rumqttc::QoS::AtMostOnce, payload.clone()),
            topic,
            payload,
            retain: false,
        }
    }
}

/// Why a publish or acknowledgement failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The connection's request queue is closed (the poll task ended).
    #[error("mqtt client closed: {0}")]
    Closed(#[from] rumqttc::ClientError),
}

/// Connection state, as the poll task sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Not connected (yet, or any more).
    Down,
    /// Connected; subscriptions not yet acknowledged.
    Connected,
    /// Connected and every subscription acknowledged.
    Subscribed,
}

impl LinkState {
    /// `Ok` when subscribed, else why not: the health check of a consuming service.
    ///
    /// # Errors
    /// [`NotSubscribed`] with the state: `broker link Down`, or `broker link Connected`
    /// (subscriptions not acknowledged yet).
    pub fn check_subscribed(&self) -> Result<(), NotSubscribed> {
        match self {
            Self::Subscribed => Ok(()),
            other => Err(NotSubscribed(*other)),
        }
    }
}

/// A link that is not (yet, or any more) subscribed: the reason a consuming service is not
/// healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("broker link {0:?}")]
pub struct NotSubscribed(pub LinkState);

/// A shared-subscription group name that cannot be used in a `$share/{group}/...` filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("share group {0:?} must be a non-empty name without '/', '+' or '#'")]
pub struct ShareGroupError(pub String);

/// A QoS number that MQTT does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("QoS must be 0, 1 or 2, not {0}")]
pub struct QosError(pub u8);

impl LinkState {
    /// Whether this state counts as ready: subscribed (a connection without subscriptions
    /// reports `Subscribed` as soon as it is connected).
    pub fn is_ready(&self) -> bool {
        *self == Self::Subscribed
    }
}

/// The sending half of a connection. Cheap to clone.
#[derive(Clone)]
pub struct BusClient {
    client: AsyncClient,
    state: watch::Receiver<LinkState>,
}

impl BusClient {
    /// Publishes `payload` to `topic`, waiting while the request queue is full.
    ///
    /// # Errors
    /// [`BusError::Closed`] when the connection has been shut down.
    pub async fn publish(
        &self,
        topic: impl Into<String>,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), BusError> {
        let payload: Vec<u8> = payload.into();
        self.client.publish(topic, qos, retain, payload).await?;
        Ok(())
    }

    /// Publishes without waiting; fails when the request queue is full.
    ///
    /// # Errors
    /// [`BusError::Closed`] when the queue is full or closed.
    pub fn try_publish(
        &self,
        topic: impl Into<String>,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), BusError> {
        let payload: Vec<u8> = payload.into();
        self.client.try_publish(topic, qos, retain, payload)?;
        Ok(())
    }

    /// Acknowledges a QoS 1 message (only needed with `manual_acks`).
    ///
    /// # Errors
    /// [`BusError::Closed`] when the connection has been shut down.
    pub async fn ack(&self, msg: &Message) -> Result<(), BusError> {
        self.client.ack(&msg.packet).await?;
        Ok(())
    }

    /// The current link state.
    pub fn state(&self) -> LinkState {
        *self.state.borrow()
    }

    /// The link state as a watch, for tasks that follow it (health endpoints).
    pub fn link_state(&self) -> watch::Receiver<LinkState> {
        self.state.clone()
    }

    /// Waits until connected and subscribed (or just connected, for a connection without
    /// subscriptions), or `timeout` passes. Returns whether it got there.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut rx = self.state.clone();
        let ready = |s: &LinkState| *s == LinkState::Subscribed;
        tokio::time::timeout(timeout, rx.wait_for(ready))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Sends DISCONNECT so the broker drops the session cleanly (no last will).
    pub async fn disconnect(&self) {
        if let Err(e) = self.client.disconnect().await {
            debug!(error = %e, "disconnect on a closed client");
        }
    }
}

/// A running connection: its client, its inbox and its poll task.
pub struct Connection {
    /// Sends publishes and acks.
    pub client: BusClient,
    /// Incoming publishes, in arrival order.
    pub inbox: mpsc::Receiver<Message>,
    /// The poll task; it ends after [`BusClient::disconnect`] or when the inbox is dropped.
    pub task: JoinHandle<()>,
}

impl Connection {
    /// Disconnects cleanly and waits (at most [`CLOSE_DRAIN`] and a second) for the poll task
    /// to finish.
    pub async fn close(self) {
        self.close_within(CLOSE_DRAIN + Duration::from_secs(1))
            .await;
    }

    /// Disconnects cleanly and waits at most `timeout` for the poll task to finish.
    ///
    /// The DISCONNECT is queued behind every publish already requested, so a poll task that
    /// ends in time has handed all of them to the broker. Give a long `timeout` when those
    /// publishes matter (a `--steps` run): under load, QoS 1 publishes beyond the in-flight
    /// window wait for acks, and aborting the task early would drop them.
    pub async fn close_within(self, timeout: Duration) {
        self.client.disconnect().await;
        drop(self.inbox);
        let mut task = self.task;
        if tokio::time::timeout(timeout, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// `filter` as a shared subscription of `group` (`$share/{group}/{filter}`), or `filter` itself
/// when `group` is `None`. In a shared subscription the broker hands each message to one
/// member of the group; which one is the broker's choice (EMQX `hash_topic` keeps a topic, so
/// a machine, on one member; Mosquitto and rumqttd take turns).
///
/// # Errors
/// [`ShareGroupError`] when the group name is empty or holds `/`, `+` or `#`.
pub fn shared_filter(group: Option<&str>, filter: String) -> Result<String, ShareGroupError> {
    match group {
        None => Ok(filter),
        Some(g) if g.is_empty() || g.contains(['/', '+', '#']) => {
            Err(ShareGroupError(g.to_owned()))
        }
        Some(g) => Ok(format!("$share/{g}/{filter}")),
    }
}

/// `{prefix}-{16 random hex digits}`: a client id for an instance with no name of its own
/// (a member of a share group), so that two members never take each other's session.
pub fn unique_client_id(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{prefix}-{:016x}", h.finish())
}

/// Opens a subscribing connection plus a second, publish-only connection (client id
/// `{client_id}-pub`, no last will): what a service that consumes and publishes needs.
///
/// With one connection, a service under overload deadlocks: the poll task waits for room in
/// the full inbox, the worker waits for room in the full request queue, and only the poll task
/// drains that queue. With two, the publisher's poll task never waits on the inbox, so the
/// worker always gets on and a slow service slows only its own socket read. Acks for manual
/// acknowledgement still go through the subscribing connection (its packet ids); they are
/// bounded by the broker's in-flight window.
pub fn connect_with_publisher(
    config: &BusConfig,
    subscriptions: Vec<Subscription>,
) -> (Connection, Connection) {
    let sub = connect(config, subscriptions);
    let mut pub_config = config.clone();
    pub_config.client_id = format!("{}-pub", config.client_id);
    pub_config.last_will = None;
    pub_config.manual_acks = false;
    pub_config.inbox_capacity = 16;
    (sub, connect(&pub_config, Vec::new()))
}

/// Opens a connection that subscribes to `subscriptions` on every connect.
///
/// Nothing is awaited here: the poll task connects in the background, retrying with backoff
/// until the broker is reachable. Use [`BusClient::wait_ready`] to wait for it.
pub fn connect(config: &BusConfig, subscriptions: Vec<Subscription>) -> Connection {
    let brokers: Vec<(MqttOptions, String)> = config
        .brokers
        .urls()
        .iter()
        // The URL's Display leaves the password out.
        .map(|u| (config.mqtt_options(u), u.to_string()))
        .collect();
    let (client, mut eventloop) = AsyncClient::new(brokers[0].0.clone(), config.request_capacity);
    let mut net = NetworkOptions::new();
    // Nagle's algorithm adds up to 40 ms per small publish on loopback; telemetry is latency-bound.
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(5);
    eventloop.set_network_options(net);
    let (tx, inbox) = mpsc::channel(config.inbox_capacity);
    let initial = if subscriptions.is_empty() {
        LinkState::Connected
    } else {
        LinkState::Down
    };
    let (state_tx, state) = watch::channel(initial);
    let task = tokio::spawn(poll_loop(
        eventloop,
        client.clone(),
        subscriptions,
        tx,
        state_tx,
        config.client_id.clone(),
        brokers,
    ));
    Connection {
        client: BusClient { client, state },
        inbox,
        task,
    }
}

async fn poll_loop(
    mut eventloop: EventLoop,
    client: AsyncClient,
    subscriptions: Vec<Subscription>,
    inbox: mpsc::Sender<Message>,
    state: watch::Sender<LinkState>,
    client_id: String,
    brokers: Vec<(MqttOptions, String)>,
) {
    let mut failover = Failover::new(brokers.len());
    let all_filters: Vec<SubscribeFilter> = subscriptions
        .iter()
        .map(|s| SubscribeFilter::new(s.filter.clone(), s.qos))
        .collect();
    // The filters of the SUBSCRIBE awaiting its SubAck (one at a time), and the task that
    // sends a refused part again later.
    let mut awaiting: Vec<SubscribeFilter> = Vec::new();
    let mut refusals = 0u32;
    let mut retry: Option<JoinHandle<()>> = None;
    let connected = if subscriptions.is_empty() {
        LinkState::Subscribed
    } else {
        LinkState::Connected
    };
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                info!(
                    client_id,
                    broker = brokers[failover.current()].1,
                    session_present = ack.session_present,
                    "connected to broker"
                );
                failover.connected();
                state.send_replace(connected);
                if let Some(r) = retry.take() {
                    r.abort();
                }
                if !all_filters.is_empty() {
                    awaiting.clone_from(&all_filters);
                    refusals = 0;
                    retry = Some(subscribe_later(
                        client.clone(),
                        awaiting.clone(),
                        Duration::ZERO,
                    ));
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = refused_filters(&awaiting, &ack.return_codes);
                if refused.is_empty() {
                    awaiting.clear();
                    state.send_replace(LinkState::Subscribed);
                } else {
                    // A broker may refuse a subscription it cannot serve for now (NATS while
                    // JetStream elects a new leader after a node died): staying "subscribed"
                    // would receive nothing, forever. Ask again, with the reconnect backoff.
                    refusals = refusals.saturating_add(1);
                    let wait = backoff_after(refusals);
                    let filters: Vec<&str> = refused.iter().map(|f| f.path.as_str()).collect();
                    warn!(
                        client_id,
                        ?filters,
                        retry_in_ms = wait.as_millis() as u64,
                        "broker refused subscriptions"
                    );
                    awaiting = refused;
                    retry = Some(subscribe_later(client.clone(), awaiting.clone(), wait));
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let msg = Message {
                    topic: p.topic.clone(),
                    payload: p.payload.clone(),
                    retain: p.retain,
                    packet: p,
                };
                if inbox.send(msg).await.is_err() {
                    debug!(client_id, "inbox dropped; poll task ends");
                    return;
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                state.send_replace(LinkState::Down);
                // Read until the broker closes the connection. Dropping the socket with the
                // broker's last acks still unread makes the kernel answer with a RST, and the
                // broker's kernel then discards whatever it had not read yet: the publishes
                // written just before the DISCONNECT would be lost.
                let drain = async { while eventloop.poll().await.is_ok() {} };
                if tokio::time::timeout(CLOSE_DRAIN, drain).await.is_err() {
                    debug!(
                        client_id,
                        "broker kept the connection open after DISCONNECT"
                    );
                }
                debug!(client_id, "disconnected");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                state.send_replace(LinkState::Down);
                if let Some(r) = retry.take() {
                    r.abort();
                }
                if inbox.is_closed() {
                    return;
                }
                let broker = &brokers[failover.current()].1;
                let wait = failover.failed();
                let next = &brokers[failover.current()];
                warn!(client_id, broker, error = %e, retry_in_ms = wait.as_millis() as u64, next = next.1, "broker connection lost");
                if brokers.len() > 1 {
                    // rumqttc connects to whatever its options name. What it keeps of the
                    // session (unacknowledged QoS 1 publishes, queued requests) is resent
                    // there when that node resumes the session, and dropped by rumqttc when
                    // it starts a new one (clean sessions: every service but the alerter).
                    eventloop.mqtt_options = next.0.clone();
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Queues a SUBSCRIBE for `filters` after `wait`. Subscribing from the poll task could deadlock
/// on a full request queue, so a short-lived task queues it while the poll task keeps polling.
fn subscribe_later(
    client: AsyncClient,
    filters: Vec<SubscribeFilter>,
    wait: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        if let Err(e) = client.subscribe_many(filters).await {
            warn!(error = %e, "could not queue subscribe");
        }
    })
}

/// The filters of `sent` whose return code in a SubAck is a failure (codes come in the order
/// of the filters). A SubAck that does not answer `sent` (another length) refuses nothing.
pub fn refused_filters(
    sent: &[SubscribeFilter],
    codes: &[SubscribeReasonCode],
) -> Vec<SubscribeFilter> {
    if sent.len() != codes.len() {
        return Vec::new();
    }
    sent.iter()
        .zip(codes)
        .filter(|(_, c)| matches!(c, SubscribeReasonCode::Failure))
        .map(|(f, _)| f.clone())
        .collect()
}

/// The delay before attempt `n` (1-based) of a series: [`MIN_BACKOFF`], doubled each time, at
/// most [`MAX_BACKOFF`].
fn backoff_after(n: u32) -> Duration {
    let mut wait = MIN_BACKOFF;
    for _ in 1..n.min(16) {
        wait = next_backoff(wait);
    }
    wait
}

/// The reconnect delay after `current`: doubled, at most [`MAX_BACKOFF`].
pub fn next_backoff(current: Duration) -> Duration {
    (current * 2).min(MAX_BACKOFF)
}

/// Where a connection to several brokers goes after a failure, and how long it waits first.
///
/// Every failure (a link that drops, a connect that is refused or times out) moves on to the
/// next broker, so a dead node costs one attempt, not a backoff series. The delay is the
/// single-broker backoff counted in rounds: [`MIN_BACKOFF`] for each broker of the first round,
/// doubled for each round after that, at most [`MAX_BACKOFF`]; a ConnAck starts over. With one
/// broker that is exactly the old series (100 ms, 200 ms, 400 ms, ... 5 s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    brokers: usize,
    current: usize,
    failures: u32,
}

impl Failover {
    /// A connection to `brokers` brokers (at least one), starting on the first.
    pub fn new(brokers: usize) -> Self {
        Self {
            brokers: brokers.max(1),
            current: 0,
            failures: 0,
        }
    }

    /// Index of the broker the connection is on, or tries next.
    pub fn current(&self) -> usize {
        self.current
    }

    /// The broker accepted the connection: the next failure waits the shortest delay again.
    pub fn connected(&mut self) {
        self.failures = 0;
    }

    /// The link failed: moves to the next broker and returns how long to wait before trying it.
    pub fn failed(&mut self) -> Duration {
        let rounds = self.failures / self.brokers as u32;
        self.failures = self.failures.saturating_add(1);
        self.current = (self.current + 1) % self.brokers;
        backoff_after(rounds.saturating_add(1))
    }
}

/// Converts a QoS number (0, 1, 2) from configuration.
///
/// # Errors
/// [`QosError`] when the number is not 0, 1 or 2.
pub fn qos_from_u8(q: u8) -> Result<QoS, QosError> {
    rumqttc::qos(q).map_err(|_| QosError(q))
}

#[cfg(test)]
mod share_tests {
    use super::*;

    #[test]
    fn reconnect_backoff_doubles_from_the_minimum_up_to_the_cap() {
        let mut d = MIN_BACKOFF;
        let mut seen = vec![d];
        for _ in 0..8 {
            d = next_backoff(d);
            seen.push(d);
        }
        let ms: Vec<u128> = seen.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    }

    fn run(f: &mut Failover, n: usize) -> Vec<(usize, u128)> {
        (0..n)
            .map(|_| {
                let wait = f.failed().as_millis();
                (f.current(), wait)
            })
            .collect()
    }

    #[test]
    fn one_broker_fails_over_to_itself_with_the_old_backoff() {
        let mut f = Failover::new(1);
        let got = run(&mut f, 8);
        assert!(got.iter().all(|&(i, _)| i == 0));
        let ms: Vec<u128> = got.iter().map(|&(_, w)| w).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }

    #[test]
    fn several_brokers_are_tried_in_turn_and_the_backoff_grows_per_round() {
        let mut f = Failover::new(3);
        assert_eq!(f.current(), 0);
        assert_eq!(
            run(&mut f, 7),
            [
                (1, 100),
                (2, 100),
                (0, 100),
                (1, 200),
                (2, 200),
                (0, 200),
                (1, 400)
            ]
        );
        // A ConnAck on broker 1: its link failing later costs one short wait, then broker 2.
        f.connected();
        assert_eq!(run(&mut f, 2), [(2, 100), (0, 100)]);
        let mut long = Failover::new(3);
        assert!(run(&mut long, 1000).iter().all(|&(_, w)| w <= 5000));
        assert_eq!(long.failed(), MAX_BACKOFF);
    }

    #[test]
    fn refused_subscriptions_are_picked_out_of_a_suback() {
        let sent = vec![
            SubscribeFilter::new("a/#".into(), QoS::AtLeastOnce),
            SubscribeFilter::new("b/+".into(), QoS::AtMostOnce),
        ];
        let ok = SubscribeReasonCode::Success(QoS::AtLeastOnce);
        assert!(refused_filters(&sent, &[ok, ok]).is_empty());
        let refused = refused_filters(&sent, &[ok, SubscribeReasonCode::Failure]);
        assert_eq!(refused, [sent[1].clone()]);
        assert!(
            refused_filters(&sent, &[SubscribeReasonCode::Failure]).is_empty(),
            "a SubAck for another SUBSCRIBE"
        );
        let ms: Vec<u128> = (1..=8).map(|n| backoff_after(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }

    #[test]
    fn shared_filters_are_built_and_bad_groups_refused() {
        let f = "dtwin/v1/machines/+/telemetry".to_owned();
        assert_eq!(shared_filter(None, f.clone()).unwrap(), f);
        assert_eq!(
            shared_filter(Some("feature"), f.clone()).unwrap(),
            "$share/feature/dtwin/v1/machines/+/telemetry"
        );
        for bad in ["", "a/b", "a+", "#"] {
            assert!(shared_filter(Some(bad), f.clone()).is_err(), "{bad:?}");
        }
        let (a, b) = (unique_client_id("x"), unique_client_id("x"));
        assert!(a.starts_with("x-") && a.len() == 18 && a != b, "{a} {b}");
    }
}
