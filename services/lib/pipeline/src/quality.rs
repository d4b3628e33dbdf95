//! The quality (NOK) classifier's label on a plant's export (issue 19 item 2): which readings
//! made a NOK part, from a column the profile does not read and the values that mean NOK, and
//! where that column is kept in the model's recipe so `dtwin evaluate` reads the same label.
//!
//! Twin telemetry needs none of this: its `quality_ok` is false for a NOK part
//! ([`crate::dataset::quality_from_telemetry`]). The label itself, the features, the split and
//! the forest are the failure classifier's ([`crate::plant::nok_dataset`],
//! [`crate::train::train_on`]).

use crate::plant::{column_cells, Columns, Horizon, PlantData, PlantError};
use dtwin_ml::artifact::FeatureRecipe;
use dtwin_profile::Profile;

/// The column of an export that says whether a reading's part was good, and its NOK values.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NokColumn {
    /// The column.
    pub column: String,
    /// Values that mean NOK (compared trimmed, ignoring ASCII case).
    pub nok: Vec<String>,
}

impl NokColumn {
    /// Whether a cell means NOK.
    pub fn is_nok(&self, cell: &str) -> bool {
        let cell = cell.trim();
        !cell.is_empty() && self.nok.iter().any(|v| v.trim().eq_ignore_ascii_case(cell))
    }

    /// For the artifact and the reports: `result in {NOK}`.
    pub fn describe(&self) -> String {
        format!("{} in {{{}}}", self.column, self.nok.join(", "))
    }
}

/// Why the NOK column cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    /// The export or the column.
    #[error(transparent)]
    Plant(#[from] PlantError),
    /// The column is one the model reads.
    #[error("--quality-column {column:?} is also {what} of profile {profile}: the model would read the answer from its input; name the column that records the part's result")]
    IsInput {
        /// The column.
        column: String,
        /// What reads it.
        what: String,
        /// The profile.
        profile: String,
    },
    /// No NOK value given.
    #[error("--quality-column {0} needs --nok-values: the value(s) of the column that mean a NOK part, e.g. --nok-values NOK or --nok-values false,0")]
    NoValues(String),
}

/// Checks that `col` is usable with `profile` (not a sensor or attribute, NOK values given).
///
/// # Errors
/// [`QualityError::IsInput`], [`QualityError::NoValues`].
pub fn check(col: &NokColumn, profile: &Profile) -> Result<(), QualityError> {
    if col.nok.iter().all(|v| v.trim().is_empty()) {
        return Err(QualityError::NoValues(col.column.clone()));
    }
    let what = profile
        .sensors
        .iter()
        .find(|s| s.key == col.column)
        .map(|s| format!("sensor {}", s.name))
        .or_else(|| {
            profile
                .attributes
                .iter()
                .find(|a| a.name == col.column || a.label == col.column)
                .map(|a| format!("attribute {}", a.name))
        });
    match what {
        Some(what) => Err(QualityError::IsInput {
            column: col.column.clone(),
            what,
            profile: profile.id.clone(),
        }),
        None => Ok(()),
    }
}

/// Per machine of `plant` (read from `text`), per reading: whether its part was NOK.
///
/// # Errors
/// [`QualityError`]: a bad column or CSV, see [`check`].
pub fn nok_flags(
    text: &str,
    file: &str,
    plant: &PlantData,
    profile: &Profile,
    col: &NokColumn,
) -> Result<Vec<Vec<bool>>, QualityError> {
    check(col, profile)?;
    let cells = column_cells(text, file, &col.column, "--quality-column")?;
    Ok(plant
        .machines
        .iter()
        .map(|s| {
            s.lines
                .iter()
                .map(|l| cells.get(l).is_some_and(|c| col.is_nok(c)))
                .collect()
        })
        .collect())
}

/// The recipe of a quality model on a plant's export: the profile's ([`crate::plant::recipe`])
/// with the NOK column in its `columns` (as `quality`; older readers ignore it).
pub fn recipe(
    profile_text: &str,
    columns: &Columns,
    horizon: Horizon,
    col: &NokColumn,
) -> FeatureRecipe {
    let mut r = crate::plant::recipe(profile_text, columns, horizon);
    if let FeatureRecipe::Profile { columns, .. } = &mut r {
        if let Some(map) = columns.as_object_mut() {
            map.insert(
                "quality".to_owned(),
                serde_json::to_value(col).unwrap_or_default(),
            );
        }
    }
    r
}

/// The NOK column a quality model's recipe keeps (see [`recipe`]).
pub fn nok_column_of(recipe: Option<&FeatureRecipe>) -> Option<NokColumn> {
    match recipe? {
        FeatureRecipe::Profile { columns, .. } => {
            serde_json::from_value(columns.get("quality")?.clone()).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"
id = "press"
label = "Press"

[[sensor]]
name = "force"
range = [0.0, 100.0]

[windows]
short = 2
long = 3
"#;

    #[test]
    fn nok_values_match_trimmed_and_ignoring_case() {
        let c = NokColumn {
            column: "result".into(),
            nok: vec!["NOK".into(), " false".into()],
        };
        assert!(c.is_nok("nok") && c.is_nok(" NOK ") && c.is_nok("False"));
        assert!(!c.is_nok("OK") && !c.is_nok("") && !c.is_nok("true"));
        assert_eq!(c.describe(), "result in {NOK,  false}");
    }

    #[test]
    fn flags_follow_the_readings_and_the_recipe_keeps_the_column() {
        let profile = Profile::parse(PROFILE, "press.toml").unwrap();
        // Machine b's rows out of time order: flags follow each reading's line.
        let text =
            "id,t,force,result\na,1,10,OK\nb,2,11,NOK\na,2,12,OK\nb,1,13,OK\na,3,14,NOK\na,4,15,\n";
        let columns = Columns {
            id: "id".into(),
            time: Some("t".into()),
            label: None,
            time_zone: None,
        };
        let plant = crate::plant::read(text, "x.csv", &profile, &columns).unwrap();
        let col = NokColumn {
            column: "result".into(),
            nok: vec!["NOK".into()],
        };
        let flags = nok_flags(text, "x.csv", &plant, &profile, &col).unwrap();
        assert_eq!(
            flags,
            vec![vec![false, false, true, false], vec![false, true]]
        );
        let (d, _) = crate::plant::nok_dataset(&plant, &profile, &flags, Horizon::Readings(1));
        assert_eq!(d.target, crate::dataset::Target::Nok);
        assert_eq!(d.description, "NOK part within the next 1 readings");
        // Warm from the second reading (short window 2); a row needs the next reading. Machine
        // a: reading 1 precedes the NOK at 2, reading 2 does not; b: only its cold reading 0
        // precedes its NOK.
        assert_eq!(
            (d.machine.clone(), d.step.clone()),
            (vec![0, 0], vec![1, 2])
        );
        assert_eq!(d.y, vec![true, false]);
        let r = recipe(PROFILE, &columns, Horizon::Readings(1), &col);
        assert_eq!(nok_column_of(Some(&r)), Some(col.clone()));
        // The columns still read as Columns.
        let FeatureRecipe::Profile { columns: c, .. } = &r else {
            unreachable!()
        };
        let back: Columns = serde_json::from_value(c.clone()).unwrap();
        assert_eq!(back, columns);
        assert_eq!(nok_column_of(Some(&FeatureRecipe::Ai4iTabular)), None);
        // The column may not be an input, and needs values.
        let force = NokColumn {
            column: "force".into(),
            nok: vec!["1".into()],
        };
        assert!(check(&force, &profile)
            .unwrap_err()
            .to_string()
            .contains("sensor force"));
        let none = NokColumn {
            column: "result".into(),
            nok: vec![],
        };
        assert!(check(&none, &profile)
            .unwrap_err()
            .to_string()
            .contains("--nok-values"));
        let missing = NokColumn {
            column: "verdict".into(),
            nok: vec!["NOK".into()],
        };
        assert!(nok_flags(text, "x.csv", &plant, &profile, &missing)
            .unwrap_err()
            .to_string()
            .contains("verdict"));
    }
}
