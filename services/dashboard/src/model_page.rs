//! The model page: every deployed model by profile and kind (a table, then one card per
//! model: [`crate::modelcard`]) and every expert rule of the rules in use (condition, level,
//! action).

use crate::modelcard::{card, kind_text, ModelCard};
use crate::web::{level_name, page, AppState};
use askama::Template;
use axum::extract::State;
use axum::response::Response;

/// One row of the models table.
struct DeployedModel {
    profile: String,
    /// `classifier`, `quality`, `anomaly` or `rul` (the row's `data-kind`).
    kind: &'static str,
    /// The kind for people: `failure classifier`, `quality`, `anomaly`, `rul (cycles)`.
    kind_text: String,
    /// Where it is deployed.
    topic: String,
    id: String,
    version: String,
    created_at: String,
    label: String,
    /// The decision threshold (a probability, or an anomaly score); `n/a` for a rul model.
    threshold: String,
    metrics: Vec<(String, String)>,
    /// Its card's HTML id.
    anchor: String,
}

impl DeployedModel {
    fn new(c: &ModelCard, m: &dtwin_ml::ModelArtifact) -> Self {
        Self {
            profile: c.profile.clone(),
            kind: c.kind,
            kind_text: kind_text(m),
            topic: c.topic.clone(),
            id: m.model_id.clone(),
            version: m.version.clone(),
            created_at: if m.created_at.is_empty() {
                "unknown".to_owned()
            } else {
                m.created_at.clone()
            },
            label: m.label.clone(),
            threshold: if m.kind == dtwin_ml::ModelKind::Rul {
                "n/a".to_owned()
            } else {
                format!("{:.3}", m.threshold)
            },
            metrics: c.key_metrics.clone(),
            anchor: c.anchor.clone(),
        }
    }
}

/// One expert rule.
struct RuleRow {
    code: String,
    level: &'static str,
    condition: String,
    action: String,
}

#[derive(Template)]
#[template(path = "model.html")]
struct ModelPage {
    /// Every model the dashboard knows, by profile (milling first) and kind.
    deployed: Vec<DeployedModel>,
    cards: Vec<ModelCard>,
    /// The milling machines' rules (the inference service's rules file).
    rules: Vec<RuleRow>,
    /// Where they come from.
    rules_source: String,
    /// Profiles whose machines get no expert rules (every profile but milling).
    unruled: Vec<String>,
}

/// Where kinds sort on the model page: the failure classifier, then quality, anomaly, rul.
fn kind_rank(kind: &str) -> usize {
    ["classifier", "quality", "anomaly", "rul"]
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(usize::MAX)
}

/// `GET /model`.
pub(crate) async fn model_page(State(s): State<AppState>) -> Response {
    // Charts take a few milliseconds each: off the async workers.
    let built = tokio::task::spawn_blocking(move || build(&s)).await;
    match built {
        Ok(p) => page(p),
        Err(e) => crate::web::internal(&format!("model page: {e}")),
    }
}

fn build(s: &AppState) -> ModelPage {
    let mut all: Vec<(ModelCard, DeployedModel)> = Vec::new();
    let mut push = |profile: &str, topic: String, m: &dtwin_ml::ModelArtifact| {
        let c = card(profile, &topic, m);
        let d = DeployedModel::new(&c, m);
        all.push((c, d));
    };
    push(
        crate::profiles::MILLING,
        "inference settings (models/current)".to_owned(),
        s.scorer.model(),
    );
    {
        let models = s
            .models
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (profile, a) in models.iter() {
            push(profile, format!("models/{profile}"), a);
        }
    }
    {
        let kinds = s
            .kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (profile, kind, a) in kinds.iter() {
            push(profile, format!("models/{profile}/{}", kind.as_str()), a);
        }
    }
    all.sort_by(|(a, _), (b, _)| {
        let milling = |c: &ModelCard| c.profile != crate::profiles::MILLING;
        (milling(a), &a.profile, kind_rank(a.kind)).cmp(&(
            milling(b),
            &b.profile,
            kind_rank(b.kind),
        ))
    });
    let (cards, deployed) = all.into_iter().unzip();
    let rules = s
        .scorer
        .rules()
        .rules()
        .iter()
        .map(|r| RuleRow {
            code: r.action.code.clone(),
            level: level_name(r.action.severity),
            condition: r.condition_text(),
            action: r.action.text.clone(),
        })
        .collect();
    ModelPage {
        deployed,
        cards,
        rules,
        rules_source: s.rules_source.to_string(),
        unruled: s
            .profiles
            .all()
            .iter()
            .filter(|p| p.id != crate::profiles::MILLING)
            .map(|p| format!("{} ({})", p.label, p.id))
            .collect(),
    }
}
