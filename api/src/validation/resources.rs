//! Container resource requirements, checked the way the API server checks Pods — which
//! raygate's webhook never sees, so without this a bad template only shows up as pod creation
//! failures in events: every quantity parses, no request exceeds its limit, and extended
//! resources (GPUs, TPUs) and huge pages, which cannot be overcommitted, have limits equal to
//! their requests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::field_path;
use crate::field_error::Validation;
use crate::quantity::{self, Quantity};

/// Every container and init container of a pod template under `template_path`. Paths are
/// only built for problems found: most templates have none.
pub(crate) fn check_template(
    v: &mut Validation,
    template: &PodTemplateSpec,
    template_path: impl Fn() -> String,
) {
    let Some(spec) = &template.spec else {
        return;
    };
    let lists: [(&str, &[Container]); 2] = [
        ("containers", &spec.containers),
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
    ];
    for (list, containers) in lists {
        for (index, container) in containers.iter().enumerate() {
            if let Some(resources) = &container.resources {
                check_requirements(v, resources, &|| {
                    format!("{}.spec.{list}[{index}].resources", template_path())
                });
            }
        }
    }
}

/// One container's `resources`, at `path()` (`...containers[0].resources`).
fn check_requirements(
    v: &mut Validation,
    resources: &ResourceRequirements,
    path: &dyn Fn() -> String,
) {
    let limits_path = || format!("{}.limits", path());
    let requests_path = || format!("{}.requests", path());
    let limits = parsed(v, resources.limits.as_ref(), &limits_path);
    let requests = parsed(v, resources.requests.as_ref(), &requests_path);
    for (name, (request_text, request)) in &requests {
        let request_path = || field_path::key(&requests_path(), name);
        match limits.get(name) {
            Some((limit_text, limit)) if request > limit => v.error(
                request_path(),
                format!(
                    "{name} request ({request_text}) must not exceed its limit ({limit_text}): \
                     lower the request or raise the limit"
                ),
            ),
            Some((limit_text, limit)) if request != limit && !overcommit_allowed(name) => v.error(
                request_path(),
                format!(
                    "{name} request ({request_text}) must equal its limit ({limit_text}): \
                     {name} cannot be overcommitted"
                ),
            ),
            None if !overcommit_allowed(name) => v.error(
                field_path::key(&limits_path(), name),
                format!(
                    "{name} has a request ({request_text}) but no limit: set limits.{name} to \
                     the same value, {name} cannot be overcommitted"
                ),
            ),
            _ => {}
        }
    }
}

/// The quantities that parse; an error for each that doesn't.
fn parsed<'a>(
    v: &mut Validation,
    list: Option<&'a BTreeMap<String, K8sQuantity>>,
    path: &dyn Fn() -> String,
) -> BTreeMap<&'a str, (&'a str, Quantity)> {
    let mut out = BTreeMap::new();
    for (name, value) in list.into_iter().flatten() {
        match quantity::parse(&value.0) {
            Some(parsed) => {
                out.insert(name.as_str(), (value.0.as_str(), parsed));
            }
            None => v.error(
                field_path::key(&path(), name),
                quantity::invalid_message(&value.0),
            ),
        }
    }
    out
}

/// Native resources (`cpu`, `memory`, `ephemeral-storage`, `kubernetes.io/...`) may be
/// overcommitted; huge pages and extended resources (`nvidia.com/gpu`) may not.
fn overcommit_allowed(name: &str) -> bool {
    if name.starts_with("hugepages-") {
        return false;
    }
    let native = !name.contains('/') || name.contains("kubernetes.io/");
    native || name.starts_with("requests.")
}
