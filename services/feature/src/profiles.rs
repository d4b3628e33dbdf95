//! Machine profiles in the feature service: which profile a machine is, and a reading's
//! `values` checked against that profile's sensors. Pure (except [`load_profiles`], which
//! reads the files the CLI names).
//!
//! A machine's profile is the payload's `profile` when it names one; else the first pattern of
//! the profile map its id matches (`pump-*` = `pump`); else the built-in `milling`. The map is
//! consulted once per machine (the processor keeps the answer with the machine's window), so a
//! reading costs no pattern matching; with no map at all the milling path does not look.
//!
//! Milling machines keep the built-in feature code (`dtwin_windows::MachineWindow`, its 40
//! features and hash frozen by the shipped model); every other profile runs a
//! `dtwin_windows::ProfileWindow` with the profile's feature names and hash.

use dtwin_profile::Profile;
use dtwin_schema::{RawValue, RejectReason, Rejection};
use std::collections::HashMap;
use std::path::Path;

/// The id of the built-in profile.
pub const MILLING: &str = "milling";

/// Which profile a machine or reading is: the built-in milling one, or one of the
/// [`ProfileSet`]'s (its index). Copy, so the processor keeps one per machine for free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// The built-in milling profile.
    Milling,
    /// The profile at this index of [`ProfileSet::profiles`].
    Other(u16),
}

/// A profile map entry that does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileMapError {
    /// Not `PATTERN=ID`.
    #[error("{0:?} is not PATTERN=ID (e.g. pump-*=pump)")]
    NotAnEntry(String),
    /// A pattern with a character machine ids cannot hold (or empty).
    #[error("pattern {0:?} must be 1 to 64 characters of A-Z a-z 0-9 _ . - and the wildcards * (any run) and ? (one character)")]
    BadPattern(String),
    /// A profile id a profile file cannot have.
    #[error("{0:?} is not a profile id (a letter or _, then letters, digits, _ . -; at most 64)")]
    BadId(String),
}

/// Profiles and a profile map that cannot be served together.
#[derive(Debug, thiserror::Error)]
pub enum ProfileConfigError {
    /// A profile file could not be read.
    #[error("cannot read profile {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A profile file is not a valid profile (file, line and reason).
    #[error(transparent)]
    Profile(#[from] dtwin_profile::ProfileError),
    /// A file names the built-in profile.
    #[error("{path}: profile id \"milling\" is built in (its feature set is frozen by the shipped model); give this profile another id")]
    MillingIsBuiltIn {
        /// The file.
        path: String,
    },
    /// Two profiles with one id.
    #[error("profile {0:?} is given twice")]
    Duplicate(String),
    /// More profiles than a machine's slot can number.
    #[error("at most {} profiles", u16::MAX)]
    TooMany,
    /// A map entry naming a profile that was not given.
    #[error("profile map {pattern}={id}: no profile {id:?} (known: {known})")]
    UnknownInMap {
        /// The pattern.
        pattern: String,
        /// The id it names.
        id: String,
        /// The ids there are.
        known: String,
    },
    /// A map entry that does not read.
    #[error(transparent)]
    Map(#[from] ProfileMapError),
}

/// Reads one `--profile-map` entry, `PATTERN=ID` (`pump-*=pump`): a glob over machine ids
/// (`*` any run of characters, `?` one) and the profile its machines are.
///
/// # Errors
/// No `=`, an empty or ill-formed pattern, an id a profile cannot have.
pub fn parse_profile_map(s: &str) -> Result<(String, String), ProfileMapError> {
    let (pattern, id) = s
        .split_once('=')
        .ok_or_else(|| ProfileMapError::NotAnEntry(s.to_owned()))?;
    let (pattern, id) = (pattern.trim(), id.trim());
    let pattern_ok = !pattern.is_empty()
        && pattern.len() <= 64
        && pattern
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-*?".contains(c));
    if !pattern_ok {
        return Err(ProfileMapError::BadPattern(pattern.to_owned()));
    }
    if !valid_profile_id(id) {
        return Err(ProfileMapError::BadId(id.to_owned()));
    }
    Ok((pattern.to_owned(), id.to_owned()))
}

/// Reads and checks the profile files the CLI names (`--profile FILE`, repeatable), for
/// `FeatureConfig::profiles`. Each error names the file (and, for a bad profile, the line).
///
/// # Errors
/// A file that cannot be read or is not a valid profile, a file with the built-in id
/// `milling`, or two files with one id.
pub fn load_profiles<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<Profile>, ProfileConfigError> {
    let mut out: Vec<Profile> = Vec::with_capacity(paths.len());
    for path in paths {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ProfileConfigError::Read {
            path: name.clone(),
            source,
        })?;
        let p = Profile::parse(&text, &name)?;
        if p.id == MILLING {
            return Err(ProfileConfigError::MillingIsBuiltIn { path: name });
        }
        if out.iter().any(|o| o.id == p.id) {
            return Err(ProfileConfigError::Duplicate(p.id));
        }
        out.push(p);
    }
    Ok(out)
}

/// Whether `s` can be a profile id (as `dtwin_profile` checks a file's `id`).
fn valid_profile_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// Whether machine id `s` matches `pattern` (`*`: any run, `?`: one character; ASCII, as
/// machine ids are). Iterative with one backtrack point: linear in practice, no recursion.
pub fn glob_match(pattern: &str, s: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), s.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < s.len() {
        if i < p.len() && (p[i] == b'?' || p[i] == s[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

/// What [`ProfileSet::adopt`] makes of a profile published at run time.
#[derive(Debug)]
pub enum Adopt {
    /// The set serving it too.
    Added(ProfileSet),
    /// A profile with its id is served already (and stays as it is).
    Known,
    /// Not a profile to serve, and why.
    Ignored(String),
}

/// One served profile and what the processor needs of it per reading, computed once.
#[derive(Debug, Clone)]
pub struct Served {
    /// The profile.
    pub profile: Profile,
    /// Its feature names, in vector order.
    pub names: Vec<String>,
    /// Their hash, stamped on every vector.
    pub hash: String,
    /// Payload key -> sensor index.
    keys: HashMap<String, usize>,
    /// Attribute name -> attribute index.
    attributes: HashMap<String, usize>,
    /// Each sensor's latest-value position in the vector (for `latest`).
    pub latest_at: Vec<usize>,
}

impl Served {
    fn new(profile: Profile) -> Self {
        let (names, hash) = dtwin_windows::profile_feature_set(&profile);
        let keys = profile
            .sensors
            .iter()
            .enumerate()
            .map(|(i, s)| (s.key.clone(), i))
            .collect();
        let attributes = profile
            .attributes
            .iter()
            .enumerate()
            .map(|(i, a)| (a.name.clone(), i))
            .collect();
        let latest_at = profile
            .sensors
            .iter()
            .map(|s| names.iter().position(|n| *n == s.name).unwrap_or(0))
            .collect();
        Self {
            profile,
            names,
            hash,
            keys,
            attributes,
            latest_at,
        }
    }
}

/// A reading's `values` in a profile's order: what `ProfileWindow::update` takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// One value per sensor, NaN where the reading has none (or null).
    pub values: Vec<f64>,
    /// One code per attribute (`None`: not in this reading).
    pub attributes: Vec<Option<usize>>,
    /// Keys that are neither a sensor's key nor an attribute, and attribute values the
    /// profile does not list: ignored, for the caller to count.
    pub ignored: Vec<String>,
}

/// The profiles a feature service serves and the map from machine ids to them.
#[derive(Debug, Default, Clone)]
pub struct ProfileSet {
    served: Vec<Served>,
    map: Vec<(String, Slot)>,
}

impl ProfileSet {
    /// Milling only, no map: every machine is a milling machine (the service's default).
    pub fn milling_only() -> Self {
        Self::default()
    }

    /// The set of `profiles` (milling is always served; a profile with id `milling` in the
    /// list is the built-in one and is not served twice) and the `(pattern, id)` map, first
    /// match wins.
    ///
    /// # Errors
    /// Two profiles with one id, more than 65535, or a map entry that does not read or names
    /// a profile that is not there (refused at start: every reading of its machines would be
    /// dead-lettered otherwise).
    pub fn new(
        profiles: Vec<Profile>,
        map: &[(String, String)],
    ) -> Result<Self, ProfileConfigError> {
        let mut served: Vec<Served> = Vec::new();
        for p in profiles {
            if p.id == MILLING {
                continue;
            }
            if served.iter().any(|s| s.profile.id == p.id) {
                return Err(ProfileConfigError::Duplicate(p.id));
            }
            served.push(Served::new(p));
        }
        if served.len() > usize::from(u16::MAX) {
            return Err(ProfileConfigError::TooMany);
        }
        let mut set = Self {
            served,
            map: Vec::new(),
        };
        for (pattern, id) in map {
            parse_profile_map(&format!("{pattern}={id}"))?;
            let slot = set
                .by_id(id)
                .ok_or_else(|| ProfileConfigError::UnknownInMap {
                    pattern: pattern.clone(),
                    id: id.clone(),
                    known: set.ids().collect::<Vec<_>>().join(", "),
                })?;
            set.map.push((pattern.clone(), slot));
        }
        Ok(set)
    }

    /// What a profile published at run time on `{prefix}/profiles/{topic_id}` (`payload`: its
    /// TOML text) does to this set: a new set serving it too (its slot after every existing
    /// one, so the machines' slots stay valid), or why not. A profile served already, the
    /// `--profile` files' among them, is kept as it is: machines' windows were built for it.
    pub fn adopt(&self, topic_id: &str, payload: &[u8]) -> Adopt {
        if payload.is_empty() {
            return Adopt::Ignored("an empty retained message (a profile removed): a profile served stays until restart".to_owned());
        }
        let text = match std::str::from_utf8(payload) {
            Ok(t) => t,
            Err(_) => return Adopt::Ignored("not UTF-8 TOML text".to_owned()),
        };
        let profile = match Profile::parse(text, &format!("profiles/{topic_id}")) {
            Ok(p) => p,
            Err(e) => return Adopt::Ignored(e.to_string()),
        };
        if profile.id != topic_id {
            return Adopt::Ignored(format!(
                "its id {:?} is not the topic's {topic_id:?}",
                profile.id
            ));
        }
        if self.by_id(&profile.id).is_some() {
            return Adopt::Known;
        }
        if self.served.len() >= usize::from(u16::MAX) {
            return Adopt::Ignored(format!("at most {} profiles", u16::MAX));
        }
        let mut set = self.clone();
        set.served.push(Served::new(profile));
        Adopt::Added(set)
    }

    /// Every profile id served, `milling` first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(MILLING).chain(self.served.iter().map(|s| s.profile.id.as_str()))
    }

    /// The profiles other than milling.
    pub fn profiles(&self) -> &[Served] {
        &self.served
    }

    /// Whether any machine id can map to another profile than milling (else the processor
    /// need not look a machine up before decoding).
    pub fn has_map(&self) -> bool {
        !self.map.is_empty()
    }

    /// The profile called `id`, if served.
    pub fn by_id(&self, id: &str) -> Option<Slot> {
        if id == MILLING {
            return Some(Slot::Milling);
        }
        self.served
            .iter()
            .position(|s| s.profile.id == id)
            .map(|i| Slot::Other(i as u16))
    }

    /// The profile of a machine whose readings name none: the first pattern its id matches,
    /// else milling. Call once per machine (the processor caches it).
    pub fn for_machine(&self, machine: &str) -> Slot {
        self.map
            .iter()
            .find(|(p, _)| glob_match(p, machine))
            .map_or(Slot::Milling, |(_, slot)| *slot)
    }

    /// The id of `slot`.
    pub fn id(&self, slot: Slot) -> &str {
        match slot {
            Slot::Milling => MILLING,
            Slot::Other(i) => &self.served[usize::from(i)].profile.id,
        }
    }

    /// The served profile of `slot` (`None` for milling).
    pub fn served(&self, slot: Slot) -> Option<&Served> {
        match slot {
            Slot::Milling => None,
            Slot::Other(i) => self.served.get(usize::from(i)),
        }
    }
}

impl Served {
    /// Maps a reading's raw `values` onto the profile's sensors and attributes.
    ///
    /// # Errors
    /// `out_of_range` for a sensor value outside the sensor's range (or not finite), naming
    /// the sensor; `wrong_type` for a sensor value that is not a number (or null), or an
    /// attribute value that is not a string. Keys that are neither do not reject the reading.
    pub fn map(&self, raw: &[(String, RawValue)]) -> Result<Mapped, Rejection> {
        let p = &self.profile;
        let mut out = Mapped {
            values: vec![f64::NAN; p.sensors.len()],
            attributes: vec![None; p.attributes.len()],
            ignored: Vec::new(),
        };
        for (key, value) in raw {
            if let Some(&i) = self.keys.get(key) {
                let s = &p.sensors[i];
                match value {
                    RawValue::Number(v) if s.accepts(*v) => out.values[i] = *v,
                    RawValue::Number(v) => {
                        let named = if s.key == s.name {
                            String::new()
                        } else {
                            format!(" (sensor {})", s.name)
                        };
                        return Err(Rejection::new(
                            RejectReason::OutOfRange,
                            format!(
                                "values.{key} = {v}{named} is outside the {} profile's range [{}, {}]{}",
                                p.id,
                                s.min,
                                s.max,
                                if s.unit.is_empty() { String::new() } else { format!(" {}", s.unit) }
                            ),
                        ));
                    }
                    RawValue::Null => out.values[i] = f64::NAN,
                    other => {
                        return Err(Rejection::new(
                            RejectReason::WrongType,
                            format!("values.{key} is {}; expected a number", other.kind()),
                        ))
                    }
                }
            } else if let Some(&i) = self.attributes.get(key) {
                match value {
                    RawValue::Text(t) => match p.attributes[i].code(t) {
                        Some(code) => out.attributes[i] = Some(code),
                        None => out.ignored.push(format!("{key}={t}")),
                    },
                    RawValue::Null => {}
                    other => {
                        return Err(Rejection::new(
                            RejectReason::WrongType,
                            format!("values.{key} is {}; expected a string", other.kind()),
                        ))
                    }
                }
            } else {
                out.ignored.push(key.clone());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const PUMP: &str = r#"
id = "pump"
label = "Pump"

[[sensor]]
name = "volt"
unit = "V"
range = [100.0, 300.0]

[[sensor]]
name = "rotate"
key = "rpm"
range = [0.0, 1000.0]

[[attribute]]
name = "model"
values = ["m1", "m2", "m3"]

[windows]
short = 3
"#;

    fn pump() -> Profile {
        Profile::parse(PUMP, "pump.toml").unwrap()
    }

    #[test]
    fn a_profile_published_at_run_time_is_served_after_the_others_once() {
        let s = ProfileSet::new(vec![pump()], &[("p-*".to_owned(), "pump".to_owned())]).unwrap();
        let press = PUMP.replace("\"pump\"", "\"press\"");
        let Adopt::Added(grown) = s.adopt("press", press.as_bytes()) else {
            panic!("not added")
        };
        assert_eq!(
            grown.ids().collect::<Vec<_>>(),
            ["milling", "pump", "press"]
        );
        // Existing slots and the map stay valid.
        assert_eq!(grown.by_id("pump"), s.by_id("pump"));
        assert_eq!(grown.by_id("press"), Some(Slot::Other(1)));
        assert_eq!(grown.for_machine("p-1"), Slot::Other(0));
        // Known ids (the declared files', milling, or adopted before) are kept as they are.
        assert!(matches!(
            grown.adopt("press", press.as_bytes()),
            Adopt::Known
        ));
        let other_pump = PUMP.replace("100.0", "0.0");
        assert!(matches!(
            s.adopt("pump", other_pump.as_bytes()),
            Adopt::Known
        ));
        // What is not a profile to serve says why.
        for (topic_id, payload, why) in [
            ("press", "".as_bytes(), "empty"),
            ("press", b"\xff\xfe".as_slice(), "UTF-8"),
            ("press", b"id = ".as_slice(), "profiles/press"),
            ("crusher", press.as_bytes(), "not the topic's"),
        ] {
            match s.adopt(topic_id, payload) {
                Adopt::Ignored(reason) => assert!(reason.contains(why), "{reason}"),
                other => panic!("{topic_id}: {other:?}"),
            }
        }
    }

    fn set(map: &[(&str, &str)]) -> ProfileSet {
        let map: Vec<(String, String)> = map
            .iter()
            .map(|(p, i)| (p.to_string(), i.to_string()))
            .collect();
        ProfileSet::new(vec![Profile::milling(), pump()], &map).unwrap()
    }

    #[test]
    fn profile_map_entries_read_and_bad_ones_say_why() {
        assert_eq!(
            parse_profile_map("pump-*=pump"),
            Ok(("pump-*".into(), "pump".into()))
        );
        assert_eq!(
            parse_profile_map(" line?.a* = cmapss_fd001 "),
            Ok(("line?.a*".into(), "cmapss_fd001".into()))
        );
        assert!(matches!(
            parse_profile_map("pump-*"),
            Err(ProfileMapError::NotAnEntry(_))
        ));
        assert!(matches!(
            parse_profile_map("=pump"),
            Err(ProfileMapError::BadPattern(_))
        ));
        assert!(matches!(
            parse_profile_map("a/b=pump"),
            Err(ProfileMapError::BadPattern(_))
        ));
        assert!(matches!(
            parse_profile_map("pump-*=9x"),
            Err(ProfileMapError::BadId(_))
        ));
        let e = parse_profile_map("pump-*").unwrap_err().to_string();
        assert!(e.contains("PATTERN=ID"), "{e}");
    }

    #[test]
    fn globs_match_machine_ids() {
        for (p, s, want) in [
            ("pump-*", "pump-01", true),
            ("pump-*", "pump-", true),
            ("pump-*", "pumps-01", false),
            ("*", "anything", true),
            ("p?mp-0*", "pump-07", true),
            ("*-07", "pump-07", true),
            ("*-07", "pump-08", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("", "", true),
        ] {
            assert_eq!(glob_match(p, s), want, "{p} vs {s}");
        }
    }

    #[test]
    fn a_machine_is_the_first_matching_pattern_else_milling() {
        let s = set(&[("pump-*", "pump"), ("p*", "milling")]);
        assert_eq!(s.for_machine("pump-01"), Slot::Other(0));
        assert_eq!(s.for_machine("press-1"), Slot::Milling);
        assert_eq!(s.for_machine("mill-3"), Slot::Milling);
        let first = set(&[("p*", "milling"), ("pump-*", "pump")]);
        assert_eq!(first.for_machine("pump-01"), Slot::Milling, "first wins");
        assert_eq!(s.by_id("pump"), Some(Slot::Other(0)));
        assert_eq!(s.by_id("milling"), Some(Slot::Milling));
        assert_eq!(s.by_id("nope"), None);
        assert_eq!(s.id(Slot::Other(0)), "pump");
        assert_eq!(s.ids().collect::<Vec<_>>(), ["milling", "pump"]);
        assert!(s.has_map() && !ProfileSet::milling_only().has_map());
    }

    #[test]
    fn a_map_naming_an_unknown_profile_or_a_duplicate_is_refused_at_start() {
        let e = ProfileSet::new(vec![pump()], &[("x-*".into(), "turning".into())]).unwrap_err();
        assert!(
            matches!(&e, ProfileConfigError::UnknownInMap { id, .. } if id == "turning"),
            "{e}"
        );
        assert!(e.to_string().contains("known: milling, pump"), "{e}");
        let e = ProfileSet::new(vec![pump(), pump()], &[]).unwrap_err();
        assert!(matches!(e, ProfileConfigError::Duplicate(id) if id == "pump"));
    }

    #[test]
    fn values_map_by_key_with_ranges_types_attributes_and_unknown_keys() {
        let s = set(&[]);
        let served = s.served(Slot::Other(0)).unwrap();
        assert_eq!(served.names[0], "volt");
        assert_eq!(served.latest_at, [0, 4]);
        let raw = |v: &[(&str, RawValue)]| -> Vec<(String, RawValue)> {
            v.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
        };
        let m = served
            .map(&raw(&[
                ("volt", RawValue::Number(176.2)),
                ("rpm", RawValue::Null),
                ("model", RawValue::Text("m3".into())),
                ("humidity", RawValue::Number(40.0)),
                ("rotate", RawValue::Number(5.0)),
            ]))
            .unwrap();
        assert_eq!(m.values[0], 176.2);
        assert!(m.values[1].is_nan(), "null: not measured");
        assert_eq!(m.attributes, [Some(2)]);
        assert_eq!(
            m.ignored,
            ["humidity", "rotate"],
            "a sensor's name is not its key"
        );
        let e = served
            .map(&raw(&[("rpm", RawValue::Number(5000.0))]))
            .unwrap_err();
        assert_eq!(e.reason, RejectReason::OutOfRange);
        assert!(
            e.detail.contains("values.rpm = 5000 (sensor rotate)")
                && e.detail.contains("[0, 1000]"),
            "{}",
            e.detail
        );
        let e = served
            .map(&raw(&[("volt", RawValue::Number(f64::INFINITY))]))
            .unwrap_err();
        assert_eq!(e.reason, RejectReason::OutOfRange);
        let e = served
            .map(&raw(&[("volt", RawValue::Text("hi".into()))]))
            .unwrap_err();
        assert_eq!(
            (e.reason, e.detail.as_str()),
            (
                RejectReason::WrongType,
                "values.volt is a string; expected a number"
            )
        );
        let e = served
            .map(&raw(&[("model", RawValue::Number(3.0))]))
            .unwrap_err();
        assert_eq!(e.reason, RejectReason::WrongType);
        let m = served
            .map(&raw(&[("model", RawValue::Text("m9".into()))]))
            .unwrap();
        assert_eq!(
            (m.attributes[0], m.ignored.as_slice()),
            (None, &["model=m9".to_owned()][..])
        );
    }

    /// The obvious recursive matcher, to check the iterative one against.
    fn naive(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, _) => s.is_empty(),
            (Some(b'*'), _) => naive(&p[1..], s) || (!s.is_empty() && naive(p, &s[1..])),
            (Some(_), None) => false,
            (Some(&c), Some(&d)) => (c == b'?' || c == d) && naive(&p[1..], &s[1..]),
        }
    }

    proptest::proptest! {
        #[test]
        fn glob_matches_as_the_naive_matcher(p in "[ab*?]{0,8}", s in "[ab]{0,10}") {
            proptest::prop_assert_eq!(glob_match(&p, &s), naive(p.as_bytes(), s.as_bytes()), "{} vs {}", p, s);
        }

        /// Any mix of present, null and absent sensor values maps exactly: accepted with the
        /// values in sensor order (NaN for null or absent) when every number is in its range,
        /// else out_of_range naming the first key outside.
        #[test]
        fn mapping_accepts_exactly_the_in_range_readings(
            volt in proptest::option::of(proptest::option::of(0.0f64..400.0)),
            rpm in proptest::option::of(proptest::option::of(-100.0f64..1200.0)),
            extra in proptest::option::of(-1e9f64..1e9),
        ) {
            let s = set(&[]);
            let served = s.served(Slot::Other(0)).unwrap();
            let mut raw = Vec::new();
            for (key, v) in [("volt", volt), ("rpm", rpm)] {
                if let Some(v) = v {
                    raw.push((key.to_owned(), v.map_or(RawValue::Null, RawValue::Number)));
                }
            }
            if let Some(x) = extra {
                raw.push(("humidity".to_owned(), RawValue::Number(x)));
            }
            let inside = |v: Option<Option<f64>>, lo: f64, hi: f64| {
                v.flatten().is_none_or(|v| (lo..=hi).contains(&v))
            };
            let ok = inside(volt, 100.0, 300.0) && inside(rpm, 0.0, 1000.0);
            match served.map(&raw) {
                Ok(m) => {
                    proptest::prop_assert!(ok);
                    for (got, want) in m.values.iter().zip([volt, rpm]) {
                        match want.flatten() {
                            Some(w) => proptest::prop_assert_eq!(*got, w),
                            None => proptest::prop_assert!(got.is_nan()),
                        }
                    }
                    proptest::prop_assert_eq!(m.ignored.len(), usize::from(extra.is_some()));
                }
                Err(e) => {
                    proptest::prop_assert!(!ok);
                    proptest::prop_assert_eq!(e.reason, RejectReason::OutOfRange);
                }
            }
        }
    }

    #[test]
    fn profiles_load_from_files_and_bad_ones_name_the_file() {
        let dir =
            std::env::temp_dir().join(format!("dtwin-feature-profiles-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("pump.toml");
        std::fs::write(&good, PUMP).unwrap();
        let loaded = load_profiles(&[&good]).unwrap();
        assert_eq!(loaded[0].id, "pump");
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, PUMP.replace("[100.0, 300.0]", "[300.0, 100.0]")).unwrap();
        let e = load_profiles(&[&bad]).unwrap_err().to_string();
        assert!(e.contains("bad.toml:") && e.contains("range"), "{e}");
        let e = load_profiles(&[&good, &good]).unwrap_err();
        assert!(matches!(e, ProfileConfigError::Duplicate(_)), "{e}");
        let milling = dir.join("milling.toml");
        std::fs::write(&milling, dtwin_profile::MILLING).unwrap();
        let e = load_profiles(&[&milling]).unwrap_err();
        assert!(
            matches!(e, ProfileConfigError::MillingIsBuiltIn { .. }),
            "{e}"
        );
        let e = load_profiles(&[dir.join("missing.toml")]).unwrap_err();
        assert!(matches!(e, ProfileConfigError::Read { .. }), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
