//! The steps of a run: the pipeline's (one, or with `--ramp` more and more machines until a
//! step misses the bounds), then with `--ramp` the broker alone the same way, starting from
//! the pipeline's highest sustained load.

use super::{run_step, Ctx, Kind};
use crate::loadstats::{self, Bounds, RampSummary, Step};
use std::time::Duration;

/// The pipeline's steps (one without `--ramp`) and the worst machines of the last one.
///
/// # Errors
/// A step that cannot run (see [`run_step`]).
pub(super) async fn pipeline(
    ctx: &mut Ctx,
    bounds: &Bounds,
    seqs: &mut Vec<u64>,
) -> anyhow::Result<(Vec<Step>, Vec<(usize, u64)>)> {
    let (steps, label) = if ctx.args.ramp {
        (ctx.args.ramp_steps, Some("pipeline"))
    } else {
        (1, None)
    };
    let plan = loadstats::ramp_machines(ctx.args.machines, ctx.args.ramp_factor).take(steps);
    climb(ctx, Kind::Pipeline, plan, seqs, bounds, label).await
}

/// `--ramp`'s second half: the broker alone from the pipeline's highest sustained load (or
/// `--machines`) up, and the summary of both.
///
/// # Errors
/// A step that cannot run (see [`run_step`]).
pub(super) async fn broker_alone(
    ctx: &mut Ctx,
    bounds: Bounds,
    pipeline: &[Step],
) -> anyhow::Result<RampSummary> {
    // The pipeline may still be working off the failed step's backlog.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start = loadstats::highest_sustained_machines(pipeline).unwrap_or(ctx.args.machines);
    let plan = loadstats::ramp_machines(start, ctx.args.ramp_factor).take(ctx.args.ramp_steps);
    let mut raw = Vec::new();
    let label = Some("broker-alone");
    let (alone, _) = climb(ctx, Kind::BrokerAlone, plan, &mut raw, &bounds, label).await?;
    Ok(RampSummary::new(bounds, pipeline, alone))
}

/// Runs a step for each machine count of `plan` until one misses `bounds`. With a `label`
/// (ramps), marks each step sustained or not and prints it as it ends. Returns the steps and
/// the worst machines of the last.
async fn climb(
    ctx: &mut Ctx,
    kind: Kind,
    plan: impl Iterator<Item = usize>,
    seqs: &mut Vec<u64>,
    bounds: &Bounds,
    label: Option<&str>,
) -> anyhow::Result<(Vec<Step>, Vec<(usize, u64)>)> {
    let mut steps = Vec::new();
    let mut worst = Vec::new();
    for machines in plan {
        let (mut step, w) = run_step(ctx, kind, machines, seqs).await?;
        worst = w;
        let ok = step.meets(bounds);
        if let Some(label) = label {
            step.sustained = Some(ok);
            eprintln!("loadtest: {label} step {}", step.progress_line());
        }
        steps.push(step);
        if !ok {
            break;
        }
    }
    Ok((steps, worst))
}
