//! Object names (C1, C2, J1, J2, S1) and annotations whose values KubeRay parses (S2).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{field_path, go_duration, k8s_names};
use crate::field_error::Validation;
use crate::labels::ANNOTATION_INITIALIZING_TIMEOUT;

/// `<cluster>-serve-svc` must fit a 63-character Service name.
pub(crate) const MAX_RAYCLUSTER_NAME: usize = 53;
/// A RayJob's cluster is `<job>-xxxxx`, which must fit [`MAX_RAYCLUSTER_NAME`].
pub(crate) const MAX_RAYJOB_NAME: usize = MAX_RAYCLUSTER_NAME - 6;
/// A RayService's clusters are `<service>-xxxxx`, which must fit [`MAX_RAYCLUSTER_NAME`].
pub(crate) const MAX_RAYSERVICE_NAME: usize = MAX_RAYCLUSTER_NAME - 6;

/// Characters the API server appends to `generateName`.
const GENERATED_SUFFIX: &str = "abcde";

/// The name must be a DNS-1035 label of at most `max` characters, because KubeRay derives
/// Service names from it. With `generateName` (offline checks see no generated name yet),
/// the prefix plus the 5 generated characters must satisfy the same rule.
pub(crate) fn check_name(v: &mut Validation, meta: &ObjectMeta, kind: &str, max: usize) {
    let name = meta.name.as_deref().unwrap_or_default();
    let generate_name = meta.generate_name.as_deref().unwrap_or_default();
    if name.is_empty() && !generate_name.is_empty() {
        let generated = format!("{generate_name}{GENERATED_SUFFIX}");
        if generated.len() > max {
            v.error(
                "metadata.generateName",
                format!(
                    "{kind} name should be no more than {max} characters: generateName \
                     \"{generate_name}\" plus 5 generated characters is {} characters",
                    generated.len()
                ),
            );
        } else {
            let errors = k8s_names::dns1035_label(&generated);
            if !errors.is_empty() {
                v.error(
                    "metadata.generateName",
                    format!(
                        "{kind} name should be a valid DNS1035 label: generateName \
                         \"{generate_name}\" gives names like \"{generated}\": {}",
                        errors.join("; ")
                    ),
                );
            }
        }
        return;
    }
    if name.is_empty() {
        v.error("metadata.name", format!("{kind} name is required"));
        return;
    }
    // C1 / J1 / S1: length.
    if name.len() > max {
        v.error(
            "metadata.name",
            format!(
                "{kind} name should be no more than {max} characters (\"{name}\" has {}); \
                 KubeRay derives Service names from it",
                name.len()
            ),
        );
    }
    // C2 / J2 / S1: DNS-1035 label (length already reported above).
    let errors: Vec<String> = k8s_names::dns1035_label(name)
        .into_iter()
        .filter(|e| !e.starts_with("must be no more than"))
        .collect();
    if !errors.is_empty() {
        v.error(
            "metadata.name",
            format!(
                "{kind} name should be a valid DNS1035 label: \"{name}\": {}",
                errors.join("; ")
            ),
        );
    }
}

/// The `ray.io/initializing-timeout` of a RayService: a positive Go duration ("30m") or
/// positive integer seconds; `None` when unset or not valid (validation reports that).
pub fn initializing_timeout(meta: &ObjectMeta) -> Option<std::time::Duration> {
    let value = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_INITIALIZING_TIMEOUT))?;
    let nanos = match go_duration::parse(value) {
        Ok(nanos) => nanos,
        Err(_) => value.parse::<i64>().ok()?.checked_mul(1_000_000_000)?,
    };
    u64::try_from(nanos)
        .ok()
        .filter(|n| *n > 0)
        .map(std::time::Duration::from_nanos)
}

/// S2: `ray.io/initializing-timeout` is a positive Go duration ("30m") or positive seconds.
pub(crate) fn check_initializing_timeout(v: &mut Validation, meta: &ObjectMeta) {
    let Some(value) = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_INITIALIZING_TIMEOUT))
    else {
        return;
    };
    if value.is_empty() {
        return;
    }
    let path = field_path::key("metadata.annotations", ANNOTATION_INITIALIZING_TIMEOUT);
    let key = ANNOTATION_INITIALIZING_TIMEOUT;
    if let Ok(nanos) = go_duration::parse(value) {
        if nanos <= 0 {
            v.error(
                path,
                format!("annotation {key} must be a positive duration, got: {value}"),
            );
        }
        return;
    }
    // Go's strconv.Atoi: an optionally signed 64-bit decimal integer.
    if let Ok(seconds) = value.parse::<i64>() {
        if seconds <= 0 {
            v.error(
                path,
                format!("annotation {key} must be a positive integer (seconds), got: {value}"),
            );
        }
        return;
    }
    v.error(
        path,
        format!(
            "annotation {key} has invalid format: {value}. Expected Go duration format \
             (e.g., '5m', '1h') or positive integer seconds"
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initializing_timeout_reads_durations_and_seconds() {
        let meta = |value: &str| ObjectMeta {
            annotations: Some(
                [(
                    ANNOTATION_INITIALIZING_TIMEOUT.to_string(),
                    value.to_string(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        };
        let secs = |value: &str| initializing_timeout(&meta(value)).map(|d| d.as_secs_f64());
        assert_eq!(secs("30m"), Some(1800.0));
        assert_eq!(secs("1.5s"), Some(1.5));
        assert_eq!(secs("90"), Some(90.0));
        assert_eq!(secs("0"), None);
        assert_eq!(secs("-5"), None);
        assert_eq!(secs("soon"), None);
        assert_eq!(initializing_timeout(&ObjectMeta::default()), None);
    }
}
