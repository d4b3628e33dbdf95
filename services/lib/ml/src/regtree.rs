//! Grow one regression tree on the `u8` bin matrix: splits by variance reduction, leaves hold
//! the (bootstrap-weighted) mean target.
//!
//! The same machinery as the classifier's `tree.rs`: bootstrap as per-row counts, features
//! visited in random order until `max_features` gave a valid split, every bin edge scored twice
//! when the node has missing values (sending them left, then right), a learned direction for
//! missing values, pre-order nodes whose thresholds are the bins' real cut points. Per bin the
//! histogram holds the weight, the weighted sum of the (centred) target and the row count; the
//! sum of squared errors of a child is `S2 - S1² / W`, and since the node's `S2` is shared by
//! both children a split is scored by `S1_l² / W_l + S1_r² / W_r` (higher is better), which needs
//! no squares per bin.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::binning::{BinMapper, NAN_BIN};
use crate::flat::{Node, LEAF, MISSING_LEFT};
use crate::tree::{partition, GrownTree, Task, TreeConfig};

/// Shared, read-only training data for regression.
pub(crate) struct RegData<'a> {
    /// Column-major bins: `bins[f * n_rows + row]`.
    pub(crate) bins: &'a [u8],
    pub(crate) n_rows: usize,
    pub(crate) n_features: usize,
    pub(crate) mapper: &'a BinMapper,
    /// Targets minus `offset`, so sums of squares do not cancel for large targets.
    pub(crate) y: &'a [f64],
    /// Added back to every node value.
    pub(crate) offset: f64,
    /// The smallest and largest original target; node values are kept inside.
    pub(crate) range: (f32, f32),
}

/// A candidate split of one node.
#[derive(Clone, Copy)]
struct Split {
    feature: usize,
    bin: usize,
    missing_left: bool,
    /// `S1_l² / W_l + S1_r² / W_r` (higher is better).
    score: f64,
}

/// Histogram buffers, one slot per bin (including the NaN bin).
struct Histogram {
    w: [f64; 256],
    s1: [f64; 256],
    count: [u32; 256],
}

/// `S1² / W`, 0 for an empty side.
#[inline]
fn explained(s1: f64, w: f64) -> f64 {
    if w > 0.0 {
        s1 * s1 / w
    } else {
        0.0
    }
}

/// Grow one regression tree. All randomness comes from `rng`, so the tree depends only on its
/// seed.
pub(crate) fn grow(data: &RegData, cfg: &TreeConfig, rng: &mut ChaCha8Rng) -> GrownTree {
    let n = data.n_rows;
    let mut counts = vec![0u32; n];
    if cfg.bootstrap {
        for _ in 0..n {
            counts[rng.random_range(0..n)] += 1;
        }
    } else {
        counts.fill(1);
    }
    let mut w = vec![0.0f64; n];
    let mut wy = vec![0.0f64; n];
    let mut idx: Vec<u32> = Vec::with_capacity(n);
    for r in 0..n {
        if counts[r] == 0 {
            continue;
        }
        w[r] = f64::from(counts[r]);
        wy[r] = w[r] * data.y[r];
        idx.push(r as u32);
    }

    let mut grower = Grower {
        data,
        cfg,
        w: &w,
        wy: &wy,
        hist: Box::new(Histogram {
            w: [0.0; 256],
            s1: [0.0; 256],
            count: [0; 256],
        }),
        order: (0..data.n_features).collect(),
    };
    let mut out = GrownTree {
        nodes: Vec::new(),
        values: Vec::new(),
        importance: vec![0.0; data.n_features],
    };
    let mut stack = vec![Task {
        start: 0,
        end: idx.len(),
        depth: 0,
        parent: None,
    }];
    while let Some(task) = stack.pop() {
        let me = out.nodes.len();
        if let Some(p) = task.parent {
            out.nodes[p].right = me as u32;
        }
        let rows = &idx[task.start..task.end];
        let (mut sw, mut s1, mut s2) = (0.0f64, 0.0f64, 0.0f64);
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &r in rows {
            let r = r as usize;
            let y = data.y[r];
            sw += w[r];
            s1 += wy[r];
            s2 += wy[r] * y;
            lo = lo.min(y);
            hi = hi.max(y);
        }
        let mean = if sw > 0.0 { s1 / sw } else { 0.0 };
        // Rounding after removing the offset could step just outside the targets' range.
        let value = ((data.offset + mean) as f32).clamp(data.range.0, data.range.1);
        out.values.push(value);
        let n_node = task.end - task.start;
        let splittable = task.depth < cfg.max_depth
            && n_node >= cfg.min_samples_split
            && n_node >= 2 * cfg.min_samples_leaf
            && hi > lo;
        let parent_sse = (s2 - explained(s1, sw)).max(0.0);
        let split = if splittable {
            grower.best_split(rows, s1, sw, parent_sse, rng)
        } else {
            None
        };
        let Some(split) = split else {
            out.nodes.push(Node {
                feature: LEAF,
                threshold: value,
                right: 0,
            });
            continue;
        };
        out.importance[split.feature] += split.score - explained(s1, sw);
        let col = &data.bins[split.feature * n..(split.feature + 1) * n];
        let rows = &mut idx[task.start..task.end];
        let mid = task.start + partition(rows, col, split.bin, split.missing_left);
        let cuts = data.mapper.cuts(split.feature);
        // Past the last cut, every non-missing value goes left; keep thresholds finite for JSON.
        let threshold = cuts.get(split.bin).map_or(f32::MAX, |c| c.max(f32::MIN));
        let flag = if split.missing_left { MISSING_LEFT } else { 0 };
        out.nodes.push(Node {
            feature: split.feature as u32 | flag,
            threshold,
            right: 0,
        });
        let depth = task.depth + 1;
        stack.push(Task {
            start: mid,
            end: task.end,
            depth,
            parent: Some(me),
        });
        stack.push(Task {
            start: task.start,
            end: mid,
            depth,
            parent: None,
        });
    }
    out
}

/// Per-tree split-search state and scratch space.
struct Grower<'a> {
    data: &'a RegData<'a>,
    cfg: &'a TreeConfig,
    w: &'a [f64],
    wy: &'a [f64],
    hist: Box<Histogram>,
    order: Vec<usize>,
}

impl Grower<'_> {
    /// The best split of a node holding `rows` with target sum `s1`, weight `sw` and sum of
    /// squared errors `parent_sse`.
    fn best_split(
        &mut self,
        rows: &[u32],
        s1: f64,
        sw: f64,
        parent_sse: f64,
        rng: &mut ChaCha8Rng,
    ) -> Option<Split> {
        let n_features = self.data.n_features;
        let parent = explained(s1, sw);
        // A split must remove a non-negligible share of the node's squared error.
        let min_gain = 1e-9 * parent_sse;
        let mut best: Option<Split> = None;
        for k in 0..n_features {
            if k >= self.cfg.max_features && best.is_some() {
                break;
            }
            let j = rng.random_range(k..n_features);
            self.order.swap(k, j);
            let f = self.order[k];
            if let Some(s) = self.best_split_on(f, rows) {
                if s.score - parent > min_gain && best.is_none_or(|b| s.score > b.score) {
                    best = Some(s);
                }
            }
        }
        best
    }

    /// The best split of `rows` on feature `f`, if any respects `min_samples_leaf`.
    fn best_split_on(&mut self, f: usize, rows: &[u32]) -> Option<Split> {
        let n_bins = self.data.mapper.n_bins(f);
        let h = &mut *self.hist;
        h.w[..n_bins].fill(0.0);
        h.s1[..n_bins].fill(0.0);
        h.count[..n_bins].fill(0);
        let nan = usize::from(NAN_BIN);
        h.w[nan] = 0.0;
        h.s1[nan] = 0.0;
        h.count[nan] = 0;
        let n = self.data.n_rows;
        let col = &self.data.bins[f * n..(f + 1) * n];
        for &r in rows {
            let r = r as usize;
            let b = usize::from(col[r]);
            h.w[b] += self.w[r];
            h.s1[b] += self.wy[r];
            h.count[b] += 1;
        }
        let (mw, ms, mc) = (h.w[nan], h.s1[nan], h.count[nan] as usize);
        let total_c = rows.len() - mc;
        let total_w: f64 = h.w[..n_bins].iter().sum();
        let total_s: f64 = h.s1[..n_bins].iter().sum();
        let min_leaf = self.cfg.min_samples_leaf;

        let mut best: Option<Split> = None;
        let (mut lw, mut ls, mut lc) = (0.0, 0.0, 0usize);
        for b in 0..n_bins {
            lw += h.w[b];
            ls += h.s1[b];
            lc += h.count[b] as usize;
            if h.count[b] == 0 && b + 1 < n_bins {
                continue; // same partition as the previous edge
            }
            let (rw, rs, rc) = (total_w - lw, total_s - ls, total_c - lc);
            // With no missing values in the node, send future missing values the heavier way.
            let options: &[bool] = if mc > 0 {
                &[true, false]
            } else if lw >= rw {
                &[true]
            } else {
                &[false]
            };
            for &missing_left in options {
                let (l, r) = if missing_left {
                    ((lw + mw, ls + ms, lc + mc), (rw, rs, rc))
                } else {
                    ((lw, ls, lc), (rw + mw, rs + ms, rc + mc))
                };
                if l.2 < min_leaf || r.2 < min_leaf {
                    continue;
                }
                let score = explained(l.1, l.0) + explained(r.1, r.0);
                if best.is_none_or(|s| score > s.score) {
                    best = Some(Split {
                        feature: f,
                        bin: b,
                        missing_left,
                        score,
                    });
                }
            }
        }
        best
    }
}
