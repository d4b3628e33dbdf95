//! The alerter's flags (`dtwin alerter`, and the alerter part of `dtwin up`) and their
//! conversion into [`dtwin_alerter::AlerterConfig`].

use anyhow::Context;
use clap::Args;
use dtwin_runtime::CommonConfig;
use std::path::PathBuf;

/// `dtwin alerter`: the alerter flags plus its metrics endpoint.
#[derive(Debug, Clone, Args)]
pub struct AlerterServiceOpts {
    /// Mail, lifecycle, routing and spool.
    #[command(flatten)]
    pub alerter: AlerterOpts,
    /// Serve Prometheus /metrics and /healthz on this address (off when unset). /healthz
    /// follows the broker link; an SMTP outage shows as dtwin_alerter_smtp_up 0.
    #[arg(long, env = "DTWIN_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Scale-out: this instance's name among several (machines are shared out by rendezvous
    /// hashing over the live instances; a machine that moves takes its open alert along via
    /// the retained {prefix}/alert-state topics); unset: the only instance. Every instance
    /// needs its own --outbox/--spool.
    #[arg(long, env = "DTWIN_INSTANCE")]
    pub instance: Option<String>,
    /// Machine profiles (TOML) besides milling: e-mails list readings with their labels and
    /// units; repeat or comma-separate (`dtwin up` passes the feature service's).
    #[arg(
        long = "profile",
        env = "DTWIN_PROFILES",
        value_delimiter = ',',
        value_name = "PROFILE.toml"
    )]
    pub profiles: Vec<PathBuf>,
}

impl super::ServiceOpts for AlerterServiceOpts {
    type Config = dtwin_alerter::AlerterConfig;

    fn config(&self, mut common: CommonConfig) -> anyhow::Result<Self::Config> {
        common.metrics_listen = self.metrics_listen;
        common.instance = self.instance.clone();
        let mut c = self.alerter.config(common)?;
        c.profiles = dtwin_feature::load_profiles(&self.profiles)?;
        Ok(c)
    }
}

/// Alerter flags.
#[derive(Debug, Clone, Args)]
pub struct AlerterOpts {
    /// Folder the alert e-mails are written to as .eml files.
    #[arg(long, env = "DTWIN_OUTBOX", default_value = "outbox")]
    pub outbox: PathBuf,
    /// Recipients of alert e-mails (comma-separated).
    #[arg(
        long,
        env = "DTWIN_MAIL_TO",
        default_value = "maintenance@localhost",
        value_delimiter = ','
    )]
    pub mail_to: Vec<dtwin_alerter::Mailbox>,
    /// Sender of alert e-mails.
    #[arg(
        long,
        env = "DTWIN_MAIL_FROM",
        default_value = "dtwin <dtwin@localhost>"
    )]
    pub mail_from: dtwin_alerter::Mailbox,
    /// The alerter's durable spool (every notification waits here until the mail server
    /// accepted it; it also remembers which alerts are firing across restarts). Default:
    /// `.spool` inside --outbox, so a volume for the outbox keeps it too.
    #[arg(long, env = "DTWIN_SPOOL")]
    pub spool: Option<PathBuf>,
    /// SMTP server: smtp://host:port (plain), smtp://user:pass@host:587?tls=required
    /// (STARTTLS), smtps://user:pass@host:465 (implicit TLS). Unset: .eml files in --outbox.
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Routing file (TOML): lines, criticality, recipients and webhook channels (Slack, Teams,
    /// PagerDuty, Alertmanager format) by machine, line and level.
    #[arg(long, env = "DTWIN_ALERT_ROUTES")]
    pub alert_routes: Option<PathBuf>,
    /// Every notification also goes to this receiver in Prometheus Alertmanager's webhook
    /// format (version 4, firing/resolved), through the durable spool (retried until it
    /// answers 2xx). A secret: logs show only its scheme, host and port.
    #[arg(long, env = "DTWIN_WEBHOOK_URL", hide_env_values = true)]
    pub webhook_url: Option<String>,
    /// How long one webhook request may take, in milliseconds (then it is retried, marked as a
    /// possible duplicate).
    #[arg(long, env = "DTWIN_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,
    /// Fire after K AT_RISK verdicts among the last N, as K/N.
    #[arg(long, env = "DTWIN_ALERT_CONFIRM", default_value = "2/3")]
    pub alert_confirm: String,
    /// A firing alert counts a verdict towards resolution only below this probability.
    #[arg(long, env = "DTWIN_ALERT_RESOLVE_BELOW", default_value_t = 0.3)]
    pub alert_resolve_below: f64,
    /// Consecutive such verdicts that resolve an alert.
    #[arg(long, env = "DTWIN_ALERT_RESOLVE_AFTER", default_value_t = 3)]
    pub alert_resolve_after: u32,
    /// Fire an anomaly alert after N anomalous verdicts in a row (0: no anomaly alerts); needs
    /// an anomaly model deployed for the machine's profile.
    #[arg(long, env = "DTWIN_ALERT_ANOMALY_AFTER", default_value_t = 5)]
    pub alert_anomaly_after: u32,
    /// Consecutive verdicts that are not anomalous that resolve an anomaly alert.
    #[arg(long, env = "DTWIN_ALERT_ANOMALY_RESOLVE_AFTER", default_value_t = 3)]
    pub alert_anomaly_resolve_after: u32,
    /// Seconds after which a still-firing alert is e-mailed again.
    #[arg(long, env = "DTWIN_ALERT_REPEAT_S", default_value_t = 3600)]
    pub alert_repeat_s: u64,
    /// Milliseconds new alerts wait for others to join them in one digest.
    #[arg(long, env = "DTWIN_ALERT_GROUP_WAIT_MS", default_value_t = 2000)]
    pub alert_group_wait_ms: u64,
    /// New alerts in one group window from which one digest is sent instead of one e-mail each.
    #[arg(long, env = "DTWIN_ALERT_DIGEST_MIN", default_value_t = 3)]
    pub alert_digest_min: usize,
    /// Most e-mails per recipient set per hour (0: no limit); the rest wait and go out as one
    /// digest.
    #[arg(long, env = "DTWIN_ALERT_RATE_LIMIT", default_value_t = 0)]
    pub alert_rate_limit: usize,
    /// First retry after a failed send, in milliseconds (then doubling, with jitter).
    #[arg(long, env = "DTWIN_SMTP_RETRY_MS", default_value_t = 1000)]
    pub smtp_retry_ms: u64,
    /// Longest wait between retries, in milliseconds.
    #[arg(long, env = "DTWIN_SMTP_RETRY_MAX_MS", default_value_t = 300_000)]
    pub smtp_retry_max_ms: u64,
    /// Also show e-mail times in this IANA time zone (e.g. Europe/Berlin); UTC is always shown.
    #[arg(long, env = "DTWIN_MAIL_TIME_ZONE")]
    pub mail_time_zone: Option<String>,
    /// The dashboard's address, for the machine links in e-mails (`up` sets its own).
    #[arg(long, env = "DTWIN_DASHBOARD_URL")]
    pub dashboard_url: Option<String>,
}

impl AlerterOpts {
    /// The alerter's config.
    ///
    /// # Errors
    /// A bad --alert-confirm, an unreadable or invalid routing file, or bad lifecycle values.
    pub fn config(&self, common: CommonConfig) -> anyhow::Result<dtwin_alerter::AlerterConfig> {
        let mut c = dtwin_alerter::AlerterConfig::new(common.broker.clone());
        c.common = common;
        c.outbox_dir = self.outbox.clone();
        c.spool_dir = self
            .spool
            .clone()
            .unwrap_or_else(|| self.outbox.join(".spool"));
        c.smtp_url = self.smtp_url.clone().filter(|u| !u.is_empty());
        c.webhook_url = self.webhook_url.clone().filter(|u| !u.is_empty());
        c.webhook_timeout = std::time::Duration::from_millis(self.webhook_timeout_ms.max(1));
        c.mail.to = self.mail_to.clone();
        c.mail.from = self.mail_from.clone();
        c.dashboard_url = self.dashboard_url.clone();
        if let Some(name) = &self.mail_time_zone {
            c.mail.time_zone =
                Some(jiff::tz::TimeZone::get(name).with_context(|| {
                    format!("--mail-time-zone {name:?} is not an IANA time zone")
                })?);
        }
        let (k, n) = self
            .alert_confirm
            .split_once('/')
            .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)))
            .with_context(|| {
                format!(
                    "--alert-confirm must be K/N, e.g. 2/3, not {:?}",
                    self.alert_confirm
                )
            })?;
        c.lifecycle = dtwin_alerter::LifecycleConfig {
            confirm_k: k,
            confirm_n: n,
            resolve_below: self.alert_resolve_below,
            resolve_after: self.alert_resolve_after,
            repeat_interval: time::Duration::seconds(
                i64::try_from(self.alert_repeat_s).unwrap_or(i64::MAX),
            ),
        };
        c.lifecycle.validate()?;
        c.anomaly = dtwin_alerter::AnomalyConfig {
            fire_after: self.alert_anomaly_after,
            resolve_after: self.alert_anomaly_resolve_after,
        };
        c.anomaly.validate()?;
        if let Some(path) = &self.alert_routes {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            c.routing = dtwin_alerter::Routing::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
        c.policy = dtwin_alerter::Policy {
            group_wait: time::Duration::milliseconds(
                i64::try_from(self.alert_group_wait_ms).unwrap_or(i64::MAX),
            ),
            digest_min: self.alert_digest_min,
            rate_limit: self.alert_rate_limit,
            rate_window: time::Duration::hours(1),
        };
        c.retry = dtwin_alerter::RetryPolicy {
            initial: std::time::Duration::from_millis(self.smtp_retry_ms.max(1)),
            max: std::time::Duration::from_millis(self.smtp_retry_max_ms.max(self.smtp_retry_ms)),
        };
        Ok(c)
    }
}
