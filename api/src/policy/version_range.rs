//! Ray version ranges for `allowedRayVersions`: comparisons joined by commas, all of which must
//! hold (`>=2.40.0, <3.0.0`). A bare version means equality.

use std::cmp::Ordering;

use crate::ray_version::{self, RayVersion};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VersionRange {
    comparisons: Vec<(Op, RayVersion)>,
}

impl VersionRange {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut comparisons = Vec::new();
        for part in text.split(',').map(str::trim) {
            if part.is_empty() {
                return Err(format!(
                    "{text:?} has an empty comparison; write comparisons such as \">=2.40.0, <3.0.0\""
                ));
            }
            let (op, rest) = [
                (">=", Op::Ge),
                ("<=", Op::Le),
                ("!=", Op::Ne),
                ("==", Op::Eq),
                (">", Op::Gt),
                ("<", Op::Lt),
                ("=", Op::Eq),
            ]
            .into_iter()
            .find_map(|(prefix, op)| part.strip_prefix(prefix).map(|rest| (op, rest)))
            .unwrap_or((Op::Eq, part));
            let rest = rest.trim();
            // `<3` reads as `<3.0`; Ray versions themselves always have a minor number.
            let rest = if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
                format!("{rest}.0")
            } else {
                rest.to_owned()
            };
            let version = ray_version::parse(&rest)
                .map_err(|error| format!("{text:?} is not a version range: {error}"))?;
            comparisons.push((op, version));
        }
        Ok(Self { comparisons })
    }

    pub(crate) fn contains(&self, version: &RayVersion) -> bool {
        self.comparisons.iter().all(|(op, bound)| {
            let ordering = version.cmp_version(bound);
            match op {
                Op::Eq => ordering == Ordering::Equal,
                Op::Ne => ordering != Ordering::Equal,
                Op::Lt => ordering == Ordering::Less,
                Op::Le => ordering != Ordering::Greater,
                Op::Gt => ordering == Ordering::Greater,
                Op::Ge => ordering != Ordering::Less,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> RayVersion {
        ray_version::parse(text).expect("version")
    }

    #[test]
    fn all_comparisons_must_hold() {
        let range = VersionRange::parse(">=2.40.0, <3.0.0").expect("range");
        assert!(range.contains(&v("2.40.0")));
        assert!(range.contains(&v("2.46")));
        assert!(!range.contains(&v("2.39.9")));
        assert!(!range.contains(&v("3.0.0")));
        let exact = VersionRange::parse("2.46.0").expect("range");
        assert!(exact.contains(&v("2.46")));
        assert!(!exact.contains(&v("2.46.1")));
        assert!(
            VersionRange::parse(">=2, <3")
                .expect("range")
                .contains(&v("2.99.1"))
        );
        assert!(
            VersionRange::parse("!=2.41.0")
                .expect("range")
                .contains(&v("2.42.0"))
        );
    }

    #[test]
    fn malformed_ranges_are_refused() {
        for bad in ["", ">=", "2.x, <3", ">=2.40.0,", "~2.4", "latest"] {
            assert!(VersionRange::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
