//! The sender: drains the spool into the mail transport. Each round it plans
//! ([`crate::plan::plan`]: silences, routing, digests, rate limits), marks what it sends as
//! `.sending`, sends, and moves each record to `sent/` (or `silenced/`, `failed/`) before
//! publishing the matching alert event. A transient failure (server down, 4xx) stops the
//! round and retries with exponential backoff and jitter; nothing leaves `pending/` unsent.

use crate::email::{self, AlertMail, Envelope, MailConfig};
use crate::metrics::AlerterMetrics;
use crate::plan::{self, Policy, Routing, SendLog, Step};
use crate::processor::delivery_event;
use crate::readings::Profiles;
use crate::spool::{Done, Pending, Spool, SpoolError};
use crate::transport::{Mailer, SendError};
use dtwin_bus::{BusClient, QoS};
use dtwin_schema::{AlertEventKind, Silence, Topics};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// Retry timing after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait (the wait doubles up to this).
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait after `failures` consecutive failures (1 = the first): `initial x 2^(n-1)`
    /// capped at `max`, scaled by `jitter` in [0.5, 1] ("equal jitter", so many alerters
    /// retrying after one outage do not hit the server in step).
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
            .min(self.max);
        exp.mul_f64(jitter.clamp(0.5, 1.0))
    }
}

/// Why a round of deliveries stopped early; the sender backs off and tries again.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The pending records could not be listed.
    #[error("reading the pending alert records: {0}")]
    ReadPending(#[source] SpoolError),
    /// The `.sending` marker of a record could not be written (nothing was sent).
    #[error("marking {name} as sending: {source}")]
    MarkSending {
        /// The record.
        name: String,
        /// What failed.
        source: SpoolError,
    },
    /// A record could not be moved out of `pending/` after it was handled.
    #[error("moving {name} to {}/: {source}", .done.folder())]
    Finish {
        /// The record.
        name: String,
        /// Where it was going.
        done: Done,
        /// What failed.
        source: SpoolError,
    },
    /// The mail server (or the outbox) failed in a way worth retrying.
    #[error(transparent)]
    Transport(SendError),
}

/// What the sender needs.
pub struct Sender {
    /// The spool it drains.
    pub spool: Spool,
    /// Where mails go.
    pub mailer: Mailer,
    /// For alert events.
    pub client: BusClient,
    /// Topic builder.
    pub topics: Topics,
    /// From, default recipients, subject prefix.
    pub mail: MailConfig,
    /// Labels and units of the readings in e-mails.
    pub profiles: Profiles,
    /// Recipients by machine, line and level; lines; criticality.
    pub routing: Routing,
    /// Grouping and rate limits.
    pub policy: Policy,
    /// Backoff.
    pub retry: RetryPolicy,
    /// Delivered records older than this are deleted from the spool.
    pub retention: Duration,
    /// The live silences.
    pub silences: watch::Receiver<Vec<Silence>>,
    /// Woken when a record is queued or a silence changes.
    pub wake: Arc<Notify>,
    /// Mail counters, spool depth and whether the transport works.
    pub metrics: AlerterMetrics,
}

/// How often the spool is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How often an idle sender checks that the mail transport still works (the `smtp_up`
/// gauge), so an SMTP outage shows before the next alert needs the server.
pub const PROBE_EVERY: Duration = Duration::from_secs(30);

impl Sender {
    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut log = SendLog::default();
        let mut failures: u32 = 0;
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut next_prune = tokio::time::Instant::now();
        let mut next_probe = tokio::time::Instant::now();
        info!(transport = %self.mailer.describe(), spool = %self.spool.root().display(), "alert sender started");
        loop {
            let mut wake_at: Option<tokio::time::Instant> = None;
            if retry_at.is_none_or(|t| t <= tokio::time::Instant::now()) {
                retry_at = None;
                match self.round(&mut log).await {
                    Ok(wake) => {
                        failures = 0;
                        wake_at = wake;
                    }
                    Err(e) => {
                        failures += 1;
                        let delay = self
                            .retry
                            .delay(failures, rand::random::<f64>() * 0.5 + 0.5);
                        warn!(error = %e, failures, retry_in_ms = delay.as_millis() as u64, "alert e-mail not sent; will retry");
                        retry_at = Some(tokio::time::Instant::now() + delay);
                    }
                }
            }
            // While retrying, the attempts themselves keep the gauge current.
            if retry_at.is_none() && tokio::time::Instant::now() >= next_probe {
                next_probe = tokio::time::Instant::now() + PROBE_EVERY;
                let up = self.mailer.probe().await;
                if !up {
                    warn!(transport = %self.mailer.describe(), "mail transport not reachable; alerts wait in the spool");
                }
                self.metrics.transport_up(up);
            }
            if tokio::time::Instant::now() >= next_prune {
                next_prune = tokio::time::Instant::now() + PRUNE_EVERY;
                let before = std::time::SystemTime::now() - self.retention;
                match self.spool.prune(before) {
                    Ok(0) => {}
                    Ok(n) => info!(deleted = n, "old alert records pruned from the spool"),
                    Err(e) => warn!(error = %e, "spool prune failed"),
                }
                log.forget_before(OffsetDateTime::now_utc() - self.policy.rate_window);
            }
            // No probe while retrying: a probe time left in the past would wake this loop at
            // once, again and again, spinning a core until the retry is due.
            let probe_at = retry_at.is_none().then_some(next_probe);
            let until = [wake_at, retry_at, Some(next_prune), probe_at]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(next_prune);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified(), if retry_at.is_none() => {}
                _ = self.silences.changed() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
        debug!("alert sender stopped");
    }

    /// One pass over the spool. Returns when to look again for waiting records.
    ///
    /// # Errors
    /// A transient send or spool failure: the caller backs off.
    async fn round(
        &mut self,
        log: &mut SendLog,
    ) -> Result<Option<tokio::time::Instant>, DeliveryError> {
        let (pending, bad) = self.spool.pending().map_err(DeliveryError::ReadPending)?;
        for (path, why) in bad {
            error!(file = %path.display(), error = %why, "unreadable spool record left in place");
        }
        self.metrics.pending(pending.len());
        if pending.is_empty() {
            return Ok(None);
        }
        let now = OffsetDateTime::now_utc();
        let silences = self.silences.borrow().clone();
        let plan = plan::plan(
            &pending,
            now,
            &self.routing,
            &self.mail.to,
            &silences,
            &self.policy,
            log,
        );
        let find = |name: &str| pending.iter().find(|p| p.record.name() == name);
        for step in plan.steps {
            match step {
                Step::Silence { name, silence_id } => {
                    let Some(p) = find(&name) else { continue };
                    self.spool.finish(&name, Done::Silenced).map_err(|source| {
                        DeliveryError::Finish {
                            name: name.clone(),
                            done: Done::Silenced,
                            source,
                        }
                    })?;
                    self.metrics.spool_pending.dec();
                    info!(machine_id = %p.record.mail.machine_id, alert = %name, silence = %silence_id, "alert silenced");
                    self.event(p, AlertEventKind::Silenced, format!("silence {silence_id}"))
                        .await;
                }
                Step::Send { to, names } => {
                    let records: Vec<&Pending> = names.iter().filter_map(|n| find(n)).collect();
                    self.send(&records, &to, log).await?;
                }
            }
        }
        let wake = plan.wake_at.map(|t| {
            let secs = (t - now).as_seconds_f64().max(0.0);
            tokio::time::Instant::now() + Duration::from_secs_f64(secs)
        });
        Ok(wake)
    }

    async fn send(
        &self,
        records: &[&Pending],
        to: &[lettre::message::Mailbox],
        log: &mut SendLog,
    ) -> Result<(), DeliveryError> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        let env = Envelope {
            to: to.to_vec(),
            possible_duplicate: records.iter().any(|p| p.maybe_sent),
        };
        let names: Vec<String> = records.iter().map(|p| p.record.name()).collect();
        let (file, message) = if records.len() == 1 {
            (
                names[0].clone(),
                email::render_for(&first.record.mail, &self.mail, &self.profiles, &env),
            )
        } else {
            let mails: Vec<AlertMail> = records.iter().map(|p| p.record.mail.clone()).collect();
            let id = email::digest_message_id(&names);
            (
                id.trim_matches(['<', '>'])
                    .trim_end_matches("@dtwin")
                    .to_owned(),
                email::render_digest(
                    &mails,
                    &self.mail,
                    &self.profiles,
                    &env,
                    OffsetDateTime::now_utc(),
                ),
            )
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                // A mail that cannot be built never will be: park it, say so.
                self.metrics.mails_failed.inc();
                for p in records {
                    self.finish(
                        p,
                        Done::Failed,
                        AlertEventKind::Failed,
                        format!("not sent: {e}"),
                    )
                    .await?;
                }
                return Ok(());
            }
        };
        for n in &names {
            self.spool
                .mark_sending(n)
                .map_err(|source| DeliveryError::MarkSending {
                    name: n.clone(),
                    source,
                })?;
        }
        match self.mailer.send(&file, message).await {
            Ok(detail) => {
                self.metrics.mails_sent.inc();
                self.metrics.transport_up(true);
                log.record(to, OffsetDateTime::now_utc());
                let what = if records.len() > 1 {
                    format!("{detail} (digest of {})", records.len())
                } else {
                    detail
                };
                for p in records {
                    self.finish(p, Done::Sent, AlertEventKind::Sent, what.clone())
                        .await?;
                }
                info!(
                    alerts = records.len(),
                    to = to.len(),
                    duplicate = env.possible_duplicate,
                    "alert e-mail sent"
                );
                Ok(())
            }
            Err(SendError::Permanent(e)) => {
                error!(error = %e, "alert e-mail refused for good");
                self.metrics.mails_failed.inc();
                // The server answered: it is up, it just will not take this mail.
                self.metrics.transport_up(true);
                for p in records {
                    self.finish(
                        p,
                        Done::Failed,
                        AlertEventKind::Failed,
                        format!("refused, not retried: {e}"),
                    )
                    .await?;
                }
                Ok(())
            }
            Err(
                e @ SendError::Transient {
                    maybe_delivered, ..
                },
            ) => {
                self.metrics.mails_retried.inc();
                self.metrics.transport_up(false);
                if !maybe_delivered {
                    // Known not to have arrived: the retry is not a possible duplicate.
                    for n in &names {
                        self.spool.clear_sending(n);
                    }
                }
                for p in records {
                    self.event(p, AlertEventKind::Failed, format!("{e}; will retry"))
                        .await;
                }
                Err(DeliveryError::Transport(e))
            }
        }
    }

    async fn finish(
        &self,
        p: &Pending,
        done: Done,
        kind: AlertEventKind,
        detail: String,
    ) -> Result<(), DeliveryError> {
        let name = p.record.name();
        self.spool
            .finish(&name, done)
            .map_err(|source| DeliveryError::Finish { name, done, source })?;
        self.metrics.spool_pending.dec();
        self.event(p, kind, detail).await;
        Ok(())
    }

    /// Publishes a follow-up alert event; a broker outage only loses the event, never the
    /// mail (the spool has the record).
    async fn event(&self, p: &Pending, kind: AlertEventKind, detail: String) {
        let event = delivery_event(&p.record.event, kind, detail, OffsetDateTime::now_utc());
        let topic = self.topics.alert(&p.record.mail.machine_id);
        if let Err(e) = self
            .client
            .publish(
                topic,
                QoS::AtLeastOnce,
                false,
                dtwin_schema::to_json(&event),
            )
            .await
        {
            warn!(error = %e, "alert event not published");
        } else {
            self.metrics.event(kind);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::email::MailKind;
    use crate::outbox::Outbox;
    use crate::spool::tests::record;
    use dtwin_bus::{BrokerUrl, BusConfig};
    use tokio::time::Instant;

    /// Waits in steps of 1 ms of (paused) time until `done`, at most `limit`.
    async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> Instant {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < limit, "not within {limit:?}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Instant::now()
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_mailer_is_retried_at_growing_intervals_then_the_mail_goes_out_once() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let spool = Spool::open(tmp.path().join("spool")).expect("opens");
        let out = tmp.path().join("outbox");
        let outbox = Outbox::new(&out).expect("opens");
        // The transport fails (transiently) until the folder is back.
        std::fs::remove_dir(&out).expect("outbox gone");
        let r = record("m-1", MailKind::Firing, 0);
        assert!(spool.put(&r).expect("queues"));
        // Events go nowhere: a broker outage loses events, never mail.
        let conn = dtwin_bus::connect(
            &BusConfig::new(BrokerUrl::new("127.0.0.1", 9), "sender-test"),
            Vec::new(),
        );
        conn.task.abort();
        let retry = RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
        };
        let metrics = AlerterMetrics::default();
        let (silence_tx, silences) = watch::channel(Vec::new());
        let sender = Sender {
            spool: spool.clone(),
            mailer: Mailer::Outbox(outbox.clone()),
            client: conn.client.clone(),
            topics: Topics::default(),
            mail: MailConfig::default(),
            profiles: Profiles::default(),
            routing: Routing::default(),
            policy: Policy {
                group_wait: time::Duration::ZERO,
                ..Policy::default()
            },
            retry,
            retention: Duration::from_secs(3600),
            silences,
            wake: Arc::new(Notify::new()),
            metrics: metrics.clone(),
        };
        let stop = CancellationToken::new();
        let start = Instant::now();
        let task = tokio::spawn(sender.run(stop.clone()));

        const FAILURES: u64 = 6;
        let mut attempts = Vec::new();
        for n in 1..=FAILURES {
            let m = metrics.clone();
            attempts.push(until(Duration::from_secs(60), || m.mails_retried.get() >= n).await);
            assert_eq!(metrics.mails_retried.get(), n, "one attempt at a time");
            assert_eq!(metrics.smtp_up.get(), 0);
        }
        std::fs::create_dir(&out).expect("the outbox is back");
        let m = metrics.clone();
        let sent = until(Duration::from_secs(60), || m.mails_sent.get() == 1).await;
        attempts.push(sent);

        // The attempts are seen in steps of 1 ms, so each gap is known to +-1 ms; the timer
        // itself never fires early.
        let ms = Duration::from_millis(1);
        assert!(attempts[0] - start <= ms, "the first attempt is at once");
        for (i, w) in attempts.windows(2).enumerate() {
            let failures = i as u32 + 1;
            let gap = w[1] - w[0];
            let (least, most) = (retry.delay(failures, 0.5), retry.delay(failures, 1.0));
            assert!(
                gap + ms >= least && gap <= most + ms,
                "wait {failures}: {gap:?}, not in {least:?}..={most:?}"
            );
            assert!(gap <= retry.max + ms, "capped at the max");
        }
        // Growing: up to the cap, each wait's least is the one before's most.
        for i in 1..=3 {
            let (before, after) = (attempts[i] - attempts[i - 1], attempts[i + 1] - attempts[i]);
            assert!(
                after + ms >= before,
                "wait {} ({after:?}) < wait {i} ({before:?})",
                i + 1
            );
        }

        // Out once: the outbox has it, the spool moved it to sent/, nothing more goes out.
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(metrics.mails_sent.get(), 1);
        assert_eq!(metrics.mails_retried.get(), FAILURES);
        assert_eq!(metrics.smtp_up.get(), 1);
        let files = outbox.list().expect("lists");
        assert_eq!(files, vec![outbox.path_for(&r.name())]);
        assert!(spool.pending().expect("reads").0.is_empty());
        assert_eq!(spool.counts().expect("counts"), [0, 1, 0, 0]);

        stop.cancel();
        task.await.expect("the sender stops");
        drop(silence_tx);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitters_down_to_half() {
        let r = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(r.delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(r.delay(2, 1.0), Duration::from_millis(200));
        assert_eq!(r.delay(4, 1.0), Duration::from_millis(800));
        assert_eq!(r.delay(5, 1.0), Duration::from_secs(1));
        assert_eq!(r.delay(60, 1.0), Duration::from_secs(1));
        assert_eq!(r.delay(3, 0.5), Duration::from_millis(200));
        assert_eq!(
            r.delay(3, 0.0),
            Duration::from_millis(200),
            "jitter below half is clamped"
        );
    }
}
