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

/// Every object of a YAML or JSON text, in order, as `kubectl apply -f` reads it: YAML
/// documents, or a stream of JSON objects (what `jq -c` prints), with the items of a list
/// (`kind: List`, `RayClusterList`: what `kubectl get -o yaml` prints for several objects)
/// in place of the list. Empty documents are skipped.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, ManifestError> {
    let documents = match json_stream(text) {
        Some(documents) => documents,
        None => serde_saphyr::from_multiple_with_options(text, options()).map_err(|error| {
            let location = error.location();
            ManifestError {
                message: error.to_string(),
                line: location.map(|l| l.line() as usize),
                column: location.map(|l| l.column() as usize),
            }
        })?,
    };
    let mut objects = Vec::with_capacity(documents.len());
    for document in documents {
        unpack_lists(document, &mut objects);
    }
    Ok(objects)
}

/// Two or more JSON values one after another (a single JSON document is YAML, and the YAML
/// parser's errors name the line and column). `None` when the text is not such a stream.
fn json_stream(text: &str) -> Option<Vec<Value>> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let values: Result<Vec<Value>, _> = serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect();
    values.ok().filter(|values| values.len() > 1)
}

fn unpack_lists(document: Value, objects: &mut Vec<Value>) {
    if document.is_null() {
        return;
    }
    let is_list = document
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|kind| kind.ends_with("List"))
        && document.get("items").is_some_and(Value::is_array);
    if !is_list {
        objects.push(document);
        return;
    }
    if let Value::Object(mut list) = document
        && let Some(Value::Array(items)) = list.remove("items")
    {
        for item in items {
            unpack_lists(item, objects);
        }
    }
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
    fn reads_a_stream_of_json_objects() {
        let docs = parse_documents("{\"kind\": \"A\"}\n{\"kind\": \"B\"}{\"kind\": \"C\"}")
            .expect("valid JSON stream");
        assert_eq!(
            docs,
            [
                json!({"kind": "A"}),
                json!({"kind": "B"}),
                json!({"kind": "C"})
            ]
        );
    }

    #[test]
    fn a_broken_json_stream_names_the_line() {
        let error = parse_documents("{\"kind\": \"A\"}\n{\"kind\": ").expect_err("broken");
        assert!(error.line.is_some(), "no line in {error:?}");
    }

    #[test]
    fn lists_are_replaced_by_their_items() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {kind: A}\n- {kind: BList, items: [{kind: C}]}\n---\nkind: RayClusterList\nitems: []\n---\nkind: D\n";
        let docs = parse_documents(text).expect("valid YAML");
        assert_eq!(
            docs,
            [
                json!({"kind": "A"}),
                json!({"kind": "C"}),
                json!({"kind": "D"})
            ]
        );
        // A kind that only ends in `List`, without items, is an object like any other.
        let docs = parse_documents("kind: PlayList\nname: x\n").expect("valid YAML");
        assert_eq!(docs, [json!({"kind": "PlayList", "name": "x"})]);
    }

    #[test]
    fn reports_line_and_column_of_a_syntax_error() {
        let error = parse_documents("a: 1\nb: [unclosed\nc: 3\n").expect_err("invalid YAML");
        assert!(error.line.is_some(), "no line in {error:?}");
        assert!(error.to_string().contains("line"), "message {error}");
    }
}
