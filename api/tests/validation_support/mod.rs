//! Shared by the `validation_*` tests: small valid base objects, edits by JSON pointer, and a
//! table runner that checks each case's exact path and key words.

#![allow(dead_code)]

use raygate_api::admission::admit;
use raygate_api::validation::{
    MAX_WARNING_CHARS, validate_raycluster, validate_raycronjob, validate_rayjob,
    validate_rayservice,
};
use raygate_api::{RayCluster, RayCronJob, RayJob, RayService, Validation};
use serde_json::{Value, json};

const CLUSTER: &str = r#"
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: demo
spec:
  rayVersion: "2.52.0"
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.52.0
          resources:
            limits: {cpu: "1", memory: 4Gi}
            requests: {cpu: "1", memory: 4Gi}
  workerGroupSpecs:
  - groupName: small
    replicas: 1
    minReplicas: 1
    maxReplicas: 5
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-worker
          image: rayproject/ray:2.52.0
          resources:
            limits: {cpu: "1", memory: 2Gi}
            requests: {cpu: "1", memory: 2Gi}
"#;

const JOB: &str = r#"
apiVersion: ray.io/v1
kind: RayJob
metadata:
  name: demo-job
spec:
  entrypoint: python -c "import ray; ray.init()"
  shutdownAfterJobFinishes: true
"#;

const SERVICE: &str = r#"
apiVersion: ray.io/v1
kind: RayService
metadata:
  name: demo-svc
spec:
  serveConfigV2: |
    applications:
      - name: app
        import_path: app:deployment
"#;

fn document(yaml: &str) -> Value {
    raygate_api::manifest::parse_documents(yaml)
        .expect("valid YAML")
        .into_iter()
        .next()
        .expect("one document")
}

/// A valid RayCluster: a head and one worker group `small`.
pub fn cluster() -> Value {
    document(CLUSTER)
}

/// A valid RayJob running on its own cluster (the RayCluster base's spec).
pub fn job() -> Value {
    let mut job = document(JOB);
    job["spec"]["rayClusterSpec"] = cluster()["spec"].clone();
    job
}

/// A valid RayCronJob (the RayJob base's spec as `jobTemplate`), every minute.
pub fn cron_job() -> Value {
    let mut cron_job = json!({
        "apiVersion": "ray.io/v1",
        "kind": "RayCronJob",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "* * * * *"},
    });
    cron_job["spec"]["jobTemplate"] = job()["spec"].clone();
    cron_job
}

/// A valid RayService (the RayCluster base's spec as `rayClusterConfig`).
pub fn service() -> Value {
    let mut service = document(SERVICE);
    service["spec"]["rayClusterConfig"] = cluster()["spec"].clone();
    service
}

/// Sets the value at a JSON pointer (`~1` for `/` in keys), creating missing objects and
/// appending at an array's length; `Value::Null` removes the key or element.
pub fn set(doc: &mut Value, pointer: &str, value: Value) {
    let mut parts: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    let last = parts.pop().expect("pointer has a last segment");
    let mut current = doc;
    for part in parts {
        current = match current {
            Value::Object(map) => map.entry(part).or_insert_with(|| json!({})),
            Value::Array(list) => {
                let index: usize = part.parse().expect("array index");
                if index == list.len() {
                    list.push(json!({}));
                }
                &mut list[index]
            }
            other => panic!("{pointer}: cannot descend into {other}"),
        };
    }
    match current {
        Value::Object(map) => {
            if value.is_null() {
                map.remove(&last);
            } else {
                map.insert(last, value);
            }
        }
        Value::Array(list) => {
            let index: usize = last.parse().expect("array index");
            if value.is_null() {
                list.remove(index);
            } else if index == list.len() {
                list.push(value);
            } else {
                list[index] = value;
            }
        }
        other => panic!("{pointer}: cannot set inside {other}"),
    }
}

/// `base` with every edit applied.
pub fn with(mut base: Value, edits: &[(&str, Value)]) -> Value {
    for (pointer, value) in edits {
        set(&mut base, pointer, value.clone());
    }
    base
}

/// Validates any of the four kinds, typed from JSON as the webhook does.
pub fn validate(object: &Value, old: Option<&Value>) -> Validation {
    fn typed<K: serde::de::DeserializeOwned>(value: &Value) -> K {
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("test object does not parse: {e}\n{value:#}"))
    }
    match object["kind"].as_str() {
        Some("RayCluster") => {
            let old: Option<RayCluster> = old.map(typed);
            validate_raycluster(&typed(object), old.as_ref())
        }
        Some("RayJob") => {
            let old: Option<RayJob> = old.map(typed);
            validate_rayjob(&typed(object), old.as_ref())
        }
        Some("RayService") => {
            let old: Option<RayService> = old.map(typed);
            validate_rayservice(&typed(object), old.as_ref())
        }
        Some("RayCronJob") => {
            let old: Option<RayCronJob> = old.map(typed);
            validate_raycronjob(&typed(object), old.as_ref())
        }
        other => panic!("unknown kind {other:?}"),
    }
}

/// What a case expects.
pub enum Expect {
    /// An error at exactly this path whose message contains every word.
    Error(&'static str, &'static [&'static str]),
    /// No errors, and a warning containing every word.
    Warning(&'static [&'static str]),
    /// No errors at all.
    Allowed,
}

pub struct Case {
    /// Rule id: C8, J17, S8, U-managedBy, T-gpu…
    pub id: &'static str,
    pub object: Value,
    pub old: Option<Value>,
    pub expect: Expect,
    /// Through the whole admission, when defaults change the verdict (see [`fixed_by_defaults`]).
    pub admitted: Option<Expect>,
}

/// A denial the rules make on the object as written, which raygate's defaults fix at
/// admission (a missing port it adds): through `admit` the object is allowed.
pub fn fixed_by_defaults(mut case: Case) -> Case {
    case.admitted = Some(Expect::Allowed);
    case
}

pub fn deny(
    id: &'static str,
    object: Value,
    path: &'static str,
    words: &'static [&'static str],
) -> Case {
    Case {
        id,
        object,
        old: None,
        expect: Expect::Error(path, words),
        admitted: None,
    }
}

pub fn allow(id: &'static str, object: Value) -> Case {
    Case {
        id,
        object,
        old: None,
        expect: Expect::Allowed,
        admitted: None,
    }
}

pub fn warn(id: &'static str, object: Value, words: &'static [&'static str]) -> Case {
    Case {
        id,
        object,
        old: None,
        expect: Expect::Warning(words),
        admitted: None,
    }
}

/// An UPDATE case: `object` replaces `old`.
pub fn update(mut case: Case, old: Value) -> Case {
    case.old = Some(old);
    case
}

/// Runs every case and fails with the list of cases that didn't behave.
pub fn run(cases: Vec<Case>) {
    let total = cases.len();
    let mut failed_cases = 0;
    let mut failures = Vec::new();
    for case in cases {
        let before = failures.len();
        // Each case twice: the rules alone, and the whole admission a user goes through
        // (defaults first, the stored object normalized too), which must decide the same.
        let direct = validate(&case.object, case.old.as_ref());
        let stored_old = case.old.as_ref().map(|old| admit(old, None).normalized);
        let admitted = admit(&case.object, stored_old.as_ref());
        let admitted = Validation {
            errors: admitted.errors,
            warnings: admitted.warnings,
        };
        check(case.id, &case.expect, &direct, &mut failures);
        // The webhook reads the typed view straight from the review's JSON text; whatever
        // that path decides must be exactly what validating the `Value` decides.
        let kind = case.object["kind"].as_str().unwrap_or_default();
        let text = serde_json::to_string(&case.object).unwrap_or_default();
        let on_value = raygate_api::admission::validate(&case.object, case.old.as_ref());
        let from_text = raygate_api::admission::validate_json(kind, &text, case.old.as_ref())
            .unwrap_or_else(|| on_value.clone());
        if from_text != on_value {
            failures.push(format!(
                "{}: validating the JSON text gave {from_text:?}, the Value {on_value:?}",
                case.id
            ));
        }
        let through_admit = format!("{} (through admit)", case.id);
        let expect = case.admitted.as_ref().unwrap_or(&case.expect);
        check(&through_admit, expect, &admitted, &mut failures);
        failed_cases += usize::from(failures.len() > before);
    }
    assert!(
        failures.is_empty(),
        "{failed_cases} of {total} cases failed:\n{}",
        failures.join("\n")
    );
}

fn check(id: &str, expect: &Expect, result: &Validation, failures: &mut Vec<String>) {
    for warning in &result.warnings {
        if warning.chars().count() > MAX_WARNING_CHARS {
            failures.push(format!(
                "{id}: warning over {MAX_WARNING_CHARS} chars: {warning}"
            ));
        }
    }
    match *expect {
        Expect::Error(path, words) => {
            let found = result
                .errors
                .iter()
                .any(|e| e.path == path && words.iter().all(|w| e.message.contains(w)));
            if !found {
                failures.push(format!(
                    "{id}: expected an error at {path} containing {words:?}, got {:#?}",
                    result.errors
                ));
            }
        }
        Expect::Warning(words) => {
            if !result.errors.is_empty() {
                failures.push(format!(
                    "{id}: expected no errors, got {:#?}",
                    result.errors
                ));
            }
            if !result
                .warnings
                .iter()
                .any(|w| words.iter().all(|word| w.contains(word)))
            {
                failures.push(format!(
                    "{id}: expected a warning containing {words:?}, got {:#?}",
                    result.warnings
                ));
            }
        }
        Expect::Allowed => {
            if !result.errors.is_empty() {
                failures.push(format!(
                    "{id}: expected no errors, got {:#?}",
                    result.errors
                ));
            }
        }
    }
}
