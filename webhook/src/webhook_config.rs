//! The MutatingWebhookConfiguration and ValidatingWebhookConfiguration that point the API
//! server at raygate. `raygate webhook-config` prints them; the Helm chart renders from the
//! same function, so the two never drift.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations,
    ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};

/// Name of both configuration objects.
pub const CONFIGURATION_NAME: &str = "raygate";
pub const MUTATING_WEBHOOK_NAME: &str = "mutate.raygate.io";
pub const VALIDATING_WEBHOOK_NAME: &str = "validate.raygate.io";
/// The label every namespace carries with its own name (Kubernetes ≥ 1.21).
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Where the API server reaches the webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookTarget {
    /// A base URL such as `https://127.0.0.1:9443`; `/mutate` and `/validate` are appended.
    Url(String),
    /// An in-cluster Service.
    Service {
        name: String,
        namespace: String,
        port: Option<i32>,
    },
}

/// What the configurations depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfigOptions {
    pub target: WebhookTarget,
    /// PEM of the CA that signed the serving certificate (sent base64-encoded as `caBundle`).
    pub ca_bundle: Option<Vec<u8>>,
    /// The webhook's own namespace: requests there skip the webhook, so a broken webhook can't
    /// block fixing itself.
    pub exclude_namespace: Option<String>,
}

/// Both configurations.
pub fn webhook_configurations(
    options: &WebhookConfigOptions,
) -> (MutatingWebhookConfiguration, ValidatingWebhookConfiguration) {
    let mutating = MutatingWebhookConfiguration {
        metadata: metadata(),
        webhooks: Some(vec![MutatingWebhook {
            name: MUTATING_WEBHOOK_NAME.to_owned(),
            client_config: client_config(options, "/mutate"),
            rules: Some(rules()),
            admission_review_versions: vec!["v1".to_owned()],
            side_effects: "None".to_owned(),
            failure_policy: Some("Fail".to_owned()),
            match_policy: Some("Equivalent".to_owned()),
            timeout_seconds: Some(5),
            namespace_selector: namespace_selector(options),
            match_conditions: Some(match_conditions()),
            // Normalization is idempotent, so running again after another webhook changed the
            // object is safe and keeps every default in place.
            reinvocation_policy: Some("IfNeeded".to_owned()),
            ..MutatingWebhook::default()
        }]),
    };
    let validating = ValidatingWebhookConfiguration {
        metadata: metadata(),
        webhooks: Some(vec![ValidatingWebhook {
            name: VALIDATING_WEBHOOK_NAME.to_owned(),
            client_config: client_config(options, "/validate"),
            rules: Some({
                let mut rules = rules();
                rules.push(policy_rule());
                rules
            }),
            admission_review_versions: vec!["v1".to_owned()],
            side_effects: "None".to_owned(),
            failure_policy: Some("Fail".to_owned()),
            match_policy: Some("Equivalent".to_owned()),
            timeout_seconds: Some(5),
            namespace_selector: namespace_selector(options),
            match_conditions: Some(match_conditions()),
            ..ValidatingWebhook::default()
        }]),
    };
    (mutating, validating)
}

fn metadata() -> ObjectMeta {
    ObjectMeta {
        name: Some(CONFIGURATION_NAME.to_owned()),
        labels: Some(BTreeMap::from([(
            "app.kubernetes.io/name".to_owned(),
            "raygate".to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

/// CREATE and UPDATE of the four Ray kinds. Not their `status` subresource (the controller
/// writes it), not DELETE (finalizers must always be removable), and nothing outside `ray.io`,
/// so an outage of the webhook can't stop the rest of the cluster.
fn rules() -> Vec<RuleWithOperations> {
    vec![RuleWithOperations {
        api_groups: Some(vec!["ray.io".to_owned()]),
        api_versions: Some(vec!["v1".to_owned()]),
        operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
        resources: Some(
            ["rayclusters", "rayjobs", "rayservices", "raycronjobs"]
                .map(str::to_owned)
                .to_vec(),
        ),
        scope: Some("Namespaced".to_owned()),
    }]
}

/// An object being deleted is only waiting for its finalizers to go: the updates that remove
/// them skip the webhook, so a deletion completes even while raygate is down. (Status
/// updates go to the `status` subresource, which the rules leave out.)
fn match_conditions() -> Vec<MatchCondition> {
    vec![MatchCondition {
        name: "not-being-deleted".to_owned(),
        expression: "!has(object.metadata.deletionTimestamp)".to_owned(),
    }]
}

/// RayPolicy is validated too, so a policy that doesn't load is refused at its own apply.
/// Cluster-scoped, so the webhook's namespaceSelector never skips it.
fn policy_rule() -> RuleWithOperations {
    RuleWithOperations {
        api_groups: Some(vec!["raygate.io".to_owned()]),
        api_versions: Some(vec!["v1alpha1".to_owned()]),
        operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
        resources: Some(vec!["raypolicies".to_owned()]),
        scope: Some("Cluster".to_owned()),
    }
}

fn client_config(options: &WebhookConfigOptions, path: &str) -> WebhookClientConfig {
    let ca_bundle = options.ca_bundle.clone().map(ByteString);
    match &options.target {
        WebhookTarget::Url(base) => WebhookClientConfig {
            url: Some(format!("{}{path}", base.trim_end_matches('/'))),
            ca_bundle,
            service: None,
        },
        WebhookTarget::Service {
            name,
            namespace,
            port,
        } => WebhookClientConfig {
            url: None,
            ca_bundle,
            service: Some(ServiceReference {
                name: name.clone(),
                namespace: namespace.clone(),
                path: Some(path.to_owned()),
                port: *port,
            }),
        },
    }
}

fn namespace_selector(options: &WebhookConfigOptions) -> Option<LabelSelector> {
    let namespace = options.exclude_namespace.as_ref()?;
    Some(LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: NAMESPACE_NAME_LABEL.to_owned(),
            operator: "NotIn".to_owned(),
            values: Some(vec![namespace.clone()]),
        }]),
        match_labels: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_target_with_ca_bundle() {
        let (mutating, validating) = webhook_configurations(&WebhookConfigOptions {
            target: WebhookTarget::Url("https://127.0.0.1:9443/".to_owned()),
            ca_bundle: Some(b"PEM".to_vec()),
            exclude_namespace: None,
        });
        let mutating = serde_json::to_value(&mutating).unwrap_or_default();
        let hook = &mutating["webhooks"][0];
        assert_eq!(mutating["apiVersion"], "admissionregistration.k8s.io/v1");
        assert_eq!(mutating["kind"], "MutatingWebhookConfiguration");
        assert_eq!(mutating["metadata"]["name"], "raygate");
        assert_eq!(hook["name"], "mutate.raygate.io");
        assert_eq!(hook["clientConfig"]["url"], "https://127.0.0.1:9443/mutate");
        assert_eq!(hook["clientConfig"]["caBundle"], "UEVN");
        assert_eq!(hook["sideEffects"], "None");
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["matchPolicy"], "Equivalent");
        assert_eq!(hook["timeoutSeconds"], 5);
        assert_eq!(hook["admissionReviewVersions"], json!(["v1"]));
        assert_eq!(
            hook["rules"][0],
            json!({
                "apiGroups": ["ray.io"],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["rayclusters", "rayjobs", "rayservices", "raycronjobs"],
                "scope": "Namespaced",
            })
        );
        assert!(hook.get("namespaceSelector").is_none());
        let skip_deleting = json!([{
            "name": "not-being-deleted",
            "expression": "!has(object.metadata.deletionTimestamp)",
        }]);
        assert_eq!(hook["matchConditions"], skip_deleting);
        let validating = serde_json::to_value(&validating).unwrap_or_default();
        assert_eq!(validating["webhooks"][0]["name"], "validate.raygate.io");
        assert_eq!(validating["webhooks"][0]["matchConditions"], skip_deleting);
        assert_eq!(
            validating["webhooks"][0]["rules"][1],
            json!({
                "apiGroups": ["raygate.io"],
                "apiVersions": ["v1alpha1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["raypolicies"],
                "scope": "Cluster",
            })
        );
        assert_eq!(
            hook["rules"].as_array().map(Vec::len),
            Some(1),
            "RayPolicy has no defaults"
        );
        assert_eq!(
            validating["webhooks"][0]["clientConfig"]["url"],
            "https://127.0.0.1:9443/validate"
        );
    }

    #[test]
    fn service_target_excludes_own_namespace() {
        let (_, validating) = webhook_configurations(&WebhookConfigOptions {
            target: WebhookTarget::Service {
                name: "raygate".to_owned(),
                namespace: "raygate-system".to_owned(),
                port: Some(443),
            },
            ca_bundle: None,
            exclude_namespace: Some("raygate-system".to_owned()),
        });
        let hook = serde_json::to_value(&validating).unwrap_or_default()["webhooks"][0].clone();
        assert_eq!(
            hook["clientConfig"],
            json!({"service": {"name": "raygate", "namespace": "raygate-system", "path": "/validate", "port": 443}})
        );
        assert_eq!(
            hook["namespaceSelector"],
            json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["raygate-system"]}]})
        );
    }
}
