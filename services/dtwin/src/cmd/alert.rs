//! `dtwin alert ack|clear MACHINE`: a person acknowledges or clears a machine's open alert
//! (`dtwin.alert-action.v1` on `{prefix}/control/alerts/{machine_id}`, QoS 1). The open alert
//! is read from the machine's retained alert state unless `--alert` names it; the command
//! waits for the alerter's answer: the `acknowledged`/`cleared` event, or the dead letter
//! saying why not (then it fails).

use anyhow::Context;
use clap::{Args, Subcommand};
use dtwin_bus::{Brokers, BusConfig, QoS, Subscription};
use dtwin_schema::{
    AlertAction, AlertActionKind, AlertEvent, AlertEventKind, AlertSnapshot, DeadLetter, MachineId,
    Topics, ALERT_ACTION_SCHEMA,
};
use std::time::Duration;

/// `dtwin alert` flags.
#[derive(Debug, Clone, Args)]
pub struct AlertArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: AlertCommand,
    /// Broker URL (a cluster's nodes: comma-separated).
    #[arg(
        long,
        global = true,
        env = "DTWIN_BROKER",
        default_value = "mqtt://127.0.0.1:1883"
    )]
    pub broker: Brokers,
    /// Topic prefix.
    #[arg(long, global = true, env = "DTWIN_PREFIX", default_value = dtwin_schema::DEFAULT_PREFIX)]
    pub prefix: String,
}

/// `dtwin alert` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum AlertCommand {
    /// Acknowledge the machine's open alert: it stays open, its repeat e-mails stop.
    Ack(ActArgs),
    /// Clear the machine's open alert by hand: it ends now (recorded apart from a resolution).
    Clear(ActArgs),
}

/// What `ack` and `clear` take.
#[derive(Debug, Clone, Args)]
pub struct ActArgs {
    /// The machine.
    pub machine: String,
    /// The alert (default: the machine's open alert, from its retained alert state).
    #[arg(long = "alert")]
    pub alert_id: Option<String>,
    /// Why, or what is being done.
    #[arg(long, default_value = "")]
    pub comment: String,
    /// Who (default: $USER).
    #[arg(long)]
    pub by: Option<String>,
    /// Seconds to wait for the alerter's answer (0: do not wait).
    #[arg(long, default_value_t = 10)]
    pub wait_s: u64,
}

/// How long the retained alert state may take to arrive after subscribing.
const STATE_WAIT: Duration = Duration::from_secs(3);

/// Runs `dtwin alert`.
///
/// # Errors
/// Bad flags, no open alert, a broker that does not answer, or the alerter's refusal.
pub async fn run(args: AlertArgs) -> anyhow::Result<()> {
    let (kind, a) = match args.action {
        AlertCommand::Ack(a) => (AlertActionKind::Acknowledge, a),
        AlertCommand::Clear(a) => (AlertActionKind::Clear, a),
    };
    let machine = MachineId::parse(&a.machine)
        .map_err(|e| anyhow::anyhow!("machine {:?}: {e}", a.machine))?;
    let topics = Topics::new(&args.prefix);
    let by =
        a.by.clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| "cli".to_owned());
    let cfg = BusConfig::new(
        args.broker.clone(),
        format!("dtwin-alert-{}", std::process::id()),
    );
    let mut conn = dtwin_bus::connect(
        &cfg,
        vec![
            Subscription::new(topics.alert_state(&machine), QoS::AtLeastOnce),
            Subscription::new(topics.alert(&machine), QoS::AtLeastOnce),
            Subscription::new(topics.deadletter("alerter"), QoS::AtLeastOnce),
        ],
    );
    anyhow::ensure!(
        conn.client.wait_ready(Duration::from_secs(10)).await,
        "cannot connect to {}",
        args.broker
    );
    let alert_id = match a.alert_id.clone() {
        Some(id) => id,
        None => open_alert(&mut conn, &topics, &machine).await?,
    };
    let action = AlertAction {
        schema: ALERT_ACTION_SCHEMA.to_owned(),
        machine_id: machine.clone(),
        alert_id: alert_id.clone(),
        action: kind,
        by,
        comment: a.comment.clone(),
        ts: dtwin_schema::time_fmt::now(),
    };
    conn.client
        .publish(
            topics.alert_control(&machine),
            QoS::AtLeastOnce,
            false,
            dtwin_schema::to_json(&action),
        )
        .await
        .context("publishing the alert action")?;
    let verb = match kind {
        AlertActionKind::Acknowledge => "acknowledged",
        AlertActionKind::Clear => "cleared",
    };
    let answer = if a.wait_s == 0 {
        Ok(None)
    } else {
        answer(&mut conn, &topics, &action, Duration::from_secs(a.wait_s)).await
    };
    conn.close().await;
    match answer? {
        Some(()) => println!("{verb} {alert_id} on {machine} (by {})", action.by),
        None => println!(
            "{} {alert_id} on {machine} sent; no alerter answered within {} s",
            kind.as_str(),
            a.wait_s
        ),
    }
    Ok(())
}

/// The machine's open alert, from its retained alert state.
async fn open_alert(
    conn: &mut dtwin_bus::Connection,
    topics: &Topics,
    machine: &MachineId,
) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + STATE_WAIT;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, conn.inbox.recv()).await {
        if msg.topic != topics.alert_state(machine) {
            continue;
        }
        let state: AlertSnapshot = dtwin_schema::from_json(&msg.payload)
            .with_context(|| format!("the alert state of {machine} is not readable"))?;
        return state
            .firing
            .map(|f| f.alert_id)
            .with_context(|| format!("{machine} has no open alert"));
    }
    anyhow::bail!(
        "{machine} has no alert state (no alert yet, or no alerter); name one with --alert"
    )
}

/// Waits for the alerter's answer to `action`: `Some(())` for its event, an error for its dead
/// letter, `None` when nothing came within `wait`.
async fn answer(
    conn: &mut dtwin_bus::Connection,
    topics: &Topics,
    action: &AlertAction,
    wait: Duration,
) -> anyhow::Result<Option<()>> {
    let want = match action.action {
        AlertActionKind::Acknowledge => AlertEventKind::Acknowledged,
        AlertActionKind::Clear => AlertEventKind::Cleared,
    };
    let ours = dtwin_schema::to_json(action);
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, conn.inbox.recv()).await {
        if msg.topic == topics.alert(&action.machine_id) {
            if let Ok(e) = dtwin_schema::from_json::<AlertEvent>(&msg.payload) {
                if e.alert_id == action.alert_id && e.event == want {
                    return Ok(Some(()));
                }
            }
        } else if msg.topic == topics.deadletter("alerter") {
            if let Ok(d) = dtwin_schema::from_json::<DeadLetter>(&msg.payload) {
                if d.payload.as_bytes() == ours.as_slice() {
                    anyhow::bail!(
                        "the alerter refused it ({}): {}",
                        d.reason.as_str(),
                        d.detail
                    );
                }
            }
        }
    }
    Ok(None)
}
