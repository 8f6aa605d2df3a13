//! Field paths in the user's terms, the way `kubectl` prints them:
//! `spec.workerGroupSpecs[1].maxReplicas`, `metadata.annotations[ray.io/ft-enabled]`.

/// `base.key` for plain keys, `base[key]` for keys holding dots or slashes (label keys,
/// resource names such as `nvidia.com/gpu`), so the path stays unambiguous.
pub(crate) fn key(base: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if plain {
        format!("{base}.{key}")
    } else {
        format!("{base}[{key}]")
    }
}

/// `base[index]`.
pub(crate) fn index(base: &str, index: usize) -> String {
    format!("{base}[{index}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys_use_a_dot_and_qualified_keys_brackets() {
        assert_eq!(key("x.requests", "cpu"), "x.requests.cpu");
        assert_eq!(
            key("x.rayStartParams", "num-gpus"),
            "x.rayStartParams.num-gpus"
        );
        assert_eq!(
            key("x.limits", "nvidia.com/gpu"),
            "x.limits[nvidia.com/gpu]"
        );
        assert_eq!(
            key("m.labels", "ray.io/cluster"),
            "m.labels[ray.io/cluster]"
        );
        assert_eq!(key("m.labels", ""), "m.labels[]");
        assert_eq!(
            index("spec.workerGroupSpecs", 2),
            "spec.workerGroupSpecs[2]"
        );
    }
}
