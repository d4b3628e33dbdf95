//! Growing one tree on binned data with weighted gini and per-split feature sampling.
//!
//! Rows are a list of indices partitioned in place; a node owns a contiguous range of it. At each
//! node, features are visited in a random order; for each, a histogram of weighted class totals
//! per bin is built over the node's rows and every bin edge is scored twice (missing values left,
//! missing values right). The search stops after `max_features` features once a valid split was
//! found (like scikit-learn, it keeps looking past `max_features` if none was). Nodes are
//! emitted in pre-order so the left child is always the next node.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::binning::{BinMapper, NAN_BIN};
use crate::flat::{Node, LEAF, MISSING_LEFT};

/// Shared, read-only training data.
pub(crate) struct TrainData<'a> {
    /// Column-major bins: `bins[f * n_rows + row]`.
    pub(crate) bins: &'a [u8],
    pub(crate) n_rows: usize,
    pub(crate) n_features: usize,
    pub(crate) mapper: &'a BinMapper,
    pub(crate) y: &'a [bool],
    /// Weight of a negative and of a positive row.
    pub(crate) class_weight: [f64; 2],
}

/// Resolved per-tree settings.
pub(crate) struct TreeConfig {
    pub(crate) max_depth: usize,
    pub(crate) min_samples_split: usize,
    pub(crate) min_samples_leaf: usize,
    pub(crate) max_features: usize,
    pub(crate) bootstrap: bool,
}

/// One grown tree; right-child indices are relative to the tree's first node.
pub(crate) struct GrownTree {
    pub(crate) nodes: Vec<Node>,
    pub(crate) values: Vec<f32>,
    /// Weighted impurity decrease per feature, summed over this tree's splits.
    pub(crate) importance: Vec<f64>,
}

/// A candidate split of one node.
#[derive(Clone, Copy)]
struct Split {
    feature: usize,
    bin: usize,
    missing_left: bool,
    /// Sum of the children's weighted gini impurities (lower is better).
    score: f64,
}

/// A node waiting to be processed: its row range, depth and, for right children, the parent.
pub(crate) struct Task {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) depth: usize,
    pub(crate) parent: Option<usize>,
}

/// Histogram buffers, one slot per bin (including the NaN bin).
struct Histogram {
    pos: [f64; 256],
    neg: [f64; 256],
    count: [u32; 256],
}

/// Weighted gini impurity times total weight: `2 p n / (p + n)`.
#[inline]
fn gini_w(p: f64, n: f64) -> f64 {
    let w = p + n;
    if w > 0.0 {
        2.0 * p * n / w
    } else {
        0.0
    }
}

/// Grow one tree. All randomness comes from `rng`, so the tree depends only on its seed.
pub(crate) fn grow(data: &TrainData, cfg: &TreeConfig, rng: &mut ChaCha8Rng) -> GrownTree {
    let n = data.n_rows;
    let mut counts = vec![0u32; n];
    if cfg.bootstrap {
        for _ in 0..n {
            counts[rng.random_range(0..n)] += 1;
        }
    } else {
        counts.fill(1);
    }
    // Per-row weight split by class, so histogram building needs no branch.
    let mut wpos = vec![0.0f64; n];
    let mut wneg = vec![0.0f64; n];
    let mut idx: Vec<u32> = Vec::with_capacity(n);
    for r in 0..n {
        if counts[r] == 0 {
            continue;
        }
        let w = f64::from(counts[r]) * data.class_weight[usize::from(data.y[r])];
        if data.y[r] {
            wpos[r] = w;
        } else {
            wneg[r] = w;
        }
        idx.push(r as u32);
    }

    let mut grower = Grower {
        data,
        cfg,
        wpos: &wpos,
        wneg: &wneg,
        hist: Box::new(Histogram {
            pos: [0.0; 256],
            neg: [0.0; 256],
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
        let (p, q) = rows.iter().fold((0.0, 0.0), |(p, q), &r| {
            (p + wpos[r as usize], q + wneg[r as usize])
        });
        let value = if p + q > 0.0 {
            (p / (p + q)) as f32
        } else {
            0.0
        };
        out.values.push(value);
        let n_node = task.end - task.start;
        let splittable = task.depth < cfg.max_depth
            && n_node >= cfg.min_samples_split
            && n_node >= 2 * cfg.min_samples_leaf
            && p > 0.0
            && q > 0.0;
        let split = if splittable {
            grower.best_split(rows, p, q, rng)
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
        out.importance[split.feature] += gini_w(p, q) - split.score;
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

/// Move the rows going left (bin in `col` at most `bin`, or missing when `missing_left`) to
/// the front; returns how many went left.
pub(crate) fn partition(rows: &mut [u32], col: &[u8], bin: usize, missing_left: bool) -> usize {
    let goes_left = |r: u32| {
        let b = col[r as usize];
        usize::from(b) <= bin && b != NAN_BIN || (b == NAN_BIN && missing_left)
    };
    let mut left = 0;
    for i in 0..rows.len() {
        if goes_left(rows[i]) {
            rows.swap(left, i);
            left += 1;
        }
    }
    left
}

/// Per-tree split-search state and scratch space.
struct Grower<'a> {
    data: &'a TrainData<'a>,
    cfg: &'a TreeConfig,
    wpos: &'a [f64],
    wneg: &'a [f64],
    hist: Box<Histogram>,
    order: Vec<usize>,
}

impl Grower<'_> {
    /// The best split of a node holding `rows` with class weights `p` (positive) and `q`.
    fn best_split(&mut self, rows: &[u32], p: f64, q: f64, rng: &mut ChaCha8Rng) -> Option<Split> {
        let n_features = self.data.n_features;
        let parent = gini_w(p, q);
        let min_gain = 1e-12 * (p + q);
        let mut best: Option<Split> = None;
        for k in 0..n_features {
            if k >= self.cfg.max_features && best.is_some() {
                break;
            }
            let j = rng.random_range(k..n_features);
            self.order.swap(k, j);
            let f = self.order[k];
            if let Some(s) = self.best_split_on(f, rows) {
                if parent - s.score > min_gain && best.is_none_or(|b| s.score < b.score) {
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
        h.pos[..n_bins].fill(0.0);
        h.neg[..n_bins].fill(0.0);
        h.count[..n_bins].fill(0);
        let nan = usize::from(NAN_BIN);
        h.pos[nan] = 0.0;
        h.neg[nan] = 0.0;
        h.count[nan] = 0;
        let n = self.data.n_rows;
        let col = &self.data.bins[f * n..(f + 1) * n];
        for &r in rows {
            let r = r as usize;
            let b = usize::from(col[r]);
            h.pos[b] += self.wpos[r];
            h.neg[b] += self.wneg[r];
            h.count[b] += 1;
        }
        let (mp, mq, mc) = (h.pos[nan], h.neg[nan], h.count[nan] as usize);
        let total_c = rows.len() - mc;
        let total_p: f64 = h.pos[..n_bins].iter().sum();
        let total_q: f64 = h.neg[..n_bins].iter().sum();
        let min_leaf = self.cfg.min_samples_leaf;

        let mut best: Option<Split> = None;
        let (mut lp, mut lq, mut lc) = (0.0, 0.0, 0usize);
        for b in 0..n_bins {
            lp += h.pos[b];
            lq += h.neg[b];
            lc += h.count[b] as usize;
            if h.count[b] == 0 && b + 1 < n_bins {
                continue; // same partition as the previous edge
            }
            let (rp, rq, rc) = (total_p - lp, total_q - lq, total_c - lc);
            // With no missing values in the node, send future missing values the heavier way.
            let options: &[bool] = if mc > 0 {
                &[true, false]
            } else if lp + lq >= rp + rq {
                &[true]
            } else {
                &[false]
            };
            for &missing_left in options {
                let (l, r) = if missing_left {
                    ((lp + mp, lq + mq, lc + mc), (rp, rq, rc))
                } else {
                    ((lp, lq, lc), (rp + mp, rq + mq, rc + mc))
                };
                if l.2 < min_leaf || r.2 < min_leaf {
                    continue;
                }
                let score = gini_w(l.0, l.1) + gini_w(r.0, r.1);
                if best.is_none_or(|s| score < s.score) {
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
