//! Label selectors (`matchLabels`, `matchExpressions`) as the API server evaluates them, for a
//! policy's `match.namespaceSelector`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::field_error::FieldError;

/// Every namespace carries its own name under this label (Kubernetes ≥ 1.21), so selecting by
/// name works even when raygate does not know the namespace's other labels.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

pub(crate) fn matches(
    selector: &LabelSelector,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let get = |key: &str| -> Option<&str> {
        labels
            .get(key)
            .map(String::as_str)
            .or_else(|| (key == NAMESPACE_NAME_LABEL).then_some(namespace))
    };
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| get(key) == Some(value.as_str()));
    labels_match
        && selector
            .match_expressions
            .iter()
            .flatten()
            .all(|requirement| {
                let values = requirement.values.as_deref().unwrap_or_default();
                let value = get(&requirement.key);
                match requirement.operator.as_str() {
                    "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
                    "NotIn" => value.is_none_or(|v| values.iter().all(|x| x != v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    // Refused when the policy is loaded; never matching is the safe reading.
                    _ => false,
                }
            })
}

/// The API server's rules for a selector, so a policy that loads selects what it says.
pub(crate) fn validate(selector: &LabelSelector, path: &str, errors: &mut Vec<FieldError>) {
    for (index, requirement) in selector.match_expressions.iter().flatten().enumerate() {
        let at = format!("{path}.matchExpressions[{index}]");
        let has_values = requirement.values.as_ref().is_some_and(|v| !v.is_empty());
        match requirement.operator.as_str() {
            "In" | "NotIn" if !has_values => errors.push(FieldError::new(
                format!("{at}.values"),
                format!(
                    "must be non-empty when operator is {}",
                    requirement.operator
                ),
            )),
            "Exists" | "DoesNotExist" if has_values => errors.push(FieldError::new(
                format!("{at}.values"),
                format!("must be empty when operator is {}", requirement.operator),
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errors.push(FieldError::new(
                format!("{at}.operator"),
                format!("{other:?} is not a valid operator: use In, NotIn, Exists or DoesNotExist"),
            )),
        }
        if requirement.key.is_empty() {
            errors.push(FieldError::new(format!("{at}.key"), "must not be empty"));
        }
    }
}
