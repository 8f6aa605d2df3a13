//! RayPolicy: cluster admins' rules for Ray objects, evaluated without I/O so that the webhook
//! and `raygate check` give the same verdict.
//!
//! - [`types`]: the `raygate.io/v1alpha1` RayPolicy resource.
//! - [`compile`]: checking a RayPolicy object (a broken one is refused, never half-applied).
//! - [`PolicySet`]: the policies in force; `inject` edits an object as received, `evaluate`
//!   lists violations, each with its policy, rule, action and field path.

pub mod compile;
mod inject;
mod pods;
mod rules;
pub mod selector;
pub mod types;
mod version_range;

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

pub use compile::{
    CompiledPolicy, POLICY_API_VERSION, POLICY_KIND, compile, is_policy, validate_policy,
};
pub use types::{Action, READY_CONDITION, RayPolicy, RayPolicySpec, RayPolicyStatus};

use crate::field_error::FieldError;

/// One rule of one policy broken by one field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    pub policy: String,
    /// The rule's key under `spec.rules` (`maxGpusPerCluster`).
    pub rule: &'static str,
    pub action: Action,
    /// The user's path of the offending field (`spec.workerGroupSpecs[1].maxReplicas`).
    #[serde(rename = "field")]
    pub path: String,
    /// Names the limit and the offending value.
    pub message: String,
}

impl Violation {
    /// The denial cause: the message carries the policy and rule, since kubectl prints only
    /// the message unless run with `-v4`.
    pub fn to_field_error(&self) -> FieldError {
        FieldError::new(
            self.path.clone(),
            format!(
                "RayPolicy {} ({}): {}",
                self.policy, self.rule, self.message
            ),
        )
    }

    /// The admission warning, prefixed with the policy's name.
    pub fn to_warning(&self) -> String {
        format!(
            "RayPolicy {} ({}): {}: {}",
            self.policy, self.rule, self.path, self.message
        )
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.action, self.to_warning())
    }
}

/// Everything the policies in force found for one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyEvaluation {
    /// Names of the policies that applied to the object.
    pub matched: Vec<String>,
    pub violations: Vec<Violation>,
}

impl PolicyEvaluation {
    pub fn denied(&self) -> bool {
        self.violations.iter().any(|v| v.action == Action::Deny)
    }

    /// One cause per `Deny` violation.
    pub fn errors(&self) -> Vec<FieldError> {
        self.with_action(Action::Deny)
            .map(Violation::to_field_error)
            .collect()
    }

    /// One warning per `Warn` violation.
    pub fn warnings(&self) -> Vec<String> {
        self.with_action(Action::Warn)
            .map(Violation::to_warning)
            .collect()
    }

    /// `Audit` violations as AdmissionResponse `auditAnnotations`: the key is
    /// `<policy>.<rule>` (the API server prefixes the webhook's name), the value every
    /// message of that rule.
    pub fn audit_annotations(&self) -> BTreeMap<String, String> {
        let mut annotations: BTreeMap<String, String> = BTreeMap::new();
        for violation in self.with_action(Action::Audit) {
            let key = audit_key(&violation.policy, violation.rule);
            let entry = format!("{}: {}", violation.path, violation.message);
            annotations
                .entry(key)
                .and_modify(|text| {
                    text.push_str("; ");
                    text.push_str(&entry);
                })
                .or_insert(entry);
        }
        annotations
    }

    fn with_action(&self, action: Action) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(move |v| v.action == action)
    }
}

/// An audit annotation key must be a valid name (63 characters, alphanumeric at both ends).
fn audit_key(policy: &str, rule: &str) -> String {
    let key = format!("{policy}.{rule}");
    let mut key: String = key.chars().take(63).collect();
    while key.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        key.pop();
    }
    key
}

/// The policies in force, ordered by name (so injections from several policies land in the
/// same order every time).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicySet {
    policies: Vec<CompiledPolicy>,
}

/// A policy file's document that is not a valid RayPolicy.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{source_name}: RayPolicy {name:?} is invalid: {}", list(.errors))]
pub struct PolicyLoadError {
    /// Where the policy came from (a file name).
    pub source_name: String,
    pub name: String,
    pub errors: Vec<FieldError>,
}

fn list(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

impl PolicySet {
    pub fn new(mut policies: Vec<CompiledPolicy>) -> Self {
        policies.sort_by(|a, b| a.name.cmp(&b.name));
        Self { policies }
    }

    /// Compiles every RayPolicy document (other kinds are skipped), each with the name of
    /// where it came from. All or nothing: one invalid policy fails the load.
    pub fn from_documents<'a>(
        documents: impl IntoIterator<Item = (&'a str, &'a Value)>,
    ) -> Result<Self, Vec<PolicyLoadError>> {
        let mut policies = Vec::new();
        let mut errors = Vec::new();
        for (source, document) in documents {
            if document.get("kind").and_then(Value::as_str) != Some(POLICY_KIND) {
                continue;
            }
            match compile(document) {
                Ok(policy) => policies.push(policy),
                Err(found) => errors.push(PolicyLoadError {
                    source_name: source.to_owned(),
                    name: document
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    errors: found,
                }),
            }
        }
        if errors.is_empty() {
            Ok(Self::new(policies))
        } else {
            Err(errors)
        }
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    pub fn policies(&self) -> &[CompiledPolicy] {
        &self.policies
    }

    /// The policies that apply to an object of `kind` in `namespace` (whose labels are
    /// `labels`).
    pub fn matching<'a>(
        &'a self,
        kind: &'a str,
        namespace: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a CompiledPolicy> + 'a {
        // A RayCronJob is held to the policies of the RayJobs it creates.
        let kind = if kind == "RayCronJob" { "RayJob" } else { kind };
        self.policies.iter().filter(move |policy| {
            let m = &policy.spec.match_;
            (m.kinds.is_empty() || m.kinds.iter().any(|k| k.as_str() == kind))
                && (m.namespaces.is_empty() || m.namespaces.iter().any(|n| n == namespace))
                && m.namespace_selector
                    .as_ref()
                    .is_none_or(|s| selector::matches(s, namespace, labels))
        })
    }

    /// Adds what matching policies inject, in place. Returns whether any policy matched.
    ///
    /// The result is that of applying each matching policy's injection in turn (name order):
    /// nothing present is overwritten, so for one key the first policy wins. The injections
    /// are merged first so that the object's pod templates are walked once.
    pub fn inject(
        &self,
        object: &mut Value,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        let kind = kind_of(object);
        let mut matching = self.matching(&kind, namespace, labels).peekable();
        if matching.peek().is_none() {
            return false;
        }
        let injection = inject::Injection::merge(matching);
        if injection.is_empty() {
            return true;
        }
        let targets = inject::targets(object);
        injection.apply(object, &targets);
        true
    }

    /// Every violation of every matching policy.
    pub fn evaluate(
        &self,
        object: &Value,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> PolicyEvaluation {
        let mut evaluation = PolicyEvaluation::default();
        let kind = kind_of(object);
        let mut view = None;
        for policy in self.matching(&kind, namespace, labels) {
            let view = view.get_or_insert_with(|| pods::ObjectView::new(object));
            evaluation.matched.push(policy.name.clone());
            rules::evaluate(policy, view, &mut evaluation.violations);
        }
        evaluation
    }
}

fn kind_of(object: &Value) -> String {
    object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}
