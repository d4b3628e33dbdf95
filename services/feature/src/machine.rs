//! One machine's reading on its way through the processor ([`Item`]: the reading and, for a
//! profile other than milling, its values in profile order) and its window of either kind
//! ([`Window`]: the built-in milling code, or a `ProfileWindow`). Pure.

use crate::order::Ordered;
use crate::profiles::{Mapped, ProfileSet, Slot};
use dtwin_schema::{Features, Telemetry, FEATURES_SCHEMA};
use dtwin_windows::{MachineWindow, ProfileWindow, WindowConfig};
use time::OffsetDateTime;

/// A decoded reading, checked against its profile, waiting for its turn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    /// The reading (for another profile than milling: machine, time, seq and labels only).
    pub telemetry: Telemetry,
    /// Its profile.
    pub slot: Slot,
    /// Its values in the profile's order (`None` for milling, whose values are in
    /// `telemetry`). Boxed: milling readings, the bulk, carry one pointer, not three vectors.
    pub mapped: Option<Box<Mapped>>,
}

impl Ordered for Item {
    fn seq(&self) -> u64 {
        self.telemetry.seq
    }
    fn ts(&self) -> OffsetDateTime {
        self.telemetry.ts
    }
}

/// A machine's rolling window: milling's frozen feature code or a profile's.
#[derive(Debug, Clone)]
pub(crate) enum Window {
    /// The built-in milling features.
    Milling(MachineWindow),
    /// A profile's features.
    Profile {
        /// Which profile (an index into the processor's [`ProfileSet`]).
        index: u16,
        /// Its state.
        window: ProfileWindow,
    },
}

impl Window {
    /// An empty window for a machine of profile `slot`.
    pub fn new(slot: Slot, profiles: &ProfileSet, milling: &WindowConfig) -> Self {
        match (slot, profiles.served(slot)) {
            (Slot::Other(index), Some(served)) => Self::Profile {
                index,
                window: ProfileWindow::new(&served.profile),
            },
            _ => Self::Milling(MachineWindow::new(milling)),
        }
    }

    fn slot(&self) -> Slot {
        match self {
            Self::Milling(_) => Slot::Milling,
            Self::Profile { index, .. } => Slot::Other(*index),
        }
    }

    /// Bytes of state (a profile window counts its fixed part only).
    pub fn state_bytes(&self) -> usize {
        match self {
            Self::Milling(w) => w.state_bytes(),
            Self::Profile { .. } => std::mem::size_of::<ProfileWindow>(),
        }
    }

    /// Adds `item` (released in order, `gap` readings missing before it) and returns its
    /// feature vector. A reading of another profile than the window's (a payload that names a
    /// different profile than before) restarts the window, cold, under the reading's profile:
    /// one window never mixes two profiles' features.
    #[allow(clippy::too_many_arguments)]
    pub fn features(
        &mut self,
        item: &Item,
        gap: u64,
        profiles: &ProfileSet,
        milling: &WindowConfig,
        names: &[String],
        hash: &str,
        now: OffsetDateTime,
    ) -> Features {
        if self.slot() != item.slot {
            *self = Self::new(item.slot, profiles, milling);
        }
        let t = &item.telemetry;
        match self {
            Self::Milling(w) => w.update_with_gap(t, gap).to_message(names, hash, t, now),
            Self::Profile { index, window } => {
                let served = profiles
                    .served(Slot::Other(*index))
                    .expect("a window's profile is served");
                let p = &served.profile;
                let empty;
                let mapped = match &item.mapped {
                    Some(m) => m.as_ref(),
                    None => {
                        empty = Mapped {
                            values: vec![f64::NAN; p.sensors.len()],
                            attributes: vec![None; p.attributes.len()],
                            ignored: Vec::new(),
                        };
                        &empty
                    }
                };
                let t_seconds = (t.ts - OffsetDateTime::UNIX_EPOCH).as_seconds_f64();
                let f = window.update(p, t_seconds, &mapped.values, &mapped.attributes);
                let values = served
                    .names
                    .iter()
                    .zip(&f.values)
                    .map(|(n, v)| (n.clone(), v.is_finite().then_some(*v)))
                    .collect();
                let latest = p
                    .sensors
                    .iter()
                    .zip(&served.latest_at)
                    .filter_map(|(s, &i)| {
                        let v = f.values[i];
                        v.is_finite().then(|| (s.name.clone(), v))
                    })
                    .collect();
                let span = p.windows.long.or(p.windows.short).unwrap_or(1) as u64;
                Features {
                    schema: FEATURES_SCHEMA.to_owned(),
                    machine_id: t.machine_id.clone(),
                    ts: now,
                    source_ts: t.ts,
                    seq: t.seq,
                    feature_set: served.hash.clone(),
                    window_len: window.readings().min(span) as u32,
                    cold: f.cold,
                    values,
                    latest,
                    product_type: t.product_type,
                    gap,
                    profile: Some(p.id.clone()),
                }
            }
        }
    }
}
