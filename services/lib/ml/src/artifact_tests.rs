//! Tests of the artifact: recipes, kinds, old artifacts.

mod recipe_tests {
    use super::super::*;

    fn artifact() -> ModelArtifact {
        let x = ndarray::array![[0.0f32, 1.0], [1.0, 0.0], [0.0, 0.5], [1.0, 0.2]];
        let y = [false, true, false, true];
        let params = ForestParams {
            n_trees: 2,
            ..ForestParams::default()
        };
        let forest = Forest::fit(x.view(), &y, &params, &|| {}).unwrap();
        let meta = TrainingMeta {
            rows: 4,
            positives: 2,
            params,
            source: "test".into(),
            seconds: 0.0,
        };
        ModelArtifact::new("m", vec!["a".into(), "b".into()], 0.5, "y", meta, forest)
    }

    #[test]
    fn the_recipe_round_trips_and_older_artifacts_load_without_one() {
        let plain = artifact();
        let json = plain.to_json();
        assert!(
            !String::from_utf8_lossy(&json).contains("\"recipe\""),
            "no recipe, no field"
        );
        assert_eq!(ModelArtifact::from_json(&json).unwrap().recipe, None);
        for recipe in [
            FeatureRecipe::Ai4iTabular,
            FeatureRecipe::Windows {
                window: serde_json::json!({"short": 5, "long": 20, "feature_set": "default"}),
            },
        ] {
            let a = artifact().with_recipe(recipe.clone());
            let back = ModelArtifact::from_json(&a.to_json()).unwrap();
            assert_eq!(back.recipe, Some(recipe));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&artifact().with_recipe(FeatureRecipe::Ai4iTabular).to_json())
                .unwrap();
        assert_eq!(v["recipe"], serde_json::json!({"kind": "ai4i_tabular"}));
    }

    #[test]
    fn the_shipped_model_still_loads() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../inference/models/default.json"
        );
        let bytes = std::fs::read(path).unwrap();
        let a = ModelArtifact::from_json(&bytes).unwrap();
        assert_eq!(a.recipe, None);
    }
}

mod kind_tests {
    use super::super::*;

    fn meta() -> TrainingMeta {
        TrainingMeta {
            rows: 40,
            positives: 0,
            params: ForestParams::default(),
            source: "test".into(),
            seconds: 0.0,
        }
    }

    fn rul_artifact() -> ModelArtifact {
        let x = ndarray::Array2::from_shape_fn((40, 2), |(i, j)| (i * (j + 1)) as f32);
        let y: Vec<f32> = (0..40).map(|i| (40 - i) as f32).collect();
        let params = RegressorParams {
            n_trees: 5,
            ..RegressorParams::default()
        };
        let regressor = ForestRegressor::fit(x.view(), &y, &params, &|| {}).unwrap();
        let rul = RulMeta {
            cap: 125.0,
            unit: "cycles".into(),
            params,
        };
        ModelArtifact::new_rul(
            "rul",
            vec!["a".into(), "b".into()],
            "cycles to failure",
            meta(),
            rul,
            regressor,
        )
    }

    #[test]
    fn an_old_artifact_without_kind_loads_as_a_classifier() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../inference/models/default.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for field in ["kind", "regressor", "rul"] {
            assert!(v.get(field).is_none(), "the shipped model predates {field}");
        }
        let a = ModelArtifact::from_json(text.as_bytes()).unwrap();
        assert_eq!(a.kind, ModelKind::Classifier);
        assert!(a.classifier().is_ok());
        assert!(a.regressor().is_err());
        // A classifier written now looks as it did: no kind, regressor or rul field.
        let again = String::from_utf8(a.to_json()).unwrap();
        assert!(!again.contains("\"kind\":\"classifier\"") && !again.contains("\"regressor\""));
    }

    #[test]
    fn a_rul_artifact_round_trips() {
        let a = rul_artifact();
        a.validate().unwrap();
        let json = a.to_json();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["kind"], "rul");
        assert!(v.get("forest").is_none());
        assert_eq!(v["rul"]["cap"], 125.0);
        let back = ModelArtifact::from_json(&json).unwrap();
        assert_eq!(back.kind, ModelKind::Rul);
        assert_eq!(back.rul, a.rul);
        let row = [10.0f32, 20.0];
        let (est, lo, hi) = back.predict_rul_row(&row).unwrap();
        assert_eq!((est, lo, hi), a.predict_rul_row(&row).unwrap());
        assert!(lo <= est && est <= hi && est > 0.0 && est <= 40.0);
    }

    #[test]
    fn a_rul_artifact_refuses_to_act_as_a_classifier() {
        let a = rul_artifact();
        let e = a.classifier().unwrap_err().to_string();
        assert!(
            e.contains("remaining-useful-life regressor") && e.contains("not a failure classifier"),
            "{e}"
        );
        // A rul artifact with a classifier's fields, or a classifier without a forest, is
        // refused when loaded.
        let mut v: serde_json::Value = serde_json::from_slice(&a.to_json()).unwrap();
        v.as_object_mut().unwrap().remove("regressor");
        let e = ModelArtifact::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(
            e.to_string().contains("needs both regressor and rul"),
            "{e}"
        );
        v["kind"] = "classifier".into();
        let e = ModelArtifact::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.to_string().contains("has no forest"), "{e}");
    }

    #[test]
    #[should_panic(expected = "check ModelArtifact::classifier()")]
    fn scoring_a_rul_artifact_as_a_classifier_panics_with_the_way_out() {
        rul_artifact().predict_row(&[1.0, 2.0]);
    }
}

mod anomaly_tests {
    use super::super::*;

    fn anomaly_artifact() -> ModelArtifact {
        let x = ndarray::Array2::from_shape_fn((200, 2), |(i, j)| ((i * 7 + j * 13) % 17) as f32);
        let params = IsolationParams {
            n_trees: 20,
            ..IsolationParams::default()
        };
        let forest = IsolationForest::fit(x.view(), &params, &|| {}).unwrap();
        let meta = AnomalyMeta {
            healthy: "every reading".into(),
            rate: 0.01,
            params,
        };
        let training = TrainingMeta {
            rows: 200,
            positives: 0,
            params: ForestParams::default(),
            source: "test".into(),
            seconds: 0.0,
        };
        ModelArtifact::new_anomaly(
            "anom",
            vec!["a".into(), "b".into()],
            0.6,
            "anomalous readings",
            training,
            meta,
            forest,
        )
    }

    #[test]
    fn an_anomaly_artifact_round_trips_and_scores_outliers_higher() {
        let a = anomaly_artifact();
        a.validate().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&a.to_json()).unwrap();
        assert_eq!(v["kind"], "anomaly");
        assert!(v.get("forest").is_none() && v.get("regressor").is_none());
        let back = ModelArtifact::from_json(&a.to_json()).unwrap();
        assert_eq!(back.kind, ModelKind::Anomaly);
        assert_eq!(back.anomaly, a.anomaly);
        let inside = back.anomaly_score_row(&[8.0, 8.0]).unwrap();
        let outside = back.anomaly_score_row(&[500.0, -300.0]).unwrap();
        assert_eq!(inside, a.anomaly_score_row(&[8.0, 8.0]).unwrap());
        assert!(outside > inside, "{outside} vs {inside}");
        assert!(back.classifier().is_err() && back.regressor().is_err());
        let e = back.classifier().unwrap_err().to_string();
        assert!(e.contains("anomaly detector"), "{e}");
    }

    #[test]
    fn kinds_name_themselves_and_mixed_trees_are_refused() {
        for k in ModelKind::ALL {
            assert_eq!(ModelKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_value(k).unwrap();
            assert_eq!(json, k.as_str());
        }
        assert_eq!(ModelKind::parse("forest"), None);
        let mut v: serde_json::Value =
            serde_json::from_slice(&anomaly_artifact().to_json()).unwrap();
        v.as_object_mut().unwrap().remove("anomaly");
        let e = ModelArtifact::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(
            e.to_string().contains("needs both isolation and anomaly"),
            "{e}"
        );
        // A quality classifier is a classifier's forest under another kind.
        let mut q: serde_json::Value = serde_json::from_slice(
            &std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../inference/models/default.json"
            ))
            .unwrap(),
        )
        .unwrap();
        q["kind"] = "quality".into();
        let quality = ModelArtifact::from_json(&serde_json::to_vec(&q).unwrap()).unwrap();
        assert_eq!(quality.kind, ModelKind::Quality);
        assert!(quality.classifier().is_ok());
        q["isolation"] = v["isolation"].clone();
        let e = ModelArtifact::from_json(&serde_json::to_vec(&q).unwrap()).unwrap_err();
        assert!(e.to_string().contains("carries a regressor"), "{e}");
    }
}
