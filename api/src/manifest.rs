//! Reading manifests the way `kubectl` reads them: multi-document YAML (or JSON), with YAML 1.1
//! number and boolean spellings (`defaultMode: 0777` is octal 511, as Go's YAML library reads
//! it), and errors that carry the line and column.

use serde_json::Value;

/// A manifest file that could not be read as YAML or JSON.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ManifestError {
    /// The parser's message, which names the line and column.
    pub message: String,
    /// 1-based line of the error, when the parser knows it.
    pub line: Option<usize>,
    /// 1-based column of the error, when the parser knows it.
    pub column: Option<usize>,
}

fn options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    options.with_snippet = false;
    options
}

/// Every non-empty document of a YAML or JSON text, in order.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, ManifestError> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, options()).map_err(|error| {
            let location = error.location();
            ManifestError {
                message: error.to_string(),
                line: location.map(|l| l.line() as usize),
                column: location.map(|l| l.column() as usize),
            }
        })?;
    Ok(documents.into_iter().filter(|d| !d.is_null()).collect())
}

/// YAML text of one value, as `raygate` prints objects.
pub fn to_yaml<T: serde::Serialize>(value: &T) -> Result<String, ManifestError> {
    serde_saphyr::to_string(value).map_err(|error| ManifestError {
        message: error.to_string(),
        line: None,
        column: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_several_documents_and_skips_empty_ones() {
        let docs = parse_documents("a: 1\n---\n---\nb: [x]\n").expect("valid YAML");
        assert_eq!(docs, [json!({"a": 1}), json!({"b": ["x"]})]);
    }

    #[test]
    fn reads_numbers_and_booleans_as_kubectl_does() {
        let docs = parse_documents("mode: 0777\nquoted: '0777'\nflag: yes\n").expect("valid");
        assert_eq!(
            docs[0],
            json!({"mode": 511, "quoted": "0777", "flag": true})
        );
    }

    #[test]
    fn reads_json() {
        let docs = parse_documents(r#"{"kind": "RayCluster", "n": 2}"#).expect("valid JSON");
        assert_eq!(docs, [json!({"kind": "RayCluster", "n": 2})]);
    }

    #[test]
    fn reports_line_and_column_of_a_syntax_error() {
        let error = parse_documents("a: 1\nb: [unclosed\nc: 3\n").expect_err("invalid YAML");
        assert!(error.line.is_some(), "no line in {error:?}");
        assert!(error.to_string().contains("line"), "message {error}");
    }
}
