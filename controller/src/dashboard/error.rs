//! What can go wrong talking to the Ray dashboard.

use hyper::{Method, StatusCode};

/// The most of an error body kept in [`DashboardError::Status`]. Ray answers errors with a
/// Python traceback whose last lines say what went wrong, so the tail is kept.
const BODY_EXCERPT_CHARS: usize = 600;

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("invalid Ray dashboard URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("building the request {method} {url}: {source}")]
    InvalidRequest {
        method: Method,
        url: String,
        #[source]
        source: hyper::http::Error,
    },
    /// Connection refused or reset, DNS failure, a body cut short: the head is not (yet)
    /// reachable.
    #[error("{method} {url}: could not reach the Ray dashboard: {source}")]
    Unreachable {
        method: Method,
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{method} {url}: the Ray dashboard did not answer within {timeout:?}")]
    Timeout {
        method: Method,
        url: String,
        timeout: std::time::Duration,
    },
    /// The dashboard answered with a status the call does not expect.
    #[error("{method} {url}: the Ray dashboard answered {status}: {body}")]
    Status {
        method: Method,
        url: String,
        status: StatusCode,
        /// The end of the answer's body, trimmed (see [`body_excerpt`]).
        body: String,
    },
    /// The answer was not the JSON this client expects.
    #[error("{method} {url}: unexpected answer from the Ray dashboard: {source}; body: {body}")]
    Json {
        method: Method,
        url: String,
        body: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("encoding the body of {method} {url}: {source}")]
    Encode {
        method: Method,
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

impl DashboardError {
    /// The head could not be reached or did not answer in time: worth retrying later, and
    /// nothing can be concluded about the state of jobs or applications.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Timeout { .. })
    }

    /// The HTTP status of an unexpected answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A short name for the kind of failure, for logs and metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            Self::InvalidUrl { .. } => "InvalidUrl",
            Self::InvalidRequest { .. } => "InvalidRequest",
            Self::Unreachable { .. } => "Unreachable",
            Self::Timeout { .. } => "Timeout",
            Self::Status { .. } => "Status",
            Self::Json { .. } => "Json",
            Self::Encode { .. } => "Encode",
        }
    }
}

/// An error body made fit for a message: terminal colour codes removed (Ray's Serve errors
/// carry them), whitespace trimmed, and only the last [`BODY_EXCERPT_CHARS`] characters kept.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    let text = strip_ansi(&String::from_utf8_lossy(body));
    let text = text.trim();
    let chars = text.chars().count();
    if chars <= BODY_EXCERPT_CHARS {
        return text.to_string();
    }
    let tail: String = text.chars().skip(chars - BODY_EXCERPT_CHARS).collect();
    format!("…{tail}")
}

/// Removes `ESC [ ... <letter>` sequences.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_bodies_are_kept_whole_and_trimmed() {
        assert_eq!(
            body_excerpt(b"  Job x does not exist\n"),
            "Job x does not exist"
        );
    }

    #[test]
    fn long_bodies_keep_their_end() {
        let body = format!("{}ValueError: the reason", "x".repeat(2000));
        let excerpt = body_excerpt(body.as_bytes());
        assert!(excerpt.starts_with('…'));
        assert!(excerpt.ends_with("ValueError: the reason"));
        assert_eq!(excerpt.chars().count(), BODY_EXCERPT_CHARS + 1);
    }

    #[test]
    fn colour_codes_are_removed() {
        let body = "\u{1b}[36mray::ServeController.apply_config()\u{1b}[39m failed";
        assert_eq!(
            body_excerpt(body.as_bytes()),
            "ray::ServeController.apply_config() failed"
        );
    }

    #[test]
    fn invalid_utf8_does_not_panic() {
        assert_eq!(body_excerpt(&[0xff, b'a']), "\u{fffd}a");
    }
}
