//! Ray versions as KubeRay reads `spec.rayVersion` (`k8s.io/apimachinery` `version.ParseGeneric`):
//! an optional `v`, then at least two dot-separated numbers; anything after the numbers
//! (`-rc1`, `.dev0`) is ignored for comparison. Also the Ray version in an image tag
//! (`rayproject/ray:2.46.0-py310-gpu` → 2.46.0).

use std::cmp::Ordering;
use std::fmt;

/// A parsed version: its numeric components, compared with missing components as 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RayVersion {
    components: Vec<u64>,
}

impl RayVersion {
    fn component(&self, index: usize) -> u64 {
        self.components.get(index).copied().unwrap_or(0)
    }

    pub(crate) fn less_than(&self, other: RayVersionConst) -> bool {
        self.compare(&other.0) == Ordering::Less
    }

    /// Orders two versions numerically, missing components counting as 0.
    pub(crate) fn cmp_version(&self, other: &RayVersion) -> Ordering {
        self.compare(&other.components)
    }

    fn compare(&self, other: &[u64]) -> Ordering {
        let len = self.components.len().max(other.len());
        for index in 0..len {
            let ours = self.component(index);
            let theirs = other.get(index).copied().unwrap_or(0);
            match ours.cmp(&theirs) {
                Ordering::Equal => continue,
                unequal => return unequal,
            }
        }
        Ordering::Equal
    }

    /// Same major, minor and patch.
    pub(crate) fn same_release(&self, other: &RayVersion) -> bool {
        (0..3).all(|index| self.component(index) == other.component(index))
    }
}

impl fmt::Display for RayVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text: Vec<String> = self.components.iter().map(u64::to_string).collect();
        f.write_str(&text.join("."))
    }
}

/// A version constant for minimum-version rules (`2.52.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RayVersionConst([u64; 3]);

impl fmt::Display for RayVersionConst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [major, minor, patch] = self.0;
        write!(f, "{major}.{minor}.{patch}")
    }
}

const fn version(major: u64, minor: u64, patch: u64) -> RayVersionConst {
    RayVersionConst([major, minor, patch])
}

/// Ray serves `/api/healthz` on the dashboard agent from this version; older ones need exec probes.
pub(crate) const MIN_HTTP_PROBES: RayVersionConst = version(2, 53, 0);
/// Token authentication needs Ray 2.52.0.
pub(crate) const MIN_TOKEN_AUTH: RayVersionConst = version(2, 52, 0);
/// Kubernetes service-account token authentication needs Ray 2.55.0.
pub(crate) const MIN_K8S_TOKEN_AUTH: RayVersionConst = version(2, 55, 0);
/// Worker group `priority` needs Ray 2.56.0.
pub(crate) const MIN_GROUP_PRIORITY: RayVersionConst = version(2, 56, 0);
/// `ray job submit --metadata-json` needs Ray 2.6.0.
pub(crate) const MIN_JOB_METADATA: RayVersionConst = version(2, 6, 0);

/// Parses like `version.ParseGeneric`, with its error messages.
pub(crate) fn parse(text: &str) -> Result<RayVersion, String> {
    let trimmed = text.trim_start();
    let trimmed = trimmed.strip_prefix('v').unwrap_or(trimmed);
    // The numeric part is `[0-9]+(\.[0-9]+)*`; whatever follows is ignored.
    let bytes = trimmed.as_bytes();
    let digits_from = |start: usize| {
        bytes
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut end = digits_from(0);
    if end == 0 {
        return Err(format!("could not parse \"{text}\" as version"));
    }
    while bytes.get(end) == Some(&b'.') {
        let more = digits_from(end + 1);
        if more == 0 {
            break;
        }
        end += 1 + more;
    }
    let numbers = &trimmed[..end];
    let parts: Vec<&str> = numbers.split('.').collect();
    if parts.len() < 2 {
        return Err(format!("illegal version string \"{text}\""));
    }
    let mut components = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        if index == 0 && part.starts_with('0') && *part != "0" {
            return Err(format!(
                "illegal zero-prefixed version component \"{part}\" in \"{text}\""
            ));
        }
        let number = part.parse::<u64>().map_err(|_| {
            format!("illegal non-numeric version component \"{part}\" in \"{text}\"")
        })?;
        components.push(number);
    }
    Ok(RayVersion { components })
}

/// The Ray version an image's tag names, for images whose repository is a Ray image
/// (`rayproject/ray`, `ray-ml`, `ray-llm`, a mirror's `.../ray`): `2.46.0` from
/// `rayproject/ray-ml:2.46.0.0e19ea-py39-gpu`. `None` for `nightly`, `latest`, digests only,
/// and images that aren't Ray's.
pub(crate) fn from_image(image: &str) -> Option<RayVersion> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_segment = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let (repository, tag) = last_segment.split_once(':')?;
    if !repository.starts_with("ray") {
        return None;
    }
    let tag = tag.strip_prefix('v').unwrap_or(tag);
    let mut components = Vec::new();
    for part in tag.split('.').take(3) {
        let digits_len = part
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(part.len());
        if digits_len == 0 {
            break;
        }
        components.push(part[..digits_len].parse::<u64>().ok()?);
        if digits_len < part.len() {
            break;
        }
    }
    (components.len() >= 2).then_some(RayVersion { components })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_parse_generic() {
        assert_eq!(parse("2.52.0").map(|v| v.to_string()), Ok("2.52.0".into()));
        assert_eq!(parse("v2.52").map(|v| v.to_string()), Ok("2.52".into()));
        assert_eq!(
            parse(" 2.52.0-rc1").map(|v| v.to_string()),
            Ok("2.52.0".into())
        );
        assert_eq!(
            parse("2.9.0.dev0").map(|v| v.to_string()),
            Ok("2.9.0".into())
        );
        assert_eq!(
            parse("1.2.3.4").map(|v| v.to_string()),
            Ok("1.2.3.4".into())
        );
        assert_eq!(parse("2.52..1").map(|v| v.to_string()), Ok("2.52".into()));
        for bad in ["", "nightly", "2", "latest", "02.1.0", ".2.1", "2..1", "v"] {
            assert!(parse(bad).is_err(), "{bad} parsed");
        }
        assert!(parse("99999999999999999999999.1").is_err());
    }

    #[test]
    fn compares_numerically() {
        let v = parse("2.9.0").expect("valid");
        assert!(v.less_than(MIN_TOKEN_AUTH));
        assert!(!parse("2.52.0").expect("valid").less_than(MIN_TOKEN_AUTH));
        assert!(!parse("2.52").expect("valid").less_than(MIN_TOKEN_AUTH));
        assert!(!parse("3.0.0").expect("valid").less_than(MIN_TOKEN_AUTH));
        assert!(parse("2.51.9").expect("valid").less_than(MIN_TOKEN_AUTH));
        assert_eq!(MIN_TOKEN_AUTH.to_string(), "2.52.0");
    }

    #[test]
    fn reads_ray_versions_from_image_tags() {
        let version = |image: &str| from_image(image).map(|v| v.to_string());
        assert_eq!(version("rayproject/ray:2.46.0"), Some("2.46.0".into()));
        assert_eq!(
            version("rayproject/ray:2.52.0-py310-gpu"),
            Some("2.52.0".into())
        );
        assert_eq!(
            version("rayproject/ray-ml:2.46.0.0e19ea-py39"),
            Some("2.46.0".into())
        );
        assert_eq!(
            version("rayproject/ray-ml:2.49.2.deprecated-py311-gpu"),
            Some("2.49.2".into())
        );
        assert_eq!(
            version("my.registry:5000/mirror/ray:2.41.0"),
            Some("2.41.0".into())
        );
        assert_eq!(
            version("rayproject/ray:2.46.0@sha256:abc"),
            Some("2.46.0".into())
        );
        assert_eq!(version("rayproject/ray:nightly"), None);
        assert_eq!(version("rayproject/ray"), None);
        assert_eq!(version("my.registry:5000/ray"), None);
        assert_eq!(version("busybox:1.36"), None);
        assert_eq!(version("quay.io/kuberay/submitter:v1.5.1"), None);
    }

    #[test]
    fn same_release_ignores_build_suffixes() {
        let a = from_image("rayproject/ray:2.46.0-py310").expect("version");
        let b = parse("2.46.0").expect("version");
        let c = parse("2.41.0").expect("version");
        assert!(a.same_release(&b));
        assert!(!a.same_release(&c));
    }
}
