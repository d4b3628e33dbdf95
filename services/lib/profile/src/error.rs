//! [`ProfileError`]: what is wrong with a profile, and where.

/// A profile that cannot be used: the file, the line (1-based) and the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct ProfileError {
    /// The file, as the caller named it.
    pub file: String,
    /// The line of the offending value (1 when the whole file is at fault).
    pub line: usize,
    /// What is wrong.
    pub kind: ProfileErrorKind,
}

/// What is wrong with a profile.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProfileErrorKind {
    /// Not TOML, a missing field, a field of the wrong type or one the format does not have.
    #[error("{0}")]
    Syntax(String),
    /// A name that cannot be a feature name.
    #[error("{0:?} is not a usable name: letters, digits and _ (starting with a letter or _), at most 64 characters, and not a constant such as pi")]
    BadName(String),
    /// A name used twice (sensors, derived features and attributes share one namespace).
    #[error("{0:?} is defined twice")]
    DuplicateName(String),
    /// A profile without sensors.
    #[error("a profile needs at least one [[sensor]]")]
    NoSensors,
    /// A valid range that is empty or not finite.
    #[error("range [{min}, {max}] must be two finite numbers, the first below the second")]
    BadRange {
        /// The lower bound given.
        min: f64,
        /// The upper bound given.
        max: f64,
    },
    /// An expression that does not parse.
    #[error("cannot read the expression: {0}")]
    BadExpression(String),
    /// An expression that uses a name that is not a sensor.
    #[error("the expression uses {0:?}, which is not a sensor of this profile")]
    UnknownVariable(String),
    /// A count window shorter than two readings.
    #[error("a count window needs at least 2 readings, not {0}")]
    BadWindow(usize),
    /// A duration that does not read.
    #[error("{0:?} is not a duration (write e.g. 90s, 10m, 24h, 7d)")]
    BadDuration(String),
    /// A statistic that windows do not compute.
    #[error("{0:?} is not a statistic (mean, std, min, max, slope)")]
    UnknownStat(String),
    /// An attribute without values.
    #[error("attribute {0:?} needs at least one value")]
    NoValues(String),
    /// A counted failure label that is not among the labels.
    #[error("counted label {0:?} is not in labels")]
    UnknownLabel(String),
    /// A `[[control]]` that names no sensor of the profile.
    #[error("control {0:?} is not a sensor of this profile")]
    UnknownControl(String),
    /// A control's `bounds` or a sensor's `typical` span that is empty, not finite or outside
    /// the sensor's range.
    #[error("{what} [{min}, {max}] must be two finite numbers within the sensor's range, the first below the second")]
    BadBounds {
        /// `bounds` or `typical`.
        what: &'static str,
        /// The lower value given.
        min: f64,
        /// The upper value given.
        max: f64,
    },
    /// A control's step that is not positive or wider than its bounds.
    #[error("step {0} must be a positive number no wider than the bounds")]
    BadStep(f64),
    /// A cost that is negative or not finite.
    #[error("{0} {1} must be a finite number, 0 or more")]
    BadCost(&'static str, f64),
    /// `[advice] energy` that names neither a sensor nor a derived feature.
    #[error("energy {0:?} is neither a sensor nor a derived feature of this profile")]
    UnknownEnergy(String),
}

impl ProfileError {
    /// An error at byte range `span` of `text`.
    pub fn at(
        file: &str,
        text: &str,
        span: std::ops::Range<usize>,
        kind: ProfileErrorKind,
    ) -> Self {
        let upto = span.start.min(text.len());
        let line = text.as_bytes()[..upto]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        Self {
            file: file.to_owned(),
            line,
            kind,
        }
    }
}
