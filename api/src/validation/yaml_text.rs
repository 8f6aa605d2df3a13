//! Fields that hold YAML as a string (`runtimeEnvYAML`, `serveConfigV2`): KubeRay parses them
//! into a mapping at reconcile time, so anything else fails late; raygate checks at admission.

use serde_json::Value;

use crate::manifest;

/// What is wrong with a YAML text that must be a mapping, if anything.
pub(super) enum YamlMappingProblem {
    /// Not YAML at all; the parser's message.
    Unparsable(String),
    /// YAML, but a list or a scalar.
    NotAMapping,
}

pub(super) fn yaml_mapping_problem(text: &str) -> Option<YamlMappingProblem> {
    match manifest::parse_documents(text) {
        Err(error) => Some(YamlMappingProblem::Unparsable(error.to_string())),
        Ok(documents) => match documents.first() {
            None | Some(Value::Object(_)) => None,
            Some(_) => Some(YamlMappingProblem::NotAMapping),
        },
    }
}
