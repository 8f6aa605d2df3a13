//! KubeRay's samples are working examples: validation must find no errors in any of them
//! (warnings are fine), and every warning stays within kubectl's line.
//!
//! The samples are read as written, without CRD defaults; the typed structs already default
//! a missing `minReplicas`/`maxReplicas` to the CRD's 0 / 2147483647.

mod kuberay_samples;

use kuberay_samples::sample_documents;

use raygate_api::admission::{admit, validate_json};
use raygate_api::schema_defaults::apply_crd_defaults;
use raygate_api::validation::{
    MAX_WARNING_CHARS, validate_raycluster, validate_rayjob, validate_rayservice,
};
use raygate_api::{RayCluster, RayJob, RayService, Validation};
use serde_json::Value;

/// Samples that are invalid under a rule, with the reason. Empty: every sample passes.
const KNOWN_INVALID: &[(&str, &str)] = &[];

fn validate(kind: &str, document: &Value) -> Option<Validation> {
    let typed = |what: &str| -> ! { panic!("{what} does not parse") };
    Some(match kind {
        "RayCluster" => validate_raycluster(
            &serde_json::from_value::<RayCluster>(document.clone()).unwrap_or_else(|_| typed(kind)),
            None,
        ),
        "RayJob" => validate_rayjob(
            &serde_json::from_value::<RayJob>(document.clone()).unwrap_or_else(|_| typed(kind)),
            None,
        ),
        "RayService" => validate_rayservice(
            &serde_json::from_value::<RayService>(document.clone()).unwrap_or_else(|_| typed(kind)),
            None,
        ),
        _ => return None,
    })
}

#[test]
fn kuberay_samples_have_no_errors() {
    let mut checked = 0;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for (file, document) in sample_documents() {
        if document["apiVersion"] != "ray.io/v1" {
            continue;
        }
        let kind = document["kind"].as_str().unwrap_or_default();
        let name = document["metadata"]["name"].as_str().unwrap_or_default();
        let Some(validation) = validate(kind, &document) else {
            continue;
        };
        checked += 1;
        let known = KNOWN_INVALID.iter().any(|(known, _)| *known == file);
        if !known {
            for error in &validation.errors {
                problems.push(format!("{file}: {kind}/{name}: {error}"));
            }
        } else if validation.errors.is_empty() {
            problems.push(format!("{file} is listed as invalid but has no errors"));
        }
        for warning in &validation.warnings {
            assert!(
                warning.chars().count() <= MAX_WARNING_CHARS,
                "{file}: warning longer than {MAX_WARNING_CHARS}: {warning}"
            );
            warnings.push(format!("{file}: {warning}"));
        }
    }
    println!("{}", warnings.join("\n"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        checked >= 80,
        "only {checked} Ray objects found among the samples"
    );
}

/// The verdict `raygate check` and the webhook give: CRD defaults, then normalization, then
/// validation of the normalized object. Defaults must not create problems the user didn't write.
#[test]
fn kuberay_samples_are_admitted_after_defaulting() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for (file, mut document) in sample_documents() {
        let kind = document["kind"].as_str().unwrap_or_default().to_string();
        if document["apiVersion"] != "ray.io/v1"
            || !["RayCluster", "RayJob", "RayService"].contains(&kind.as_str())
            || KNOWN_INVALID.iter().any(|(known, _)| *known == file)
        {
            continue;
        }
        checked += 1;
        apply_crd_defaults(&mut document);
        let verdict = admit(&document, None);
        // The webhook's validation reads the normalized object's JSON text straight into the
        // typed view: for every sample that path is taken and gives the same answer.
        let text = serde_json::to_string(&verdict.normalized).unwrap_or_default();
        match validate_json(&kind, &text, None) {
            Some(from_text)
                if from_text == raygate_api::admission::validate(&verdict.normalized, None) => {}
            other => problems.push(format!("{file}: {kind}: from the JSON text: {other:?}")),
        }
        for error in &verdict.errors {
            problems.push(format!("{file}: {kind}: {error}"));
        }
        for warning in &verdict.warnings {
            assert!(
                warning.chars().count() <= MAX_WARNING_CHARS,
                "{file}: warning longer than {MAX_WARNING_CHARS}: {warning}"
            );
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        checked >= 80,
        "only {checked} Ray objects found among the samples"
    );
}
