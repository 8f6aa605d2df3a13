//! The CustomResourceDefinitions raygate installs, generated from the types.
//!
//! KubeRay's CRDs embed the full upstream Pod and Service schemas with every description, which
//! makes them 0.9–1.4 MB: too large for the `last-applied-configuration` annotation, so plain
//! `kubectl apply -f` fails on them. Ours keep the same structure (still structural schemas, so
//! the API server prunes and defaults the same way) but drop the upstream Kubernetes types'
//! descriptions (`kubectl explain pod` has them), keep raygate's own, and drop the `nullable`
//! marker schemars puts on every `Option`.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{PodTemplateSpec, Service};
use k8s_openapi::api::networking::v1::{
    IngressTLS, NetworkPolicyEgressRule, NetworkPolicyIngressRule,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResourceExt;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::manifest::{self, ManifestError};
use crate::policy::RayPolicy;
use crate::{RayCluster, RayCronJob, RayJob, RayService};

/// Fields whose schema is an embedded Kubernetes object (PodTemplateSpec or Service).
const EMBEDDED_OBJECT_FIELDS: [&str; 4] = [
    "template",
    "submitterPodTemplate",
    "headService",
    "serveService",
];

/// Defaults and enums that Kubernetes declares on its own types with `+default`/`+enum` markers
/// but k8s-openapi's schemas lack. controller-gen (and so KubeRay's CRDs) carries them, and the
/// API server stores them, so a KubeRay user's object reads back the same from raygate.
/// Each entry: the end of the property path (`[]` for list items), the keyword, its value.
fn upstream_markers() -> Vec<(&'static [&'static str], &'static str, Value)> {
    let empty = || json!("");
    vec![
        (&["configMapKeyRef", "name"][..], "default", empty()),
        (&["secretKeyRef", "name"], "default", empty()),
        (&["configMapRef", "name"], "default", empty()),
        (&["secretRef", "name"], "default", empty()),
        (&["nodePublishSecretRef", "name"], "default", empty()),
        (&["imagePullSecrets", "[]", "name"], "default", empty()),
        (&["volumes", "[]", "configMap", "name"], "default", empty()),
        (&["sources", "[]", "configMap", "name"], "default", empty()),
        (&["sources", "[]", "secret", "name"], "default", empty()),
        (&["fileKeyRef", "optional"], "default", json!(false)),
        (&["grpc", "service"], "default", empty()),
        (
            &["containers", "[]", "ports", "[]", "protocol"],
            "default",
            json!("TCP"),
        ),
        (
            &["initContainers", "[]", "ports", "[]", "protocol"],
            "default",
            json!("TCP"),
        ),
        (
            &["ephemeralContainers", "[]", "ports", "[]", "protocol"],
            "default",
            json!("TCP"),
        ),
        (
            &["spec", "ports", "[]", "protocol"],
            "default",
            json!("TCP"),
        ),
        (&["azureDisk", "fsType"], "default", json!("ext4")),
        (&["azureDisk", "readOnly"], "default", json!(false)),
        (&["iscsi", "iscsiInterface"], "default", json!("default")),
        (&["rbd", "keyring"], "default", json!("/etc/ceph/keyring")),
        (&["rbd", "pool"], "default", json!("rbd")),
        (&["rbd", "user"], "default", json!("admin")),
        (&["scaleIO", "fsType"], "default", json!("xfs")),
        (
            &["scaleIO", "storageMode"],
            "default",
            json!("ThinProvisioned"),
        ),
        (
            &["conditions", "[]", "status"],
            "enum",
            json!(["True", "False", "Unknown"]),
        ),
    ]
}

/// The CRDs for RayCluster, RayJob, RayService and RayCronJob, in that order.
pub fn ray_crds() -> Vec<CustomResourceDefinition> {
    let upstream = upstream();
    [
        RayCluster::crd(),
        RayJob::crd(),
        RayService::crd(),
        RayCronJob::crd(),
    ]
    .into_iter()
    .map(|crd| compact(crd, &upstream))
    .collect()
}

/// The CRD for RayPolicy (`raygate.io/v1alpha1`, cluster-scoped).
pub fn policy_crd() -> CustomResourceDefinition {
    compact(RayPolicy::crd(), &upstream())
}

/// Every CRD raygate installs: the Ray kinds, then RayPolicy.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    let mut crds = ray_crds();
    crds.push(policy_crd());
    crds
}

fn upstream() -> Upstream {
    Upstream {
        descriptions: upstream_descriptions(),
        markers: upstream_markers(),
    }
}

/// Every description text of the Kubernetes types our kinds embed. Pod templates and Services
/// cover nearly every core type used elsewhere (EnvVar, ResourceRequirements, SecurityContext...).
fn upstream_descriptions() -> HashSet<String> {
    let mut generator = SchemaGenerator::default();
    let schemas = [
        PodTemplateSpec::json_schema(&mut generator),
        Service::json_schema(&mut generator),
        NetworkPolicyIngressRule::json_schema(&mut generator),
        NetworkPolicyEgressRule::json_schema(&mut generator),
        IngressTLS::json_schema(&mut generator),
        Condition::json_schema(&mut generator),
        Quantity::json_schema(&mut generator),
        Time::json_schema(&mut generator),
    ];
    let mut texts = HashSet::new();
    for schema in schemas.iter().map(|s| s.as_value()) {
        collect_descriptions(schema, &mut texts);
    }
    for definition in generator.definitions().values() {
        collect_descriptions(definition, &mut texts);
    }
    texts
}

fn collect_descriptions(value: &Value, texts: &mut HashSet<String>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                match (key.as_str(), child) {
                    ("description", Value::String(text)) => {
                        texts.insert(text.clone());
                    }
                    _ => collect_descriptions(child, texts),
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| collect_descriptions(item, texts)),
        _ => {}
    }
}

/// Multi-document YAML of the given CRDs, as `kubectl apply -f` takes it.
pub fn to_yaml(crds: &[CustomResourceDefinition]) -> Result<String, ManifestError> {
    let mut out = String::new();
    for crd in crds {
        out.push_str("---\n");
        out.push_str(&manifest::to_yaml(crd)?);
    }
    Ok(out)
}

/// What raygate's schemas take from (or drop of) the upstream Kubernetes types.
struct Upstream {
    descriptions: HashSet<String>,
    markers: Vec<(&'static [&'static str], &'static str, Value)>,
}

fn compact(mut crd: CustomResourceDefinition, upstream: &Upstream) -> CustomResourceDefinition {
    // The API server would default it; spelling it out keeps `kubectl diff` of the CRD empty.
    crd.spec.names.list_kind = Some(format!("{}List", crd.spec.names.kind));
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        let Ok(mut value) = serde_json::to_value(&*schema) else {
            continue;
        };
        compact_schema(&mut value, &mut Vec::new(), upstream);
        if let Some(Value::Object(properties)) = value.get_mut("properties") {
            // controller-gen spells out the object envelope; the API server treats both alike.
            properties.insert("apiVersion".into(), json!({"type": "string"}));
            properties.insert("kind".into(), json!({"type": "string"}));
            properties.insert("metadata".into(), json!({"type": "object"}));
        }
        if let Ok(compacted) = serde_json::from_value::<JSONSchemaProps>(value) {
            *schema = compacted;
        }
    }
    crd
}

fn compact_schema(schema: &mut Value, path: &mut Vec<String>, upstream: &Upstream) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    object.remove("nullable");
    // RayPolicy's types refuse unknown fields when read from files (`deny_unknown_fields`);
    // a structural schema may not close an object that way. The API server's strict field
    // validation (kubectl's default) refuses unknown fields of a RayPolicy instead.
    if object.get("additionalProperties") == Some(&Value::Bool(false)) {
        object.remove("additionalProperties");
    }
    if object
        .get("description")
        .and_then(Value::as_str)
        .is_some_and(|text| upstream.descriptions.contains(text))
    {
        object.remove("description");
    }
    // An `Option<Enum>` lists `null` among its values; without `nullable` it can't be stored.
    if let Some(Value::Array(values)) = object.get_mut("enum") {
        values.retain(|value| !value.is_null());
    }
    for (suffix, keyword, value) in &upstream.markers {
        if path.len() >= suffix.len() && path[path.len() - suffix.len()..].iter().eq(suffix.iter())
        {
            object.insert((*keyword).to_string(), value.clone());
        }
    }
    if let Some(Value::Object(properties)) = object.get_mut("properties") {
        for (name, property) in properties.iter_mut() {
            if is_embedded_object(name, property) {
                restrict_embedded_metadata(property);
            }
            path.push(name.clone());
            compact_schema(property, path, upstream);
            path.pop();
        }
    }
    if let Some(items) = object.get_mut("items") {
        path.push("[]".into());
        compact_schema(items, path, upstream);
        path.pop();
    }
    if let Some(additional) = object.get_mut("additionalProperties") {
        path.push("{}".into());
        compact_schema(additional, path, upstream);
        path.pop();
    }
}

fn is_embedded_object(name: &str, property: &Value) -> bool {
    EMBEDDED_OBJECT_FIELDS.contains(&name)
        && property
            .pointer("/properties/metadata")
            .is_some_and(Value::is_object)
}

/// Embedded objects keep only the metadata fields a template can meaningfully carry, exactly
/// as controller-gen (and so KubeRay) generates them; the API server prunes the rest.
fn restrict_embedded_metadata(property: &mut Value) {
    let string_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let mut fields = Map::new();
    fields.insert("annotations".into(), string_map.clone());
    fields.insert(
        "finalizers".into(),
        json!({"type": "array", "items": {"type": "string"}}),
    );
    fields.insert("labels".into(), string_map);
    fields.insert("name".into(), json!({"type": "string"}));
    fields.insert("namespace".into(), json!({"type": "string"}));
    if let Some(metadata) = property.pointer_mut("/properties/metadata") {
        *metadata = json!({"type": "object", "properties": fields});
    }
}
