//! The expert system: maintenance rules as data (TOML), checked against the feature names at
//! load time so a typo fails at start, not silently at run time.

use dtwin_schema::{Action, Level};
use serde::Deserialize;

/// The rules shipped with dtwin (`rules/default.toml`).
pub const DEFAULT_RULES: &str = include_str!("../rules/default.toml");

/// A rules file with `{short}` and `{long}` replaced by the window sizes, so feature names like
/// `vibration_mm_s_mean_{short}` follow the configured windows. Lines stay where they were, so
/// errors point at the right line.
pub fn expand_windows(text: &str, window: &dtwin_windows::WindowConfig) -> String {
    text.replace("{short}", &window.short.to_string())
        .replace("{long}", &window.long.to_string())
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Op {
    /// Strictly greater than.
    #[serde(rename = ">")]
    Gt,
    /// Strictly less than.
    #[serde(rename = "<")]
    Lt,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionSpec {
    feature: String,
    op: Op,
    value: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    code: String,
    severity: Level,
    text: String,
    when: Vec<ConditionSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    rule: Vec<RuleSpec>,
}

impl Op {
    /// `>` or `<`, as written in rules files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gt => ">",
            Self::Lt => "<",
        }
    }
}

/// One condition, resolved to a feature index (the name is kept for people reading the
/// rules, e.g. the dashboard's model page).
#[derive(Debug, Clone)]
struct Condition {
    index: usize,
    feature: String,
    op: Op,
    value: f64,
}

/// One rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The action it recommends.
    pub action: Action,
    conditions: Vec<Condition>,
}

impl Rule {
    /// Its conditions as written, `(feature, op, value)`: the rule fires when all hold.
    pub fn conditions(&self) -> impl Iterator<Item = (&str, Op, f64)> + '_ {
        self.conditions
            .iter()
            .map(|c| (c.feature.as_str(), c.op, c.value))
    }

    /// Its conditions for people: `vibration_mm_s_mean_10 > 7.1 and spindle_rpm < 1380`.
    pub fn condition_text(&self) -> String {
        self.conditions()
            .map(|(f, op, v)| format!("{f} {} {v}", op.as_str()))
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

/// A validated set of rules bound to an ordered list of feature names.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

/// Why a rules file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// TOML syntax or shape error; the message names line and column.
    #[error("rules file: {0}")]
    Parse(#[from] toml::de::Error),
    /// A rule names a feature that does not exist.
    #[error("rules file: rule {code} uses unknown feature {feature:?}")]
    UnknownFeature {
        /// The rule.
        code: String,
        /// The feature it names.
        feature: String,
    },
    /// A rule is malformed.
    #[error("rules file: rule {code}: {why}")]
    Invalid {
        /// The rule.
        code: String,
        /// What is wrong.
        why: String,
    },
}

impl RuleSet {
    /// Parses rules and binds them to `feature_names`.
    ///
    /// # Errors
    /// [`RulesError`] with line and reason for a syntax error, or the rule and feature at fault.
    pub fn parse(text: &str, feature_names: &[String]) -> Result<Self, RulesError> {
        let file: RulesFile = toml::from_str(text)?;
        let mut rules = Vec::with_capacity(file.rule.len());
        for spec in file.rule {
            if spec.when.is_empty() {
                return Err(RulesError::Invalid {
                    code: spec.code,
                    why: "no conditions in `when`".into(),
                });
            }
            if spec.severity == Level::Normal {
                return Err(RulesError::Invalid {
                    code: spec.code,
                    why: "severity must be WARNING or CRITICAL".into(),
                });
            }
            let mut conditions = Vec::with_capacity(spec.when.len());
            for c in spec.when {
                if !c.value.is_finite() {
                    return Err(RulesError::Invalid {
                        code: spec.code,
                        why: format!("{} compares with a non-finite value", c.feature),
                    });
                }
                let index = feature_names
                    .iter()
                    .position(|n| *n == c.feature)
                    .ok_or_else(|| RulesError::UnknownFeature {
                        code: spec.code.clone(),
                        feature: c.feature.clone(),
                    })?;
                conditions.push(Condition {
                    index,
                    feature: c.feature,
                    op: c.op,
                    value: c.value,
                });
            }
            rules.push(Rule {
                action: Action {
                    code: spec.code,
                    text: spec.text,
                    severity: spec.severity,
                },
                conditions,
            });
        }
        Ok(Self { rules })
    }

    /// The shipped default rules for the default windows.
    ///
    /// # Errors
    /// Only if the shipped file does not fit `feature_names` (a test guards this).
    pub fn default_for(feature_names: &[String]) -> Result<Self, RulesError> {
        Self::parse(
            &expand_windows(DEFAULT_RULES, &dtwin_windows::WindowConfig::default()),
            feature_names,
        )
    }

    /// No rules: for a profile's model, since the shipped rules name milling features.
    pub fn none() -> Self {
        Self { rules: Vec::new() }
    }

    /// Every rule, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The actions of every rule that fires on `row`, most severe first. Duplicate texts (two
    /// tiers of the same rule) keep only the most severe.
    pub fn evaluate(&self, row: &[f32]) -> Vec<Action> {
        let mut fired: Vec<Action> = self
            .rules
            .iter()
            .filter(|r| {
                r.conditions.iter().all(|c| {
                    let v = f64::from(row.get(c.index).copied().unwrap_or(f32::NAN));
                    !v.is_nan()
                        && match c.op {
                            Op::Gt => v > c.value,
                            Op::Lt => v < c.value,
                        }
                })
            })
            .map(|r| r.action.clone())
            .collect();
        fired.sort_by_key(|a| std::cmp::Reverse(a.severity));
        let mut seen = std::collections::HashSet::new();
        fired.retain(|a| seen.insert(a.text.clone()));
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtwin_windows::{feature_names, WindowConfig};

    fn names() -> Vec<String> {
        feature_names(&WindowConfig::default())
    }

    fn row_with(pairs: &[(&str, f32)]) -> Vec<f32> {
        let names = names();
        let mut row = vec![f32::NAN; names.len()];
        for (n, v) in pairs {
            row[names.iter().position(|x| x == n).unwrap()] = *v;
        }
        row
    }

    #[test]
    fn rules_list_their_conditions_as_written() {
        let rules = RuleSet::default_for(&names()).unwrap();
        let heat = rules
            .rules()
            .iter()
            .find(|r| r.action.code == "HEAT_DISSIPATION")
            .unwrap();
        assert_eq!(
            heat.condition_text(),
            "temp_diff_c < 8.6 and spindle_rpm < 1380"
        );
        assert_eq!(heat.action.severity, Level::Warning);
        let vib = rules
            .rules()
            .iter()
            .find(|r| r.action.code == "HIGH_VIBRATION")
            .unwrap();
        assert_eq!(
            vib.conditions().collect::<Vec<_>>(),
            [("vibration_mm_s_mean_10", Op::Gt, 7.1)],
            "windows expanded"
        );
        assert_eq!(rules.rules().len(), rules.len());
    }

    #[test]
    fn shipped_rules_load_and_cover_the_seeds_four() {
        let rules = RuleSet::default_for(&names()).unwrap();
        assert!(rules.len() >= 8);
        let cases = [
            (vec![("temp_diff_c", 14.0)], "check coolant flow"),
            (
                vec![("vibration_mm_s_mean_10", 8.0)],
                "check imbalance and bearing",
            ),
            (vec![("pressure_bar_mean_10", 3.0)], "inspect valves"),
            (vec![("tool_wear_min", 215.0)], "schedule a tool change"),
        ];
        for (pairs, text) in cases {
            let actions = rules.evaluate(&row_with(&pairs));
            assert!(
                actions.iter().any(|a| a.text.contains(text)),
                "{pairs:?} -> {actions:?}"
            );
        }
        assert!(rules
            .evaluate(&row_with(&[
                ("temp_diff_c", 10.0),
                ("vibration_mm_s_mean_10", 2.0)
            ]))
            .is_empty());
        assert!(
            rules.evaluate(&vec![f32::NAN; names().len()]).is_empty(),
            "missing values never fire"
        );
    }

    #[test]
    fn rules_follow_the_configured_windows() {
        let window = WindowConfig {
            short: 5,
            long: 20,
            ..WindowConfig::default()
        };
        let names = feature_names(&window);
        // Unexpanded, the shipped rules name features these windows do not have.
        assert!(matches!(
            RuleSet::parse(DEFAULT_RULES, &names),
            Err(RulesError::UnknownFeature { .. }) | Err(RulesError::Parse(_))
        ));
        let rules = RuleSet::parse(&expand_windows(DEFAULT_RULES, &window), &names).unwrap();
        let mut row = vec![f32::NAN; names.len()];
        let at = |n: &str| names.iter().position(|x| x == n).unwrap();
        row[at("vibration_mm_s_mean_5")] = 8.0;
        row[at("vibration_mm_s_slope_5")] = 0.2;
        let codes: Vec<String> = rules.evaluate(&row).into_iter().map(|a| a.code).collect();
        assert!(codes.contains(&"HIGH_VIBRATION".to_owned()), "{codes:?}");
        assert!(codes.contains(&"VIBRATION_RISING".to_owned()), "{codes:?}");
        // Expansion keeps line numbers: an error still points at the right line.
        let bad = "\n\n[[rule]]\ncode = \"X\"\nseverity = \"WARNING\"\ntext = \"{short}\"\nwhen = [{ feature = \"x_{long}\", op = \"=\", value = 1.0 }]\n";
        let err = RuleSet::parse(&expand_windows(bad, &window), &names).unwrap_err();
        assert!(err.to_string().contains("line 7"), "{err}");
    }

    #[test]
    fn combinations_need_every_condition_and_critical_comes_first() {
        let rules = RuleSet::default_for(&names()).unwrap();
        let one = rules.evaluate(&row_with(&[("temp_diff_c", 8.0), ("spindle_rpm", 1500.0)]));
        assert!(one.iter().all(|a| a.code != "HEAT_DISSIPATION"));
        let both = rules.evaluate(&row_with(&[("temp_diff_c", 8.0), ("spindle_rpm", 1300.0)]));
        assert!(both.iter().any(|a| a.code == "HEAT_DISSIPATION"));
        let hot = rules.evaluate(&row_with(&[
            ("temp_diff_c", 18.0),
            ("vibration_mm_s_mean_10", 8.0),
        ]));
        assert_eq!(hot[0].severity, Level::Critical);
        assert_eq!(hot[0].code, "OVERHEATING");
    }

    #[test]
    fn bad_files_fail_with_line_or_rule() {
        let err = RuleSet::parse(
            "[[rule]]\ncode = \"X\"\nseverity = \"WARNING\"\ntext = 3\n",
            &names(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("line 4"), "{err}");
        let err = RuleSet::parse(
            "[[rule]]\ncode = \"X\"\nseverity = \"WARNING\"\ntext = \"t\"\nwhen = [{ feature = \"nope\", op = \">\", value = 1.0 }]\n",
            &names(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown feature \"nope\""),
            "{err}"
        );
        let err = RuleSet::parse(
            "[[rule]]\ncode = \"X\"\nseverity = \"WARNING\"\ntext = \"t\"\nwhen = [{ feature = \"power_w\", op = \">=\", value = 1.0 }]\n",
            &names(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("line 5"), "{err}");
    }
}
