//! Problems found in a Ray object, as data: one per bad field, in the user's own terms.

use std::fmt;

/// One problem with one field. `path` is the user's view of the field
/// (`spec.workerGroupSpecs[1].maxReplicas`), `message` says what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    #[serde(rename = "field")]
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What validation found: errors deny the object, warnings are shown to the user but admit it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validation {
    pub errors: Vec<FieldError>,
    /// Risky-but-legal settings, each at most 120 characters (kubectl prints them as `Warning:`).
    pub warnings: Vec<String>,
}

impl Validation {
    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    pub fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    pub fn extend(&mut self, other: Validation) {
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
    }

    pub fn is_allowed(&self) -> bool {
        self.errors.is_empty()
    }
}
