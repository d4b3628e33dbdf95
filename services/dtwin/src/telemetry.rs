//! Tracing setup: `RUST_LOG` with a default, human-readable or JSON lines.

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable, for terminals.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. The embedded rumqttd logs every connection, and every
/// normal disconnect as an ERROR, so it is silenced unless `RUST_LOG` asks for it (for example
/// `RUST_LOG=info,rumqttd=info`); `up` checks the broker's port itself. Its WARN events still
/// reach [`dtwin_broker::skips`], which counts and logs the QoS 1 messages it skips for a
/// stalled subscriber.
pub fn init(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,rumqttd=off,rumqttc=warn"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Pretty => fmt.compact().with_filter(filter).boxed(),
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
    };
    // rumqttd's WARN events only, decided once per callsite (no cost for its trace events).
    let skips = BrokerSkips.with_filter(
        tracing_subscriber::filter::Targets::new().with_target("rumqttd", tracing::Level::WARN),
    );
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(skips)
        .try_init();
}

/// Hands rumqttd's WARN events to [`dtwin_broker::skips::observe`].
struct BrokerSkips;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for BrokerSkips {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        dtwin_broker::skips::observe(event);
    }
}
