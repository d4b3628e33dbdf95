//! Window statistics for the extended feature set: a count window (the last N readings) or a
//! time window (readings whose timestamp lies within the last S seconds), each giving mean,
//! standard deviation, min, max, first/last value and the least-squares slope in O(1)
//! amortised work per push, plus an exponentially weighted moving average.
//!
//! - mean, std, slope: running sums shifted by a reference point (the oldest value at the last
//!   exact recomputation), recomputed exactly from the buffer once every `max(len, 64)` pushes
//!   so floating-point drift stays bounded while the amortised cost stays O(1);
//! - min, max: monotonic deques (each value enters and leaves each deque once);
//! - memory: a count window holds at most N values, a time window at most `max_points` (a
//!   machine reporting faster than `max_points / S` Hz sees a window shorter than S).

use std::collections::VecDeque;

/// Which readings a window holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Span {
    /// The last `n` readings; slope is per reading.
    Count(usize),
    /// Readings at most `seconds` older than the newest, at most `max_points` of them; slope
    /// is per second.
    Time {
        /// Width in seconds.
        seconds: f64,
        /// Bound on the values held.
        max_points: usize,
    },
}

#[derive(Debug, Clone, Copy)]
struct Item {
    t: f64,
    x: f64,
}

/// Incremental statistics over a [`Span`].
#[derive(Debug, Clone)]
pub struct WindowStats {
    span: Span,
    items: VecDeque<Item>,
    /// Push numbers of the candidates for the minimum (values increasing front to back).
    min_q: VecDeque<u64>,
    /// Push numbers of the candidates for the maximum (values decreasing front to back).
    max_q: VecDeque<u64>,
    /// Values pushed so far; the front item's push number is `pushes - items.len()`.
    pushes: u64,
    /// Shift of `t` and `x` in the sums (precision: the sums stay small).
    t0: f64,
    x0: f64,
    sx: f64,
    sxx: f64,
    st: f64,
    stt: f64,
    stx: f64,
    since_exact: usize,
}

impl WindowStats {
    /// An empty window.
    pub fn new(span: Span) -> Self {
        let span = match span {
            Span::Count(n) => Span::Count(n.max(1)),
            Span::Time {
                seconds,
                max_points,
            } => Span::Time {
                seconds: if seconds.is_finite() {
                    seconds.max(0.0)
                } else {
                    0.0
                },
                max_points: max_points.max(1),
            },
        };
        let cap = match span {
            Span::Count(n) => n,
            Span::Time { .. } => 16,
        };
        Self {
            span,
            items: VecDeque::with_capacity(cap),
            min_q: VecDeque::new(),
            max_q: VecDeque::new(),
            pushes: 0,
            t0: 0.0,
            x0: 0.0,
            sx: 0.0,
            sxx: 0.0,
            st: 0.0,
            stt: 0.0,
            stx: 0.0,
            since_exact: 0,
        }
    }

    /// The span.
    pub fn span(&self) -> Span {
        self.span
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds `x` observed at `t_seconds` (ignored for count windows). A timestamp older than the
    /// newest one held counts as the newest (windows never run backwards).
    pub fn push(&mut self, t_seconds: f64, x: f64) {
        let idx = self.pushes;
        self.pushes += 1;
        let t = match self.span {
            Span::Count(_) => idx as f64,
            Span::Time { .. } => {
                let last = self.items.back().map_or(f64::NEG_INFINITY, |i| i.t);
                if t_seconds.is_finite() {
                    t_seconds.max(last)
                } else {
                    last.max(0.0)
                }
            }
        };
        if self.items.is_empty() {
            self.t0 = t;
            self.x0 = x;
        }
        let item = Item { t, x };
        self.items.push_back(item);
        self.add(item, 1.0);
        while self.min_q.back().is_some_and(|&b| self.at(b).x >= x) {
            self.min_q.pop_back();
        }
        self.min_q.push_back(idx);
        while self.max_q.back().is_some_and(|&b| self.at(b).x <= x) {
            self.max_q.pop_back();
        }
        self.max_q.push_back(idx);
        self.evict(t);
        self.since_exact += 1;
        if self.since_exact >= self.items.len().max(64) {
            self.recompute();
        }
    }

    /// The item pushed as number `idx` (must still be held).
    fn at(&self, idx: u64) -> Item {
        let front = self.pushes - self.items.len() as u64;
        self.items[(idx - front) as usize]
    }

    fn add(&mut self, i: Item, sign: f64) {
        let (t, x) = (i.t - self.t0, i.x - self.x0);
        self.sx += sign * x;
        self.sxx += sign * x * x;
        self.st += sign * t;
        self.stt += sign * t * t;
        self.stx += sign * t * x;
    }

    fn evict(&mut self, now: f64) {
        loop {
            let Some(front) = self.items.front().copied() else {
                return;
            };
            let out = match self.span {
                Span::Count(n) => self.items.len() > n,
                Span::Time {
                    seconds,
                    max_points,
                } => self.items.len() > max_points || front.t < now - seconds,
            };
            if !out {
                return;
            }
            let front_idx = self.pushes - self.items.len() as u64;
            self.items.pop_front();
            self.add(front, -1.0);
            if self.min_q.front() == Some(&front_idx) {
                self.min_q.pop_front();
            }
            if self.max_q.front() == Some(&front_idx) {
                self.max_q.pop_front();
            }
        }
    }

    fn recompute(&mut self) {
        self.since_exact = 0;
        let Some(front) = self.items.front().copied() else {
            return;
        };
        self.t0 = front.t;
        self.x0 = front.x;
        (self.sx, self.sxx, self.st, self.stt, self.stx) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for i in 0..self.items.len() {
            let item = self.items[i];
            self.add(item, 1.0);
        }
    }

    /// Mean, NaN when empty.
    pub fn mean(&self) -> f64 {
        let n = self.items.len() as f64;
        if n == 0.0 {
            f64::NAN
        } else {
            self.x0 + self.sx / n
        }
    }

    /// Population standard deviation, NaN when empty.
    pub fn std(&self) -> f64 {
        let n = self.items.len() as f64;
        if n == 0.0 {
            return f64::NAN;
        }
        let m = self.sx / n;
        (self.sxx / n - m * m).max(0.0).sqrt()
    }

    /// Smallest value, NaN when empty.
    pub fn min(&self) -> f64 {
        self.min_q.front().map_or(f64::NAN, |&i| self.at(i).x)
    }

    /// Largest value, NaN when empty.
    pub fn max(&self) -> f64 {
        self.max_q.front().map_or(f64::NAN, |&i| self.at(i).x)
    }

    /// Newest value, NaN when empty.
    pub fn last(&self) -> f64 {
        self.items.back().map_or(f64::NAN, |i| i.x)
    }

    /// Oldest value held, NaN when empty.
    pub fn first(&self) -> f64 {
        self.items.front().map_or(f64::NAN, |i| i.x)
    }

    /// Least-squares slope of value over time (per reading for count windows, per second for
    /// time windows); NaN with fewer than two distinct times.
    pub fn slope(&self) -> f64 {
        let n = self.items.len() as f64;
        if n < 2.0 {
            return f64::NAN;
        }
        let den = n * self.stt - self.st * self.st;
        // All readings at (numerically) one instant: no slope.
        let spread = self.stt.abs().max(self.st * self.st / n).max(1e-300);
        if den <= spread * 1e-12 {
            return f64::NAN;
        }
        (n * self.stx - self.st * self.sx) / den
    }

    /// The values held, oldest first, with their times (for tests and debugging).
    pub fn values(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.items.iter().map(|i| (i.t, i.x))
    }

    /// Heap bytes reserved by this window.
    pub fn heap_bytes(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<Item>()
            + (self.min_q.capacity() + self.max_q.capacity()) * std::mem::size_of::<u64>()
    }
}

/// Exponentially weighted moving average with `alpha = 2 / (span + 1)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ewma {
    alpha: f64,
    value: Option<f64>,
}

impl Ewma {
    /// An EWMA whose weights halve roughly every `span / 2.9` readings.
    pub fn new(span: u32) -> Self {
        Self {
            alpha: 2.0 / (f64::from(span.max(1)) + 1.0),
            value: None,
        }
    }

    /// Adds a value (the first one initialises the average).
    pub fn push(&mut self, x: f64) {
        self.value = Some(match self.value {
            None => x,
            Some(v) => v + self.alpha * (x - v),
        });
    }

    /// The average, NaN before the first value.
    pub fn value(&self) -> f64 {
        self.value.unwrap_or(f64::NAN)
    }

    /// The smoothing factor.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Which of `history` a window holds, recomputed from scratch.
    fn naive_window(span: Span, history: &[(f64, f64)]) -> Vec<(f64, f64)> {
        match span {
            Span::Count(n) => history[history.len().saturating_sub(n)..]
                .iter()
                .enumerate()
                .map(|(j, &(_, x))| ((history.len().saturating_sub(n) + j) as f64, x))
                .collect(),
            Span::Time {
                seconds,
                max_points,
            } => {
                // Times as the window sees them: never decreasing.
                let mut clamped = Vec::with_capacity(history.len());
                let mut last = f64::NEG_INFINITY;
                for &(t, x) in history {
                    last = t.max(last);
                    clamped.push((last, x));
                }
                let now = last;
                let held: Vec<(f64, f64)> = clamped
                    .into_iter()
                    .filter(|&(t, _)| t >= now - seconds)
                    .collect();
                held[held.len().saturating_sub(max_points)..].to_vec()
            }
        }
    }

    fn close(a: f64, b: f64, scale: f64) -> bool {
        (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-6 * (1.0 + scale)
    }

    /// Compares `w` with the naive statistics of `win`. `seen`: the largest magnitude pushed so
    /// far. The running sums drift by rounding between exact recomputations in proportion to
    /// the values pushed since (which may have left the window already): a window of zeros
    /// after values of 9,000 may show a std of ~1e-4 instead of 0, so std gets a tolerance
    /// of 1e-6 of `seen` on top.
    fn check(w: &WindowStats, win: &[(f64, f64)], seen: f64) -> Result<(), TestCaseError> {
        let got: Vec<(f64, f64)> = w.values().collect();
        prop_assert_eq!(got.len(), win.len());
        for (g, e) in got.iter().zip(win) {
            prop_assert_eq!(g.1, e.1);
        }
        let n = win.len() as f64;
        let xs: Vec<f64> = win.iter().map(|p| p.1).collect();
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let scale = xs.iter().fold(0.0f64, |a, x| a.max(x.abs()));
        prop_assert!(
            close(w.mean(), mean, scale),
            "mean {} vs {}",
            w.mean(),
            mean
        );
        prop_assert!(
            (w.std() - var.sqrt()).abs() <= 1e-4 * (1.0 + scale) + 1e-6 * seen,
            "std {} vs {}",
            w.std(),
            var.sqrt()
        );
        let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        prop_assert_eq!(w.min(), min);
        prop_assert_eq!(w.max(), max);
        prop_assert_eq!(w.last(), *xs.last().unwrap());
        prop_assert_eq!(w.first(), xs[0]);
        let tm = win.iter().map(|p| p.0).sum::<f64>() / n;
        let stt: f64 = win.iter().map(|p| (p.0 - tm).powi(2)).sum();
        let stx: f64 = win.iter().map(|p| (p.0 - tm) * (p.1 - mean)).sum();
        let t_range = win.last().unwrap().0 - win[0].0;
        if win.len() >= 2 && t_range > 1e-3 {
            let slope = stx / stt;
            let tol = 1e-5 * (1.0 + slope.abs()) + 1e-6 * scale / t_range.max(1e-3);
            prop_assert!(
                (w.slope() - slope).abs() <= tol,
                "slope {} vs {}",
                w.slope(),
                slope
            );
        } else if win.len() < 2 || t_range == 0.0 {
            prop_assert!(
                w.slope().is_nan(),
                "slope {} with no time spread",
                w.slope()
            );
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn count_window_matches_naive(n in 1usize..80, xs in proptest::collection::vec(-1e4f64..1e4, 1..400)) {
            let span = Span::Count(n);
            let mut w = WindowStats::new(span);
            let mut history = Vec::new();
            for &x in &xs {
                w.push(f64::NAN, x);
                history.push((0.0, x));
                let seen = history.iter().fold(0.0f64, |a, p| a.max(p.1.abs()));
                check(&w, &naive_window(span, &history), seen)?;
            }
        }

        #[test]
        fn time_window_matches_naive(
            seconds in 0.0f64..120.0,
            max_points in 1usize..100,
            start in 0.0f64..2e9,
            steps in proptest::collection::vec((-3.0f64..20.0, 0.0f64..2000.0), 1..400),
        ) {
            let span = Span::Time { seconds, max_points };
            let mut w = WindowStats::new(span);
            let mut history = Vec::new();
            let mut t = start;
            for &(dt, x) in &steps {
                // Mostly forward, sometimes backwards (late timestamps), sometimes equal.
                t += dt.max(-1.0).round();
                w.push(t, x);
                history.push((t, x));
                let seen = history.iter().fold(0.0f64, |a, p| a.max(p.1.abs()));
                check(&w, &naive_window(span, &history), seen)?;
            }
        }

        #[test]
        fn ewma_matches_its_recurrence(span in 1u32..100, xs in proptest::collection::vec(-1e3f64..1e3, 1..200)) {
            let mut e = Ewma::new(span);
            let alpha = 2.0 / (f64::from(span) + 1.0);
            let mut naive = xs[0];
            for (i, &x) in xs.iter().enumerate() {
                e.push(x);
                if i > 0 {
                    naive = alpha * x + (1.0 - alpha) * naive;
                }
                prop_assert!((e.value() - naive).abs() <= 1e-9 * (1.0 + naive.abs()));
            }
        }
    }

    #[test]
    fn time_window_drops_old_readings_and_slopes_per_second() {
        let mut w = WindowStats::new(Span::Time {
            seconds: 60.0,
            max_points: 1000,
        });
        for i in 0..200 {
            w.push(1000.0 + f64::from(i), 5.0 + 0.5 * f64::from(i));
        }
        assert_eq!(w.len(), 61, "readings at t-60..=t");
        assert!((w.slope() - 0.5).abs() < 1e-9);
        assert_eq!(w.max(), 5.0 + 0.5 * 199.0);
        assert_eq!(w.min(), 5.0 + 0.5 * 139.0);
        // A reading far in the future empties the rest.
        w.push(1e6, 1.0);
        assert_eq!((w.len(), w.min(), w.max()), (1, 1.0, 1.0));
        assert!(w.slope().is_nan());
    }

    #[test]
    fn time_window_is_bounded_by_max_points() {
        let mut w = WindowStats::new(Span::Time {
            seconds: 600.0,
            max_points: 50,
        });
        for i in 0..10_000 {
            w.push(f64::from(i) * 0.01, f64::from(i));
        }
        assert_eq!(w.len(), 50);
        assert!(w.heap_bytes() <= 64 * (16 + 8 + 8), "{}", w.heap_bytes());
    }
}
