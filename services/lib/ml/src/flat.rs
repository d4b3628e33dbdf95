//! The trained trees as flat, compact node arrays, and everything that walks them.
//!
//! All trees live in one `Vec<Node>`, each in pre-order starting at its entry in `roots`, so a
//! node's left child is always the next node and only the right child index is stored (12 bytes
//! a node). A leaf points at itself, so a row reaches its leaf after exactly the tree's depth in
//! steps whatever its path: no data-dependent branches, and batches walk eight rows in lockstep.
//! Serialized as struct-of-arrays and validated on the way in, so a loaded forest can never index
//! out of bounds or loop.

use serde::{Deserialize, Serialize};

/// `Node::feature` value marking a leaf while a tree is being built (see [`FlatForest::push_tree`]).
pub(crate) const LEAF: u32 = u32::MAX;
/// Bit of `Node::feature` set when missing values go to the left child.
pub(crate) const MISSING_LEFT: u32 = 1 << 31;
/// Mask extracting the feature index from `Node::feature`.
pub(crate) const FEATURE_MASK: u32 = !MISSING_LEFT;

/// One node. Internal: go left (next node) when `row[feature] <= threshold`, NaN following
/// `MISSING_LEFT`, else to `right`. In a [`FlatForest`] a leaf has a NaN threshold and `right`
/// pointing at itself, so every comparison fails and stepping from a leaf stays put: a walk
/// can take a fixed number of steps with no branch on "is this a leaf".
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Node {
    /// Feature index plus the `MISSING_LEFT` bit (or `LEAF` in a tree being built).
    pub(crate) feature: u32,
    /// Split threshold on the raw value; NaN in a leaf.
    pub(crate) threshold: f32,
    /// Index of the right child; the node itself for a leaf.
    pub(crate) right: u32,
}

/// The node after `i` for `row`; `i` again at a leaf. A short row reads as missing values.
#[inline(always)]
fn step(nodes: &[Node], i: usize, row: &[f32]) -> usize {
    let n = nodes[i];
    let v = row
        .get((n.feature & FEATURE_MASK) as usize)
        .copied()
        .unwrap_or(f32::NAN);
    let left = (v <= n.threshold) | (v.is_nan() & (n.feature & MISSING_LEFT != 0));
    if left {
        i + 1
    } else {
        n.right as usize
    }
}

/// Every tree of a forest, flattened. Invariants are checked by [`FlatForest::validate_as`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(into = "FlatRepr", try_from = "FlatRepr")]
pub(crate) struct FlatForest {
    pub(crate) n_features: usize,
    /// Index of each tree's root in `nodes`; ascending, first is 0.
    pub(crate) roots: Vec<u32>,
    /// Depth of each tree: the steps that take any row from the root to its leaf.
    pub(crate) depths: Vec<u32>,
    pub(crate) nodes: Vec<Node>,
    /// Weighted positive share of every node (internal ones too, for contributions).
    pub(crate) values: Vec<f32>,
}

impl FlatForest {
    fn is_leaf(&self, i: usize) -> bool {
        self.nodes[i].right as usize == i
    }

    /// Mean leaf probability over all trees. Allocates nothing.
    #[inline]
    pub(crate) fn predict_row(&self, row: &[f32]) -> f32 {
        let mut sum = 0.0f32;
        for (&root, &depth) in self.roots.iter().zip(&self.depths) {
            let mut i = root as usize;
            for _ in 0..depth {
                i = step(&self.nodes, i, row);
            }
            sum += self.values[i];
        }
        sum / self.roots.len().max(1) as f32
    }

    /// Probabilities for consecutive rows of `width` values each (`rows.len() == width *
    /// out.len()`), bit-identical to [`FlatForest::predict_row`] (same summation order).
    ///
    /// Tree-major: each tree stays in cache while the whole block passes through it, and
    /// `LANES` rows walk it in lockstep so their independent node loads overlap.
    pub(crate) fn predict_block(&self, rows: &[f32], width: usize, out: &mut [f32]) {
        const LANES: usize = 8;
        out.fill(0.0);
        for (&root, &depth) in self.roots.iter().zip(&self.depths) {
            let mut groups = rows.chunks_exact(width * LANES);
            let mut sums = out.chunks_exact_mut(LANES);
            for (group, sums) in (&mut groups).zip(&mut sums) {
                let lanes: [&[f32]; LANES] =
                    std::array::from_fn(|k| &group[k * width..(k + 1) * width]);
                let mut idx = [root as usize; LANES];
                for _ in 0..depth {
                    for (i, row) in idx.iter_mut().zip(lanes) {
                        *i = step(&self.nodes, *i, row);
                    }
                }
                for (sum, &i) in sums.iter_mut().zip(&idx) {
                    *sum += self.values[i];
                }
            }
            for (row, sum) in groups.remainder().chunks(width).zip(sums.into_remainder()) {
                let mut i = root as usize;
                for _ in 0..depth {
                    i = step(&self.nodes, i, row);
                }
                *sum += self.values[i];
            }
        }
        let n = self.roots.len().max(1) as f32;
        out.iter_mut().for_each(|p| *p /= n);
    }

    /// Probabilities and Saabas contributions for consecutive rows of `width` values each, the
    /// same numbers as [`FlatForest::predict_row`] and [`FlatForest::contributions`] per row
    /// (same summation order), in one tree-major pass: each tree stays in cache while the
    /// rows walk it, up to eight in lockstep. A leaf steps to itself and adds a zero change,
    /// so every row can take the tree's full depth in steps.
    ///
    /// `proba` gets one value per row; `contrib` is row-major, `n_features` per row; `bias`
    /// is the mean root value, the same for every row.
    pub(crate) fn explain_block(
        &self,
        rows: &[f32],
        width: usize,
        proba: &mut [f32],
        contrib: &mut [f32],
    ) -> f32 {
        const LANES: usize = 8;
        let nf = self.n_features;
        let n_rows = proba.len();
        debug_assert_eq!(rows.len(), width * n_rows);
        debug_assert_eq!(contrib.len(), nf * n_rows);
        let mut acc = vec![0.0f64; nf * n_rows];
        proba.fill(0.0);
        let mut bias = 0.0f64;
        for (&root, &depth) in self.roots.iter().zip(&self.depths) {
            bias += f64::from(self.values[root as usize]);
            for first in (0..n_rows).step_by(LANES) {
                let lanes = LANES.min(n_rows - first);
                let mut idx = [root as usize; LANES];
                for _ in 0..depth {
                    for (k, i) in idx.iter_mut().enumerate().take(lanes) {
                        let r = first + k;
                        let next = step(&self.nodes, *i, &rows[r * width..(r + 1) * width]);
                        let f = (self.nodes[*i].feature & FEATURE_MASK) as usize;
                        // Zero at a leaf (next == i), whose feature field is 0.
                        acc[r * nf + f] +=
                            f64::from(self.values[next]) - f64::from(self.values[*i]);
                        *i = next;
                    }
                }
                for (k, &i) in idx.iter().enumerate().take(lanes) {
                    proba[first + k] += self.values[i];
                }
            }
        }
        let n = self.roots.len().max(1);
        proba.iter_mut().for_each(|p| *p /= n as f32);
        for (c, a) in contrib.iter_mut().zip(acc) {
            *c = (a / n as f64) as f32;
        }
        (bias / n as f64) as f32
    }

    /// Saabas contributions: the mean root value and, per feature, the value changes along paths.
    pub(crate) fn contributions(&self, row: &[f32]) -> (f32, Vec<f32>) {
        let mut contrib = vec![0.0f64; self.n_features];
        let mut bias = 0.0f64;
        for &root in &self.roots {
            let mut i = root as usize;
            bias += f64::from(self.values[i]);
            while !self.is_leaf(i) {
                let next = step(&self.nodes, i, row);
                let f = (self.nodes[i].feature & FEATURE_MASK) as usize;
                contrib[f] += f64::from(self.values[next]) - f64::from(self.values[i]);
                i = next;
            }
        }
        let n = self.roots.len().max(1) as f64;
        let contrib = contrib.into_iter().map(|c| (c / n) as f32).collect();
        ((bias / n) as f32, contrib)
    }

    /// Append one tree in pre-order whose leaves are marked `LEAF` and whose right-child
    /// indices are relative to its own first node.
    pub(crate) fn push_tree(&mut self, nodes: &[Node], values: &[f32]) {
        let offset = self.nodes.len() as u32;
        self.roots.push(offset);
        self.nodes.extend(nodes.iter().enumerate().map(|(i, n)| {
            if n.feature == LEAF {
                Node {
                    feature: 0,
                    threshold: f32::NAN,
                    right: offset + i as u32,
                }
            } else {
                Node {
                    right: n.right + offset,
                    ..*n
                }
            }
        }));
        self.values.extend_from_slice(values);
        let depth = self.tree_depth(self.roots.len() - 1);
        self.depths.push(depth);
    }

    /// Node index range of tree `t`.
    fn tree_span(&self, t: usize) -> (usize, usize) {
        let end = self
            .roots
            .get(t + 1)
            .map_or(self.nodes.len(), |&r| r as usize);
        (self.roots[t] as usize, end)
    }

    /// Longest root-to-leaf path of tree `t` (whose structure must be valid).
    fn tree_depth(&self, t: usize) -> u32 {
        let (start, end) = self.tree_span(t);
        let mut depth = vec![0u32; end - start];
        for i in start..end {
            if !self.is_leaf(i) {
                let d = depth[i - start] + 1;
                depth[i + 1 - start] = d;
                depth[self.nodes[i].right as usize - start] = d;
            }
        }
        depth.into_iter().max().unwrap_or(0)
    }

    /// Mean leaf value over all trees summed in `f64` (the regressor's, whose mean must stay
    /// within the leaf values' range). Allocates nothing.
    pub(crate) fn mean_f64(&self, row: &[f32]) -> f64 {
        let mut sum = 0.0f64;
        for (&root, &depth) in self.roots.iter().zip(&self.depths) {
            let mut i = root as usize;
            for _ in 0..depth {
                i = step(&self.nodes, i, row);
            }
            sum += f64::from(self.values[i]);
        }
        sum / self.roots.len().max(1) as f64
    }

    /// The leaf value every tree gives `row`, in tree order, into `out` (cleared first).
    pub(crate) fn tree_values(&self, row: &[f32], out: &mut Vec<f32>) {
        out.clear();
        for (&root, &depth) in self.roots.iter().zip(&self.depths) {
            let mut i = root as usize;
            for _ in 0..depth {
                i = step(&self.nodes, i, row);
            }
            out.push(self.values[i]);
        }
    }

    /// Check the invariants that make walking the trees panic-free and terminating, the node
    /// values being of `kind` (probabilities for the classifier).
    pub(crate) fn validate_as(&self, kind: Values) -> Result<(), FlatForestError> {
        let n = self.nodes.len();
        if self.values.len() != n {
            return Err(FlatForestError::ValueCount {
                values: self.values.len(),
                nodes: n,
            });
        }
        if self.n_features == 0 {
            return Err(FlatForestError::NoFeatures);
        }
        match self.roots.first() {
            None => return Err(FlatForestError::NoTrees),
            Some(&first) if first != 0 => return Err(FlatForestError::FirstRoot(first)),
            Some(_) => {}
        }
        match kind {
            Values::Probability => {
                if let Some(node) = self.values.iter().position(|v| !(0.0..=1.0).contains(v)) {
                    return Err(FlatForestError::Value {
                        node,
                        value: self.values[node],
                    });
                }
            }
            Values::Finite => {
                if let Some(node) = self.values.iter().position(|v| !v.is_finite()) {
                    return Err(FlatForestError::NonFinite {
                        node,
                        value: self.values[node],
                    });
                }
            }
        }
        for t in 0..self.roots.len() {
            let (start, end) = self.tree_span(t);
            if start >= end || end > n {
                return Err(FlatForestError::TreeSpan {
                    tree: t,
                    start,
                    end,
                    nodes: n,
                });
            }
            for i in start..end {
                let node = &self.nodes[i];
                let r = node.right as usize;
                if r == i {
                    continue; // leaf
                }
                let feature = (node.feature & FEATURE_MASK) as usize;
                if feature >= self.n_features {
                    return Err(FlatForestError::UnknownFeature {
                        node: i,
                        feature,
                        n_features: self.n_features,
                    });
                }
                if i + 1 >= end || r <= i + 1 || r >= end {
                    return Err(FlatForestError::ChildOutside {
                        node: i,
                        right: r,
                        tree: t,
                        start,
                        end,
                    });
                }
            }
        }
        Ok(())
    }
}

/// What the node values of a [`FlatForest`] are, for validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Values {
    /// Probabilities in `[0, 1]` (the classifier).
    Probability,
    /// Any finite number (the regressor's means).
    Finite,
}

/// Regression trees: a [`FlatForest`] whose values are finite numbers rather than
/// probabilities. Serialized exactly like the classifier's trees (the same parallel arrays),
/// validated with [`Values::Finite`] on the way in.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(into = "FlatRepr", try_from = "FlatRepr")]
pub(crate) struct RegressionTrees(pub(crate) FlatForest);

impl From<RegressionTrees> for FlatRepr {
    fn from(t: RegressionTrees) -> Self {
        FlatRepr::from(t.0)
    }
}

impl TryFrom<FlatRepr> for RegressionTrees {
    type Error = FlatForestError;

    fn try_from(r: FlatRepr) -> Result<Self, FlatForestError> {
        FlatForest::from_repr(r, Values::Finite).map(RegressionTrees)
    }
}

/// Why serialized trees were refused: they would index out of bounds or loop when walked.
/// Reported by serde while deserializing a forest (so inside `ArtifactError::Json`).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub(crate) enum FlatForestError {
    /// The node arrays (`feature`, `threshold`, `missing_left`, `right`, `value`) differ in
    /// length.
    #[error(
        "node arrays differ in length (feature {feature}, threshold {threshold}, missing_left {missing_left}, right {right}, value {value})"
    )]
    ArrayLengths {
        /// Entries of `feature`.
        feature: usize,
        /// Entries of `threshold`.
        threshold: usize,
        /// Entries of `missing_left`.
        missing_left: usize,
        /// Entries of `right`.
        right: usize,
        /// Entries of `value`.
        value: usize,
    },
    /// More nodes than a `u32` index reaches.
    #[error("too many nodes (node {0} has no u32 index)")]
    TooManyNodes(usize),
    /// An internal node's feature index is negative-but-not-leaf or does not fit the index bits.
    #[error("node {node} has feature index {feature}")]
    FeatureIndex {
        /// The node.
        node: usize,
        /// Its stored feature index.
        feature: i64,
    },
    /// An internal node's right child does not come after its left one (the next node).
    #[error("node {node} has its right child before its left (right child {right})")]
    RightBeforeLeft {
        /// The node.
        node: usize,
        /// Its right child.
        right: u32,
    },
    /// The values do not match the nodes one to one.
    #[error("{values} values for {nodes} nodes")]
    ValueCount {
        /// Values given.
        values: usize,
        /// Nodes given.
        nodes: usize,
    },
    /// `n_features` is 0.
    #[error("forest has no features")]
    NoFeatures,
    /// `roots` is empty.
    #[error("forest has no trees")]
    NoTrees,
    /// The first tree does not start at node 0.
    #[error("the first root is node {0}, not 0")]
    FirstRoot(u32),
    /// A node's value is not a probability.
    #[error("node {node} has value {value}, outside [0, 1]")]
    Value {
        /// The node.
        node: usize,
        /// Its value.
        value: f32,
    },
    /// A regression node's value is NaN or infinite.
    #[error("node {node} has value {value}, not a finite number")]
    NonFinite {
        /// The node.
        node: usize,
        /// Its value.
        value: f32,
    },
    /// A tree's nodes (from its root to the next root) are empty or past the node array.
    #[error(
        "tree {tree} has an empty or out-of-range node span ({start}..{end} of {nodes} nodes)"
    )]
    TreeSpan {
        /// The tree.
        tree: usize,
        /// Its root.
        start: usize,
        /// The next tree's root (or the node count).
        end: usize,
        /// Nodes in the forest.
        nodes: usize,
    },
    /// A node splits on a feature the forest does not have.
    #[error("node {node} splits on unknown feature {feature} (the forest has {n_features})")]
    UnknownFeature {
        /// The node.
        node: usize,
        /// The feature index it splits on.
        feature: usize,
        /// Features of the forest.
        n_features: usize,
    },
    /// A node's children are not inside its own tree, after it.
    #[error("node {node} has children outside its tree (right child {right}, tree {tree} spans {start}..{end})")]
    ChildOutside {
        /// The node.
        node: usize,
        /// Its right child.
        right: usize,
        /// Its tree.
        tree: usize,
        /// The tree's first node.
        start: usize,
        /// One past the tree's last node.
        end: usize,
    },
}

/// On-disk form: parallel arrays; `feature` is -1 for leaves.
#[derive(Serialize, Deserialize)]
struct FlatRepr {
    n_features: usize,
    roots: Vec<u32>,
    feature: Vec<i64>,
    threshold: Vec<f32>,
    missing_left: Vec<bool>,
    right: Vec<u32>,
    value: Vec<f32>,
}

impl From<FlatForest> for FlatRepr {
    fn from(f: FlatForest) -> Self {
        let n = f.nodes.len();
        let (mut feature, mut threshold, mut missing_left, mut right) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (i, node) in f.nodes.iter().enumerate() {
            let leaf = f.is_leaf(i);
            feature.push(if leaf {
                -1
            } else {
                i64::from(node.feature & FEATURE_MASK)
            });
            threshold.push(if leaf { 0.0 } else { node.threshold });
            missing_left.push(!leaf && node.feature & MISSING_LEFT != 0);
            right.push(if leaf { 0 } else { node.right });
        }
        Self {
            n_features: f.n_features,
            roots: f.roots,
            feature,
            threshold,
            missing_left,
            right,
            value: f.values,
        }
    }
}

impl TryFrom<FlatRepr> for FlatForest {
    type Error = FlatForestError;

    fn try_from(r: FlatRepr) -> Result<Self, FlatForestError> {
        FlatForest::from_repr(r, Values::Probability)
    }
}

impl FlatForest {
    /// Decode and validate the on-disk form, the values being of `kind`.
    fn from_repr(r: FlatRepr, kind: Values) -> Result<Self, FlatForestError> {
        let n = r.feature.len();
        let lengths = [
            r.threshold.len(),
            r.missing_left.len(),
            r.right.len(),
            r.value.len(),
        ];
        if lengths.iter().any(|&len| len != n) {
            return Err(FlatForestError::ArrayLengths {
                feature: n,
                threshold: r.threshold.len(),
                missing_left: r.missing_left.len(),
                right: r.right.len(),
                value: r.value.len(),
            });
        }
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let node = if r.feature[i] < 0 {
                let right = u32::try_from(i).map_err(|_| FlatForestError::TooManyNodes(i))?;
                Node {
                    feature: 0,
                    threshold: f32::NAN,
                    right,
                }
            } else {
                let f = u32::try_from(r.feature[i])
                    .ok()
                    .filter(|&f| f < MISSING_LEFT)
                    .ok_or(FlatForestError::FeatureIndex {
                        node: i,
                        feature: r.feature[i],
                    })?;
                if (r.right[i] as usize) <= i + 1 {
                    return Err(FlatForestError::RightBeforeLeft {
                        node: i,
                        right: r.right[i],
                    });
                }
                let flag = if r.missing_left[i] { MISSING_LEFT } else { 0 };
                Node {
                    feature: f | flag,
                    threshold: r.threshold[i],
                    right: r.right[i],
                }
            };
            nodes.push(node);
        }
        let mut forest = FlatForest {
            n_features: r.n_features,
            roots: r.roots,
            depths: Vec::new(),
            nodes,
            values: r.value,
        };
        forest.validate_as(kind)?;
        forest.depths = (0..forest.roots.len())
            .map(|t| forest.tree_depth(t))
            .collect();
        Ok(forest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One tree: the root splits feature 0 at 0.5 into leaves 0.2 (left) and 0.8 (right).
    fn repr() -> FlatRepr {
        FlatRepr {
            n_features: 1,
            roots: vec![0],
            feature: vec![0, -1, -1],
            threshold: vec![0.5, 0.0, 0.0],
            missing_left: vec![false; 3],
            right: vec![2, 0, 0],
            value: vec![0.5, 0.2, 0.8],
        }
    }

    fn refused(change: impl FnOnce(&mut FlatRepr)) -> FlatForestError {
        let mut r = repr();
        change(&mut r);
        FlatForest::try_from(r).expect_err("corrupted trees are refused")
    }

    #[test]
    fn a_valid_repr_loads_and_walks() {
        let f = FlatForest::try_from(repr()).unwrap();
        assert_eq!(f.depths, vec![1]);
        assert_eq!(f.predict_row(&[0.1]), 0.2);
        assert_eq!(f.predict_row(&[0.9]), 0.8);
    }

    #[test]
    fn each_decoding_failure_has_its_own_error() {
        let e = refused(|r| {
            r.value.pop();
        });
        assert_eq!(
            e,
            FlatForestError::ArrayLengths {
                feature: 3,
                threshold: 3,
                missing_left: 3,
                right: 3,
                value: 2
            }
        );
        assert_eq!(
            e.to_string(),
            "node arrays differ in length (feature 3, threshold 3, missing_left 3, right 3, value 2)"
        );
        let e = refused(|r| r.feature[0] = i64::from(MISSING_LEFT));
        assert_eq!(
            e,
            FlatForestError::FeatureIndex {
                node: 0,
                feature: 1 << 31
            }
        );
        assert_eq!(e.to_string(), "node 0 has feature index 2147483648");
        let e = refused(|r| r.right[0] = 1);
        assert_eq!(e, FlatForestError::RightBeforeLeft { node: 0, right: 1 });
        assert_eq!(
            e.to_string(),
            "node 0 has its right child before its left (right child 1)"
        );
    }

    #[test]
    fn each_broken_invariant_has_its_own_error() {
        assert_eq!(refused(|r| r.n_features = 0), FlatForestError::NoFeatures);
        assert_eq!(refused(|r| r.roots.clear()), FlatForestError::NoTrees);
        assert_eq!(
            refused(|r| r.roots = vec![1]),
            FlatForestError::FirstRoot(1)
        );
        let e = refused(|r| r.value[1] = 1.5);
        assert_eq!(
            e,
            FlatForestError::Value {
                node: 1,
                value: 1.5
            }
        );
        assert_eq!(e.to_string(), "node 1 has value 1.5, outside [0, 1]");
        assert!(matches!(
            refused(|r| r.value[2] = f32::NAN),
            FlatForestError::Value { node: 2, .. }
        ));
        // A second root at the end: tree 1 has no nodes.
        let e = refused(|r| r.roots = vec![0, 3]);
        assert_eq!(
            e,
            FlatForestError::TreeSpan {
                tree: 1,
                start: 3,
                end: 3,
                nodes: 3
            }
        );
        assert!(e
            .to_string()
            .starts_with("tree 1 has an empty or out-of-range node span"));
        let e = refused(|r| r.feature[0] = 3);
        assert_eq!(
            e,
            FlatForestError::UnknownFeature {
                node: 0,
                feature: 3,
                n_features: 1
            }
        );
        assert!(e
            .to_string()
            .starts_with("node 0 splits on unknown feature"));
        // A second tree starting at node 2 cuts the root's right child off its tree.
        let e = refused(|r| r.roots = vec![0, 2]);
        assert_eq!(
            e,
            FlatForestError::ChildOutside {
                node: 0,
                right: 2,
                tree: 0,
                start: 0,
                end: 2
            }
        );
        assert!(e
            .to_string()
            .starts_with("node 0 has children outside its tree"));
        // validate on its own: values that do not match the nodes.
        let mut f = FlatForest::try_from(repr()).unwrap();
        f.values.pop();
        assert_eq!(
            f.validate_as(Values::Probability),
            Err(FlatForestError::ValueCount {
                values: 2,
                nodes: 3
            })
        );
        assert_eq!(
            f.validate_as(Values::Probability).unwrap_err().to_string(),
            "2 values for 3 nodes"
        );
    }

    #[test]
    fn regression_trees_take_any_finite_value() {
        let mut r = repr();
        r.value = vec![50.0, -3.5, 125.0];
        let t = RegressionTrees::try_from(r).unwrap();
        assert_eq!(t.0.predict_row(&[0.9]), 125.0);
        let mut out = Vec::new();
        t.0.tree_values(&[0.1], &mut out);
        assert_eq!(out, vec![-3.5]);
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["value"], serde_json::json!([50.0, -3.5, 125.0]));
        // The classifier refuses these values; NaN is refused by both.
        assert!(matches!(
            serde_json::from_value::<FlatForest>(json.clone()),
            Err(e) if e.to_string().contains("outside [0, 1]")
        ));
        let mut r = repr();
        r.value[2] = f32::INFINITY;
        let e = RegressionTrees::try_from(r).unwrap_err();
        assert_eq!(
            e,
            FlatForestError::NonFinite {
                node: 2,
                value: f32::INFINITY
            }
        );
        assert_eq!(e.to_string(), "node 2 has value inf, not a finite number");
    }

    #[test]
    fn serde_reports_the_reason() {
        let mut v = serde_json::to_value(repr()).unwrap();
        v["right"][0] = 1.into();
        let e = serde_json::from_value::<FlatForest>(v).unwrap_err();
        assert!(
            e.to_string()
                .contains("node 0 has its right child before its left"),
            "{e}"
        );
    }
}
