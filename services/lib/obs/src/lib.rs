//! Observability for every dtwin service: a Prometheus metrics registry and one small HTTP
//! endpoint serving it.
//!
//! A service builds its metrics into a [`Registry`] at start (counters, gauges and histograms
//! from [`prometheus_client`] are cheap atomics, cloned into whatever task updates them), then
//! hands the registry to [`serve`], which answers
//!
//! - `GET /metrics`: every metric as Prometheus/OpenMetrics text;
//! - `GET /healthz`: `200 ok` while the service reports itself healthy ([`Health`]), else
//!   `503` with the reason.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use dtwin_obs::{prometheus_client::metrics::counter::Counter, Registry};
//! let mut registry = Registry::with_prefix("dtwin_example");
//! let handled = Counter::<u64>::default();
//! registry.register("messages_in", "Messages received", handled.clone());
//! handled.inc();
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! dtwin_obs::serve("127.0.0.1:9464".parse()?, registry, shutdown).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`Health`]: a shared healthy/unhealthy flag with a reason; [`Health::follow`] keeps it in
//!   step with a watched state (a broker link).
//! - [`Exposition`]: the registries (and healths) one endpoint serves: one service's, or
//!   several services' in one process (`dtwin up`).
//! - [`render`]: the registry as text; [`app`]: the axum router (tested with `oneshot`).
//! - [`serve`], [`bind`], [`serve_on`] and [`serve_exposition`]: the HTTP server, stopped by a
//!   cancellation token.
//! - [`latency_buckets`]: histogram buckets for per-message processing times; [`CounterVec`],
//!   [`GaugeVec`] and [`label`] for labelled metrics.

pub use prometheus_client;
pub use prometheus_client::registry::Registry;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A metric's labels, e.g. `[("reason", "not_json")]`.
pub type Labels = Vec<(String, String)>;

/// Counters by label set (e.g. rejected messages by reason).
pub type CounterVec = prometheus_client::metrics::family::Family<
    Labels,
    prometheus_client::metrics::counter::Counter,
>;

/// Gauges by label set (e.g. queue depth by worker).
pub type GaugeVec =
    prometheus_client::metrics::family::Family<Labels, prometheus_client::metrics::gauge::Gauge>;

/// One label.
pub fn label(key: &str, value: impl Into<String>) -> Labels {
    vec![(key.to_owned(), value.into())]
}

/// Content type of `/metrics` (OpenMetrics text, which Prometheus scrapes natively).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether the service is healthy, shared between the service and `/healthz`.
#[derive(Debug, Clone, Default)]
pub struct Health {
    problem: Arc<Mutex<Option<String>>>,
}

impl Health {
    /// A healthy service.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the service healthy.
    pub fn set_healthy(&self) {
        *self.lock() = None;
    }

    /// Marks the service unhealthy, saying why.
    pub fn set_unhealthy(&self, why: impl Into<String>) {
        *self.lock() = Some(why.into());
    }

    /// `Ok` when healthy, the reason otherwise.
    ///
    /// # Errors
    /// The reason given to [`Health::set_unhealthy`].
    pub fn check(&self) -> Result<(), String> {
        match &*self.lock() {
            None => Ok(()),
            Some(why) => Err(why.clone()),
        }
    }

    /// Keeps this flag in step with `state` (e.g. a broker link): `check` says whether a state
    /// is healthy. Returns when `shutdown` fires or the state's sender is gone (then the
    /// service is marked unhealthy: nothing reports its state any more).
    pub async fn follow<T, E: std::fmt::Display>(
        self,
        mut state: tokio::sync::watch::Receiver<T>,
        check: impl Fn(&T) -> Result<(), E>,
        shutdown: CancellationToken,
    ) {
        loop {
            let verdict = check(&state.borrow_and_update());
            match verdict {
                Ok(()) => self.set_healthy(),
                Err(why) => self.set_unhealthy(why.to_string()),
            }
            tokio::select! {
                changed = state.changed() => if changed.is_err() {
                    self.set_unhealthy("state no longer reported");
                    return;
                },
                () = shutdown.cancelled() => return,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A panic while holding this lock cannot leave the Option half-written; keep serving.
        self.problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Histogram buckets for per-message processing latency: 10 µs to ~1.3 s, doubling.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(1e-5, 2.0, 18)
}

/// The registry as Prometheus/OpenMetrics text.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String never fails; an encoding error would be a metric with an invalid
    // name, which registration already rules out.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    out
}

/// What one `/metrics` + `/healthz` endpoint serves: one or more registries, each with the
/// [`Health`] of the service that owns it. Cheap to clone; services [`add`](Self::add) theirs
/// when they start, so `dtwin up` can serve every in-process service on one port.
#[derive(Clone, Default)]
pub struct Exposition {
    parts: Arc<Mutex<Vec<Part>>>,
}

struct Part {
    name: String,
    registry: Arc<Registry>,
    health: Health,
}

impl std::fmt::Debug for Exposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.lock().iter().map(|p| p.name.clone()).collect();
        f.debug_struct("Exposition").field("parts", &names).finish()
    }
}

impl Exposition {
    /// An endpoint with nothing to serve yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a service's registry and health (`name` prefixes its unhealthy reasons).
    pub fn add(&self, name: &str, registry: Arc<Registry>, health: Health) {
        self.lock().push(Part {
            name: name.to_owned(),
            registry,
            health,
        });
    }

    /// Every registry as one OpenMetrics text (one `# EOF` at the end).
    pub fn render(&self) -> String {
        let parts = self.lock();
        let mut out = String::new();
        for p in parts.iter() {
            let text = render(&p.registry);
            out.push_str(text.strip_suffix("# EOF\n").unwrap_or(&text));
        }
        out.push_str("# EOF\n");
        out
    }

    /// `Ok` when every service is healthy, else the first reason as `service: reason`.
    ///
    /// # Errors
    /// An unhealthy service's reason.
    pub fn check(&self) -> Result<(), String> {
        let parts = self.lock();
        for p in parts.iter() {
            p.health
                .check()
                .map_err(|why| format!("{}: {why}", p.name))?;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Part>> {
        // Pushing a Part cannot be left half done by a panic; keep serving.
        self.parts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The router: `/metrics` and `/healthz` for one registry.
pub fn app(registry: Arc<Registry>, health: Health) -> Router {
    let exposition = Exposition::new();
    exposition.add("service", registry, health);
    app_for(exposition)
}

/// The router for an [`Exposition`].
pub fn app_for(exposition: Exposition) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(exposition)
}

async fn metrics(State(s): State<Exposition>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], s.render())
}

async fn healthz(State(s): State<Exposition>) -> impl IntoResponse {
    match s.check() {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {why}\n"),
        ),
    }
}

/// Why the metrics endpoint could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ObsError {
    /// The address is taken or not available.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The HTTP server failed while serving.
    #[error("metrics server on {addr}: {source}")]
    Serve {
        /// The address it served on.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// The bound listener has no local address.
    #[error("metrics listener has no address: {0}")]
    Address(std::io::Error),
}

/// Binds the metrics port.
///
/// # Errors
/// [`ObsError::Bind`]: the address is taken or not available.
pub async fn bind(listen: SocketAddr) -> Result<TcpListener, ObsError> {
    TcpListener::bind(listen)
        .await
        .map_err(|source| ObsError::Bind {
            addr: listen,
            source,
        })
}

/// Serves `/metrics` and `/healthz` on `listen` until `shutdown` fires (always healthy).
///
/// # Errors
/// The address cannot be bound, or the server fails.
pub async fn serve(
    listen: SocketAddr,
    registry: Registry,
    shutdown: CancellationToken,
) -> Result<(), ObsError> {
    let listener = bind(listen).await?;
    serve_on(listener, Arc::new(registry), Health::new(), shutdown).await
}

/// How a service exposes its metrics and health: added to `shared` (one endpoint for every
/// in-process service, as in `dtwin up`), else served on `listen`, else not at all. Binds at
/// once, so a taken port is an error at start; returns the server for the caller to spawn.
///
/// # Errors
/// `listen` cannot be bound.
pub async fn expose(
    name: &str,
    registry: Registry,
    health: Health,
    shared: Option<&Exposition>,
    listen: Option<SocketAddr>,
    shutdown: CancellationToken,
) -> Result<
    Option<impl std::future::Future<Output = Result<(), ObsError>> + Send + 'static>,
    ObsError,
> {
    let registry = Arc::new(registry);
    if let Some(shared) = shared {
        shared.add(name, registry, health);
        return Ok(None);
    }
    let Some(listen) = listen else {
        return Ok(None);
    };
    let listener = bind(listen).await?;
    Ok(Some(serve_on(listener, registry, health, shutdown)))
}

/// Serves on an already bound listener, with a [`Health`] the service updates.
///
/// # Errors
/// The server fails.
pub async fn serve_on(
    listener: TcpListener,
    registry: Arc<Registry>,
    health: Health,
    shutdown: CancellationToken,
) -> Result<(), ObsError> {
    let exposition = Exposition::new();
    exposition.add("service", registry, health);
    serve_exposition(listener, exposition, shutdown).await
}

/// Serves an [`Exposition`] (several services on one port) on a bound listener.
///
/// # Errors
/// The server fails.
pub async fn serve_exposition(
    listener: TcpListener,
    exposition: Exposition,
    shutdown: CancellationToken,
) -> Result<(), ObsError> {
    let addr = listener.local_addr().map_err(ObsError::Address)?;
    tracing::info!(%addr, "metrics on http://{addr}/metrics");
    axum::serve(listener, app_for(exposition))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|source| ObsError::Serve { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::histogram::Histogram;
    use tower::ServiceExt;

    fn registry() -> (Registry, Counter, CounterVec) {
        let mut r = Registry::with_prefix("dtwin_test");
        let c = Counter::default();
        r.register("messages_in", "Messages received", c.clone());
        let f = CounterVec::default();
        r.register("rejected", "Rejected by reason", f.clone());
        let h = Histogram::new(latency_buckets());
        r.register("processing_seconds", "Latency", h.clone());
        h.observe(0.002);
        (r, c, f)
    }

    async fn get(app: Router, path: &str) -> (StatusCode, String, String) {
        let res = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let ct = res
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn metrics_and_health_are_served() {
        let (r, c, f) = registry();
        c.inc_by(3);
        f.get_or_create(&label("reason", "not_json")).inc();
        let health = Health::new();
        let app = app(Arc::new(r), health.clone());
        let (status, ct, body) = get(app.clone(), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct, METRICS_CONTENT_TYPE);
        assert!(body.contains("dtwin_test_messages_in_total 3"), "{body}");
        assert!(
            body.contains("dtwin_test_rejected_total{reason=\"not_json\"} 1"),
            "{body}"
        );
        assert!(body.contains("dtwin_test_processing_seconds_bucket{le=\"0.00256\"} 1"));
        assert!(body.ends_with("# EOF\n"));
        assert_eq!(get(app.clone(), "/healthz").await.0, StatusCode::OK);
        health.set_unhealthy("broker unreachable");
        let (status, _, body) = get(app.clone(), "/healthz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("broker unreachable"));
        health.set_healthy();
        assert_eq!(get(app.clone(), "/healthz").await.0, StatusCode::OK);
        assert_eq!(get(app, "/nope").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn an_exposition_serves_several_registries_and_their_health() {
        let (a, ca, _) = registry();
        let mut b = Registry::with_prefix("dtwin_other");
        let cb = Counter::<u64>::default();
        b.register("messages_out", "Out", cb.clone());
        ca.inc();
        cb.inc_by(2);
        let (ha, hb) = (Health::new(), Health::new());
        let exposition = Exposition::new();
        exposition.add("first", Arc::new(a), ha.clone());
        exposition.add("second", Arc::new(b), hb.clone());
        let app = app_for(exposition);
        let (status, _, body) = get(app.clone(), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("dtwin_test_messages_in_total 1"), "{body}");
        assert!(body.contains("dtwin_other_messages_out_total 2"), "{body}");
        assert_eq!(body.matches("# EOF").count(), 1, "{body}");
        assert!(body.ends_with("# EOF\n"));
        assert_eq!(get(app.clone(), "/healthz").await.0, StatusCode::OK);
        hb.set_unhealthy("broker link Down");
        let (status, _, body) = get(app, "/healthz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("second: broker link Down"), "{body}");
    }

    #[tokio::test]
    async fn health_follows_a_watched_state() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let health = Health::new();
        let stop = CancellationToken::new();
        let task = tokio::spawn(health.clone().follow(
            rx,
            |up: &bool| if *up { Ok(()) } else { Err("down") },
            stop.clone(),
        ));
        let settle = || tokio::time::sleep(std::time::Duration::from_millis(20));
        settle().await;
        assert_eq!(health.check(), Err("down".into()));
        tx.send_replace(true);
        settle().await;
        assert_eq!(health.check(), Ok(()));
        drop(tx);
        task.await.unwrap();
        assert!(health.check().is_err(), "no reporter left: unhealthy");
        stop.cancel();
    }

    #[tokio::test]
    async fn serve_answers_over_tcp_and_stops_on_shutdown() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (r, c, _) = registry();
        c.inc();
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve_on(
            listener,
            Arc::new(r),
            Health::new(),
            shutdown.clone(),
        ));
        let mut text = String::new();
        for _ in 0..100 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .await
                    .unwrap();
                s.read_to_string(&mut text).await.unwrap();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("dtwin_test_messages_in_total 1"), "{text}");
        // A second server on the same port is a clear error naming it.
        let again = serve(addr, Registry::default(), CancellationToken::new()).await;
        assert!(again.unwrap_err().to_string().contains(&addr.to_string()));
        shutdown.cancel();
        server.await.unwrap().unwrap();
    }
}
