//! The shape every dtwin service shares, written once.
//!
//! A service is three things: its own config (beside a [`CommonConfig`]), a pure core (bytes
//! and a clock in, publishes out, no I/O), and a short loop that moves messages between a
//! [`Runtime`] and the core. The runtime owns everything else: validating the common flags,
//! the metrics/health endpoint, the broker connections (a second one for publishing, so a
//! full inbox never blocks the service's own publishes), the instance's announcement and last
//! will, readiness, and a clean close.
//!
//! ```text
//! CommonConfig + Spec ──Runtime::start──▶ Runtime { topics, node, inbox, publisher, health }
//!                                           │ ready()  ──▶ Ready (up and tests wait on it)
//!                                           │ the service's loop: inbox → core → publisher
//!                                           └ close()  ──▶ DISCONNECT, drained, endpoint stopped
//! ```
//!
//! # Layout
//! - [`config`]: [`CommonConfig`] and the one client-id rule.
//! - [`ready`]: [`Ready`], connected and subscribed, to wait on instead of sleeping.
//! - this file: [`Spec`] (what a service needs), [`Runtime`] (what it gets), [`Service`] (what
//!   `up` and the tests start) and [`start_ready`].

pub mod config;
pub mod ready;

pub use config::CommonConfig;
pub use ready::{NotReady, Ready};

use dtwin_bus::{BusClient, BusConfig, BusError, Connection, Message, QoS, Subscription};
use dtwin_cluster::{InstanceNameError, Node};
use dtwin_schema::Topics;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long [`Runtime::close`] waits for both connections to hand over what they hold.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(4);

/// Why a service could not start, or its runtime failed under it.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// `--share-group` and `--instance` both given.
    #[error("--share-group and --instance are two ways to scale out; use one")]
    ShareGroupAndInstance,
    /// A share group name that cannot be used in a topic filter.
    #[error(transparent)]
    ShareGroup(#[from] dtwin_bus::ShareGroupError),
    /// An instance name that cannot be used in topics.
    #[error(transparent)]
    InstanceName(#[from] InstanceNameError),
    /// The metrics endpoint could not be bound.
    #[error(transparent)]
    Metrics(#[from] dtwin_obs::ObsError),
    /// The connection closed under a publish or ack.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// What a service needs from the runtime.
#[derive(Debug)]
pub struct Spec {
    service: &'static str,
    registry: dtwin_obs::Registry,
    subscriptions: Vec<(String, QoS, Sharing)>,
    persistent: bool,
    publisher: bool,
    last_will: Option<(String, Vec<u8>)>,
    inbox_capacity: usize,
}

/// Whether a subscription is the service's shared input, and when it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sharing {
    /// Always, as given.
    Plain,
    /// The input instances share: `$share/{group}/...` under a share group.
    Shared,
    /// Only when this instance is one of several (`--instance`).
    WhenClustered,
}

impl Spec {
    /// A service named `service` (its dead-letter, metrics, client-id and cluster name) with
    /// its metrics in `registry`.
    pub fn new(service: &'static str, registry: dtwin_obs::Registry) -> Self {
        Self {
            service,
            registry,
            subscriptions: Vec::new(),
            persistent: false,
            publisher: false,
            last_will: None,
            inbox_capacity: dtwin_bus::DEFAULT_INBOX_CAPACITY,
        }
    }

    /// Incoming publishes buffered before the socket read waits (default
    /// `dtwin_bus::DEFAULT_INBOX_CAPACITY`).
    #[must_use]
    pub fn inbox_capacity(mut self, capacity: usize) -> Self {
        self.inbox_capacity = capacity;
        self
    }

    /// The retained message the broker publishes if this connection dies, for a service that
    /// is not one of several instances (those announce themselves: their will is the
    /// instance's `offline`).
    #[must_use]
    pub fn last_will(mut self, topic: String, payload: Vec<u8>) -> Self {
        self.last_will = Some((topic, payload));
        self
    }

    /// Subscribes to `filter` at `qos` on every (re)connect.
    #[must_use]
    pub fn subscribe(mut self, filter: String, qos: QoS) -> Self {
        self.subscriptions.push((filter, qos, Sharing::Plain));
        self
    }

    /// Subscribes to the service's input, which instances in a share group split between them.
    #[must_use]
    pub fn subscribe_shared(mut self, filter: String, qos: QoS) -> Self {
        self.subscriptions.push((filter, qos, Sharing::Shared));
        self
    }

    /// Subscribes to `filter` only when this instance is one of several (`--instance`).
    #[must_use]
    pub fn subscribe_when_clustered(mut self, filter: String, qos: QoS) -> Self {
        self.subscriptions
            .push((filter, qos, Sharing::WhenClustered));
        self
    }

    /// A persistent session (clean session off, fixed client id) with manual acks: messages
    /// published while the service is away are delivered when it returns, and a message is
    /// acknowledged only once the service has done its work ([`BusClient::ack`]).
    #[must_use]
    pub fn persistent(mut self) -> Self {
        self.persistent = true;
        self
    }

    /// Publishes on a second connection (see `dtwin_bus::connect_with_publisher`): what a
    /// service that consumes and publishes needs so overload cannot deadlock it.
    #[must_use]
    pub fn with_publisher(mut self) -> Self {
        self.publisher = true;
        self
    }
}

/// A started service's connections and endpoint. Fields are public so a service loop can
/// borrow them separately (`select!` on `inbox` while publishing through `publisher`).
pub struct Runtime {
    /// The service's name.
    pub service: &'static str,
    /// The MQTT client id of the subscribing connection (the publishing one adds `-pub`).
    pub client_id: String,
    /// Typed topics under the configured prefix.
    pub topics: Topics,
    /// This instance's view of its peers and which machines it owns.
    pub node: Node,
    /// Incoming publishes, in arrival order (bounded: a slow service slows its socket read).
    pub inbox: mpsc::Receiver<Message>,
    /// The subscribing connection's client: acks go through it.
    pub client: BusClient,
    /// Where the service publishes (the second connection, or `client` without one).
    pub publisher: BusClient,
    /// The health `/healthz` reports; it follows the subscribing link.
    pub health: dtwin_obs::Health,
    broker: String,
    sub_task: JoinHandle<()>,
    pub_conn: Option<Connection>,
    server: Option<JoinHandle<()>>,
    stop: CancellationToken,
}

impl Runtime {
    /// Validates `common`, binds the metrics endpoint, opens the connections with the
    /// instance's last will and announces the instance. Nothing waits for the broker: the
    /// connections retry in the background; [`Runtime::ready`] says when they are up.
    ///
    /// # Errors
    /// Bad scale-out settings ([`RuntimeError::ShareGroupAndInstance`],
    /// [`RuntimeError::ShareGroup`], [`RuntimeError::InstanceName`]) or a metrics address
    /// that cannot be bound.
    pub async fn start(common: &CommonConfig, spec: Spec) -> Result<Self, RuntimeError> {
        if common.share_group.is_some() && common.instance.is_some() {
            return Err(RuntimeError::ShareGroupAndInstance);
        }
        let topics = Topics::new(&common.prefix);
        let node = Node::new(&common.prefix, spec.service, common.instance.as_deref());
        let last_will = node.last_will()?.or(spec.last_will);
        let online = node.online()?;
        let mut subs = Vec::with_capacity(spec.subscriptions.len() + 1);
        for (filter, qos, sharing) in spec.subscriptions {
            match sharing {
                Sharing::Plain => subs.push(Subscription::new(filter, qos)),
                Sharing::Shared => subs.push(Subscription::new(
                    dtwin_bus::shared_filter(common.share_group.as_deref(), filter)?,
                    qos,
                )),
                Sharing::WhenClustered if node.membership().is_clustered() => {
                    subs.push(Subscription::new(filter, qos));
                }
                Sharing::WhenClustered => {}
            }
        }
        if let Some(filter) = node.subscription() {
            subs.push(Subscription::new(filter, QoS::AtLeastOnce));
        }

        let stop = CancellationToken::new();
        let health = dtwin_obs::Health::new();
        let server = dtwin_obs::expose(
            spec.service,
            spec.registry,
            health.clone(),
            common.metrics_shared.as_ref(),
            common.metrics_listen,
            stop.clone(),
        )
        .await?
        .map(|server| {
            let service = spec.service;
            tokio::spawn(async move {
                if let Err(e) = server.await {
                    warn!(service, error = %e, "metrics endpoint stopped");
                }
            })
        });

        let client_id = common.client_id(spec.service);
        let mut bus = BusConfig::new(common.broker.clone(), &client_id);
        bus.last_will = last_will;
        bus.inbox_capacity = spec.inbox_capacity;
        if spec.persistent {
            bus.clean_session = false;
            bus.manual_acks = true;
        }
        let (conn, pub_conn) = if spec.publisher {
            let (c, p) = dtwin_bus::connect_with_publisher(&bus, subs);
            (c, Some(p))
        } else {
            (dtwin_bus::connect(&bus, subs), None)
        };
        let Connection {
            client,
            inbox,
            task: sub_task,
        } = conn;
        tokio::spawn(health.clone().follow(
            client.link_state(),
            dtwin_bus::LinkState::check_subscribed,
            stop.clone(),
        ));
        if let Some((topic, payload)) = online {
            // Queued now, sent once connected; retained, so late peers see it too.
            client
                .publish(topic, QoS::AtLeastOnce, true, payload)
                .await?;
        }
        let publisher = pub_conn
            .as_ref()
            .map_or_else(|| client.clone(), |p| p.client.clone());
        Ok(Self {
            service: spec.service,
            client_id,
            topics,
            node,
            inbox,
            client,
            publisher,
            health,
            broker: common.broker.to_string(),
            sub_task,
            pub_conn,
            server,
            stop,
        })
    }

    /// Connected and subscribed on every connection.
    pub fn ready(&self) -> Ready {
        let mut links = vec![self.client.link_state()];
        links.extend(self.pub_conn.as_ref().map(|p| p.client.link_state()));
        Ready::new(links)
    }

    /// The broker's address, for log lines (the password left out).
    pub fn broker(&self) -> &str {
        &self.broker
    }

    /// Logs that the service has started, with `detail` (its own settings worth a line).
    pub fn log_started(&self, detail: &str) {
        info!(
            service = self.service,
            broker = %self.broker,
            instance = self.node.membership().is_clustered().then(|| self.node.membership().me()),
            detail,
            "service started"
        );
    }

    /// Disconnects both connections (every publish already requested goes out first) and
    /// stops the metrics endpoint, waiting at most [`CLOSE_TIMEOUT`].
    pub async fn close(self) {
        let sub = Connection {
            client: self.client,
            inbox: self.inbox,
            task: self.sub_task,
        };
        let close = async {
            match self.pub_conn {
                Some(p) => {
                    tokio::join!(p.close(), sub.close());
                }
                None => sub.close().await,
            }
        };
        if tokio::time::timeout(CLOSE_TIMEOUT, close).await.is_err() {
            warn!(service = self.service, "did not disconnect in time");
        }
        self.stop.cancel();
        if let Some(server) = self.server {
            let _ = tokio::time::timeout(Duration::from_millis(500), server).await;
        }
    }
}

/// A built service: connected (or connecting), subscribed (or subscribing), its endpoint
/// listening; what `dtwin up` and the tests start.
pub trait Service: Send + Sized + 'static {
    /// Why it stopped early.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Its readiness: wait on this instead of sleeping before feeding it input.
    fn ready(&self) -> Ready;

    /// Runs until `shutdown` fires (or the service ends on its own), then closes cleanly.
    fn serve(
        self,
        shutdown: CancellationToken,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Spawns `service` and waits (at most `timeout`) until it is ready.
///
/// # Errors
/// [`NotReady`] when it is not ready in time (the task keeps running; cancel `shutdown` to
/// stop it).
pub async fn start_ready<S: Service>(
    service: S,
    shutdown: CancellationToken,
    timeout: Duration,
) -> Result<JoinHandle<Result<(), S::Error>>, NotReady> {
    let ready = service.ready();
    let task = tokio::spawn(service.serve(shutdown));
    ready.wait_for(timeout).await?;
    Ok(task)
}
