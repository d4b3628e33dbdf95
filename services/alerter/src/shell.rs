//! The async side of the loop: carries out the [`Router`](crate::Router)'s [`Decision`] about one message
//! (save the confirmation window, queue the record durably, publish the event and the alert
//! state, hand the silences to the sender, count, log) and says whether to ack.

use crate::channels::{self, Channel};
use crate::plan::Routing;
use crate::processor::{Notification, Outcome};
use crate::router::{AckOnly, Decision, Ignored};
use crate::spool::{self, Spool};
use crate::{AlerterError, AlerterMetrics};
use dtwin_bus::{BusClient, QoS};
use dtwin_schema::{AlertEventKind, Silence};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// Longest wait between spool write retries (disk full, permissions): the verdict stays
/// unacknowledged meanwhile, so nothing is lost while the operator fixes the disk.
pub const MAX_WRITE_BACKOFF: Duration = Duration::from_secs(30);

/// The first wait after a failed spool write; it doubles up to [`MAX_WRITE_BACKOFF`].
const FIRST_WRITE_BACKOFF: Duration = Duration::from_millis(100);

/// A webhook channel's spool and its sender's wake-up.
pub(crate) struct ChannelSpool {
    pub(crate) channel: Channel,
    pub(crate) spool: Spool,
    pub(crate) wake: Arc<Notify>,
}

/// Where the [`Router`](crate::Router)'s decisions are carried out: the spool, the publishing connection,
/// the sender (its silences and wake-up), the webhook channels' spools and the metrics.
pub(crate) struct Shell {
    pub(crate) publisher: BusClient,
    pub(crate) spool: Spool,
    pub(crate) metrics: AlerterMetrics,
    pub(crate) silences: watch::Sender<Vec<Silence>>,
    pub(crate) wake: Arc<Notify>,
    /// Which channels a notification goes to.
    pub(crate) routing: Arc<Routing>,
    /// Every channel's spool, in the routing's order.
    pub(crate) channels: Vec<ChannelSpool>,
    pub(crate) shutdown: CancellationToken,
}

impl Shell {
    /// Carries out `decision` about a message from `topic`. Returns what the ack is for (to
    /// name a failed ack), or `None` when shut down before the work was done (no ack).
    pub(crate) async fn apply(
        &self,
        topic: &str,
        decision: Decision,
    ) -> Result<Option<&'static str>, AlerterError> {
        match decision {
            Decision::Verdict { outcome, window } => {
                if let Some((machine, window)) = window {
                    // Before the ack, so a restart still counts this verdict towards firing.
                    let s = self.spool.clone();
                    match tokio::task::spawn_blocking(move || s.save_window(&machine, window)).await
                    {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => warn!(error = %e, "confirmation window not saved"),
                        Err(e) => warn!(error = %e, "confirmation window not saved"),
                    }
                }
                let done = self.verdict(topic, outcome).await?;
                if done {
                    self.wake.notify_one();
                }
                Ok(done.then_some("acking a risk verdict"))
            }
            Decision::SilenceSet {
                silence: s,
                silences,
            } => {
                info!(silence = %s.silence_id, until = %s.until, machines = ?s.machines, lines = ?s.lines, "silence set");
                self.silences.send_replace(silences);
                Ok(Some("acking a silence"))
            }
            Decision::SilenceRemoved {
                silence_id,
                silences,
            } => {
                info!(silence = silence_id.as_str(), "silence removed");
                self.silences.send_replace(silences);
                Ok(Some("acking a silence"))
            }
            Decision::Ignored(Ignored::Silence(e)) => {
                warn!(topic, error = %e, "bad silence ignored");
                Ok(Some("acking a silence"))
            }
            Decision::Ack(AckOnly::NoSuchSilence) => Ok(Some("acking a silence")),
            Decision::ClusterChanged {
                change,
                adopted,
                forgotten,
            } => {
                info!(?change, adopted, forgotten, "alerter cluster changed");
                self.metrics.handovers.inc_by(adopted);
                Ok(Some("acking a cluster message"))
            }
            Decision::Adopted { machine_id, firing } => {
                debug!(%machine_id, firing, "late alert state adopted");
                self.metrics.handovers.inc();
                Ok(Some("acking a cluster message"))
            }
            Decision::Ignored(Ignored::AlertState(e)) => {
                warn!(topic, error = %e, "bad alert state ignored");
                Ok(Some("acking a cluster message"))
            }
            Decision::Ack(_) => Ok(Some("acking a cluster message")),
        }
    }

    /// Carries out a verdict's outcome. Returns false when shut down before the record could
    /// be written.
    async fn verdict(&self, topic: &str, outcome: Outcome) -> Result<bool, AlerterError> {
        match outcome {
            Outcome::Quiet => {
                debug!(topic, "verdict applied");
                Ok(true)
            }
            Outcome::DeadLetter {
                topic: to,
                payload,
                reason,
            } => {
                warn!(topic, reason = reason.as_str(), "input rejected");
                self.metrics.rejected(reason.as_str());
                publish(&self.publisher, to, payload).await?;
                Ok(true)
            }
            Outcome::Notify(n) => {
                // Each channel's delivery is its own record, written before the verdict's ack
                // like the e-mail's.
                for name in channels::targets(&self.routing, &n.record)
                    .iter()
                    .map(|c| c.name.clone())
                {
                    let Some(c) = self.channels.iter().find(|c| c.channel.name == name) else {
                        continue;
                    };
                    if write_with_retry(&c.spool, &n.record, &self.shutdown)
                        .await
                        .is_none()
                    {
                        return Ok(false);
                    }
                    c.wake.notify_one();
                }
                queue(
                    &self.publisher,
                    &self.spool,
                    &n,
                    &self.metrics,
                    &self.shutdown,
                )
                .await
            }
        }
    }
}

/// Queues the record, then publishes the lifecycle event. Returns false when shut down
/// before the record could be written.
async fn queue(
    client: &BusClient,
    spool: &Spool,
    n: &Notification,
    metrics: &AlerterMetrics,
    shutdown: &CancellationToken,
) -> Result<bool, AlerterError> {
    match write_with_retry(spool, &n.record, shutdown).await {
        None => return Ok(false),
        Some(true) => {
            metrics.spooled.inc();
            metrics.spool_pending.inc();
        }
        Some(false) => {}
    }
    let (id, alert_id, level) = (&n.machine_id, &n.event.alert_id, n.event.level.as_str());
    match n.event.event {
        AlertEventKind::Firing => info!(machine_id = %id, alert_id, level, "alert fired"),
        AlertEventKind::Resolved => info!(machine_id = %id, alert_id, level, "alert resolved"),
        AlertEventKind::Acknowledged => {
            info!(machine_id = %id, alert_id, level, by = n.event.by.as_deref(), "alert acknowledged")
        }
        AlertEventKind::Cleared => {
            info!(machine_id = %id, alert_id, level, by = n.event.by.as_deref(), "alert cleared")
        }
        _ => debug!(machine_id = %id, alert_id, level, tag = %n.transition.tag(), "alert updated"),
    }
    if let Some(old) = &n.superseded {
        info!(machine_id = %id, alert_id = old.alert_id, by = alert_id, "anomaly alert superseded");
        publish(client, n.topic.clone(), dtwin_schema::to_json(old)).await?;
        metrics.event(old.event);
    }
    publish(client, n.topic.clone(), dtwin_schema::to_json(&n.event)).await?;
    metrics.event(n.event.event);
    client
        .publish(
            n.state_topic.clone(),
            QoS::AtLeastOnce,
            true,
            dtwin_schema::to_json(&n.state),
        )
        .await
        .map_err(|source| AlerterError::Bus {
            what: "publishing the alert state",
            source,
        })?;
    Ok(true)
}

/// Writes on a blocking thread (fsync can take a while), retrying with backoff until it
/// works (then whether it was queued; false: delivered before) or `shutdown` fires (`None`).
async fn write_with_retry(
    spool: &Spool,
    record: &spool::Record,
    shutdown: &CancellationToken,
) -> Option<bool> {
    let mut backoff = FIRST_WRITE_BACKOFF;
    loop {
        let (s, r) = (spool.clone(), record.clone());
        let result = tokio::task::spawn_blocking(move || s.put(&r)).await;
        let err = match result {
            Ok(Ok(queued)) => {
                if !queued {
                    debug!(record = %record.name(), "already delivered; not queued again");
                }
                return Some(queued);
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        error!(record = %record.name(), error = %err, retry_in_ms = backoff.as_millis() as u64, "spool write failed");
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_WRITE_BACKOFF);
    }
}

async fn publish(client: &BusClient, topic: String, payload: Vec<u8>) -> Result<(), AlerterError> {
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .map_err(|source| AlerterError::Bus {
            what: "publishing from the alerter",
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::email::MailKind;
    use crate::spool::tests::record;
    use tokio::time::Instant;

    /// When the attempts of a write that keeps failing happen: at once, then after
    /// [`FIRST_WRITE_BACKOFF`], doubling, capped at [`MAX_WRITE_BACKOFF`].
    fn schedule() -> impl Iterator<Item = Duration> {
        let mut at = Duration::ZERO;
        let mut wait = FIRST_WRITE_BACKOFF;
        std::iter::from_fn(move || {
            let now = at;
            at += wait;
            wait = (wait * 2).min(MAX_WRITE_BACKOFF);
            Some(now)
        })
    }

    /// Makes the spool unwritable for `outage`, then writable: returns the write's result and
    /// when it came back.
    async fn write_through_outage(outage: Duration) -> (Option<bool>, Duration) {
        let tmp = tempfile::tempdir().expect("temp dir");
        let spool = Spool::open(tmp.path()).expect("opens");
        let pending = tmp.path().join("pending");
        std::fs::remove_dir(&pending).expect("pending/ is gone: every write fails");
        let start = Instant::now();
        let writer = tokio::spawn(async move {
            let r = record("m-1", MailKind::Firing, 0);
            let queued = write_with_retry(&spool, &r, &CancellationToken::new()).await;
            (queued, start.elapsed())
        });
        tokio::time::sleep(outage).await;
        std::fs::create_dir(&pending).expect("pending/ is back");
        writer.await.expect("joins")
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_spool_write_backs_off_doubling_up_to_the_cap() {
        for outage in [
            Duration::from_millis(1_000),
            Duration::from_secs(20),
            Duration::from_secs(100),
            Duration::from_secs(200),
        ] {
            // The first attempt after the outage: no sooner, and not later either.
            let due = schedule().find(|at| *at > outage).expect("endless");
            let (queued, at) = write_through_outage(outage).await;
            assert_eq!(queued, Some(true), "written once the spool works");
            assert_eq!(at, due, "after an outage of {outage:?}");
        }
        // The waits, spelled out: 0.1, 0.2, 0.4 ... 25.6 s, then 30 s from then on.
        let gaps: Vec<u64> = schedule()
            .take(13)
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis() as u64)
            .collect();
        assert_eq!(
            gaps,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_keeps_failing_gives_up_on_shutdown_without_queueing() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let spool = Spool::open(tmp.path()).expect("opens");
        std::fs::remove_dir(tmp.path().join("pending")).expect("every write fails");
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(45)).await;
            stop.cancel();
        });
        let start = Instant::now();
        let r = record("m-1", MailKind::Firing, 0);
        assert_eq!(write_with_retry(&spool, &r, &shutdown).await, None);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(45),
            "stops at once, mid-wait"
        );
        // A delivered record is not queued again (the redelivered verdict's case).
        std::fs::create_dir(tmp.path().join("pending")).expect("back");
        spool.put(&r).expect("queues");
        spool
            .finish(&r.name(), crate::spool::Done::Sent)
            .expect("sent");
        assert_eq!(write_with_retry(&spool, &r, &shutdown).await, Some(false));
    }
}
