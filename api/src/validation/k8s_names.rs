//! Kubernetes name syntax (`k8s.io/apimachinery/pkg/util/validation`): DNS-1035 and DNS-1123
//! labels, DNS-1123 subdomains, qualified names (label keys) and label values. Each check
//! returns the problems in apimachinery's own words, empty when the value is valid.

const LABEL_MAX: usize = 63;
const SUBDOMAIN_MAX: usize = 253;

const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn max_len_error(max: usize) -> String {
    format!("must be no more than {max} characters")
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn matches_dns1123_label(value: &str) -> bool {
    let (Some(first), Some(last)) = (value.chars().next(), value.chars().last()) else {
        return false;
    };
    is_lower_alnum(first)
        && is_lower_alnum(last)
        && value.chars().all(|c| is_lower_alnum(c) || c == '-')
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn matches_qualified_name_part(value: &str) -> bool {
    let (Some(first), Some(last)) = (value.chars().next(), value.chars().last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A DNS-1035 label: what KubeRay requires of RayCluster, RayJob and RayService names,
/// because they become Service names.
pub(crate) fn dns1035_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > LABEL_MAX {
        errors.push(max_len_error(LABEL_MAX));
    }
    let starts_alpha = value.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    if !(starts_alpha && matches_dns1123_label(value)) {
        errors.push(DNS1035_LABEL_MSG.to_string());
    }
    errors
}

/// A DNS-1123 label.
pub(crate) fn dns1123_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > LABEL_MAX {
        errors.push(max_len_error(LABEL_MAX));
    }
    if !matches_dns1123_label(value) {
        errors.push(DNS1123_LABEL_MSG.to_string());
    }
    errors
}

/// A DNS-1123 subdomain (dot-separated DNS-1123 labels, at most 253 characters).
pub(crate) fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > SUBDOMAIN_MAX {
        errors.push(max_len_error(SUBDOMAIN_MAX));
    }
    if !value.split('.').all(matches_dns1123_label) {
        errors.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errors
}

/// A qualified name such as a label key: `[prefix/]name`, prefix a DNS-1123 subdomain,
/// name at most 63 characters.
pub(crate) fn qualified_name(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_string());
            } else {
                for error in dns1123_subdomain(prefix) {
                    errors.push(format!("prefix part {error}"));
                }
            }
            *name
        }
        _ => {
            errors.push(format!(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', with an \
                 optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName'); {QUALIFIED_NAME_MSG}"
            ));
            return errors;
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_string());
    } else {
        if name.len() > LABEL_MAX {
            errors.push(format!("name part {}", max_len_error(LABEL_MAX)));
        }
        if !matches_qualified_name_part(name) {
            errors.push(QUALIFIED_NAME_MSG.to_string());
        }
    }
    errors
}

/// A label value: empty, or at most 63 characters of the qualified-name alphabet.
pub(crate) fn label_value(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > LABEL_MAX {
        errors.push(max_len_error(LABEL_MAX));
    }
    if !value.is_empty() && !matches_qualified_name_part(value) {
        errors.push(LABEL_VALUE_MSG.to_string());
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1035_labels() {
        for ok in ["a", "raycluster-sample", "a1", "x-y-z"] {
            assert!(dns1035_label(ok).is_empty(), "{ok}");
        }
        for bad in ["", "1abc", "Abc", "abc-", "-abc", "a_b", "a.b"] {
            assert!(!dns1035_label(bad).is_empty(), "{bad}");
        }
        assert_eq!(dns1035_label(&"a".repeat(63)), Vec::<String>::new());
        assert_eq!(dns1035_label(&"a".repeat(64)).len(), 1);
    }

    #[test]
    fn dns1123_labels_may_start_with_a_digit() {
        assert!(dns1123_label("1abc").is_empty());
        assert!(dns1123_label("gpu-group").is_empty());
        assert!(!dns1123_label("GPU").is_empty());
        assert!(!dns1123_label("a_b").is_empty());
        assert!(!dns1123_label("").is_empty());
    }

    #[test]
    fn dns1123_subdomains() {
        assert!(dns1123_subdomain("example.com").is_empty());
        assert!(dns1123_subdomain("ray.io").is_empty());
        assert!(!dns1123_subdomain("example..com").is_empty());
        assert!(!dns1123_subdomain("Example.com").is_empty());
        assert!(!dns1123_subdomain(&"a".repeat(254)).is_empty());
    }

    #[test]
    fn qualified_names() {
        for ok in [
            "app",
            "ray.io/market-type",
            "example.com/My_Name",
            "a.b",
            "A",
        ] {
            assert!(qualified_name(ok).is_empty(), "{ok}");
        }
        for bad in [
            "",
            "/x",
            "x/",
            "a/b/c",
            "-a",
            "a-",
            "Bad_Prefix.com/x",
            "sp ace",
        ] {
            assert!(!qualified_name(bad).is_empty(), "{bad}");
        }
        assert!(!qualified_name(&"a".repeat(64)).is_empty());
    }

    #[test]
    fn label_values() {
        for ok in ["", "on-demand", "A100", "us_central2", "v1.2"] {
            assert!(label_value(ok).is_empty(), "{ok}");
        }
        for bad in ["-x", "x-", "a b", "a/b", "ü"] {
            assert!(!label_value(bad).is_empty(), "{bad}");
        }
        assert!(!label_value(&"a".repeat(64)).is_empty());
    }
}
