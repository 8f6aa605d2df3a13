//! [`DashboardClient`]: one method per dashboard call the controllers make.

use std::fmt;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::{DashboardError, body_excerpt};
use super::jobs::{JobInfo, JobSubmission, SubmitOutcome, is_already_exists};
use super::serve::ServeDetails;

/// The header Ray reads a token from when token authentication is on
/// (`RAY_AUTH_MODE=token`); Ray also accepts `authorization`, which proxies tend to take.
const RAY_AUTHORIZATION: &str = "x-ray-authorization";
/// Idle connections are dropped before the dashboard's aiohttp server (75 s keep-alive) drops
/// them, so a request is not sent on a connection the server is closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read; Serve's status document grows with applications and replicas.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A client for one Ray head's dashboard. Cheap to clone (the connection pool is shared).
///
/// Connections are driven by tasks on the tokio runtime that made them: use a client from
/// one runtime.
#[derive(Clone)]
pub struct DashboardClient {
    base_url: String,
    http: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    auth_token: Option<String>,
}

impl fmt::Debug for DashboardClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardClient")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A status and a body, read in full.
struct Answer {
    method: Method,
    url: String,
    status: StatusCode,
    body: Bytes,
}

impl Answer {
    fn json<T: DeserializeOwned>(self) -> Result<T, DashboardError> {
        serde_json::from_slice(&self.body).map_err(|source| DashboardError::Json {
            body: body_excerpt(&self.body),
            method: self.method,
            url: self.url,
            source,
        })
    }

    fn unexpected(self) -> DashboardError {
        DashboardError::Status {
            body: body_excerpt(&self.body),
            method: self.method,
            url: self.url,
            status: self.status,
        }
    }
}

impl DashboardClient {
    /// A client for the dashboard at `base_url` (`http://<head>:8265`; a trailing `/` is
    /// ignored). Each request, body included, must finish within `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, DashboardError> {
        let base_url = base_url.trim_end_matches('/');
        let invalid = |reason: &str| DashboardError::InvalidUrl {
            url: base_url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = base_url
            .parse()
            .map_err(
                |e: hyper::http::uri::InvalidUri| DashboardError::InvalidUrl {
                    url: base_url.to_string(),
                    reason: e.to_string(),
                },
            )?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid(
                "expected http://<host>:<port>; the dashboard serves plain HTTP",
            ));
        }
        if uri.authority().is_none() {
            return Err(invalid("no host"));
        }
        if uri.query().is_some() {
            return Err(invalid("a base URL has no query"));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(Self {
            base_url: base_url.to_string(),
            http,
            timeout,
            auth_token: None,
        })
    }

    /// Sends `x-ray-authorization: Bearer <token>` with every request, for a head started
    /// with token authentication.
    pub fn with_auth_token(mut self, token: String) -> Self {
        self.auth_token = Some(token);
        self
    }

    /// The dashboard's URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET /api/gcs_healthz`: whether the dashboard can reach the GCS. Ray answers `200`
    /// `success` when it can and `503` when it cannot (`Ok(false)`).
    pub async fn gcs_healthy(&self) -> Result<bool, DashboardError> {
        let answer = self.send(Method::GET, "/api/gcs_healthz", None).await?;
        match answer.status {
            StatusCode::OK => Ok(answer.body.trim_ascii() == b"success"),
            StatusCode::SERVICE_UNAVAILABLE => Ok(false),
            _ => Err(answer.unexpected()),
        }
    }

    /// `GET /api/jobs/<submission_id>`; `None` when Ray knows no such job (`404`).
    pub async fn job_info(&self, submission_id: &str) -> Result<Option<JobInfo>, DashboardError> {
        let path = format!("/api/jobs/{}", path_segment(submission_id));
        let answer = self.send(Method::GET, &path, None).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => answer.json().map(Some),
            _ => Err(answer.unexpected()),
        }
    }

    /// `POST /api/jobs/`. A submission id that is taken is [`SubmitOutcome::AlreadyExists`]:
    /// Ray keeps submission ids unique, so a retried submission is recognised, not repeated.
    pub async fn submit_job(&self, job: &JobSubmission) -> Result<SubmitOutcome, DashboardError> {
        let path = "/api/jobs/";
        let body = self.encode(Method::POST, path, job)?;
        let answer = self.send(Method::POST, path, Some(body)).await?;
        if answer.status.is_success() {
            return Ok(SubmitOutcome::Submitted);
        }
        if answer.status.is_server_error() || answer.status.is_client_error() {
            let text = String::from_utf8_lossy(&answer.body);
            if is_already_exists(&text, &job.submission_id) {
                return Ok(SubmitOutcome::AlreadyExists);
            }
        }
        Err(answer.unexpected())
    }

    /// `POST /api/jobs/<submission_id>/stop`: whether Ray stopped the job. `false` when it had
    /// already ended, or Ray knows no such job (`404`).
    pub async fn stop_job(&self, submission_id: &str) -> Result<bool, DashboardError> {
        #[derive(Deserialize)]
        struct Stopped {
            stopped: bool,
        }
        let path = format!("/api/jobs/{}/stop", path_segment(submission_id));
        let answer = self.send(Method::POST, &path, None).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(false),
            status if status.is_success() => answer.json::<Stopped>().map(|s| s.stopped),
            _ => Err(answer.unexpected()),
        }
    }

    /// `DELETE /api/jobs/<submission_id>`: forgets a job that has ended, with its logs. A job
    /// Ray does not know (`404`) is gone already. Ray refuses (`500`) to delete a job that
    /// has not ended; stop it first.
    pub async fn delete_job(&self, submission_id: &str) -> Result<(), DashboardError> {
        let path = format!("/api/jobs/{}", path_segment(submission_id));
        let answer = self.send(Method::DELETE, &path, None).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(()),
            status if status.is_success() => Ok(()),
            _ => Err(answer.unexpected()),
        }
    }

    /// `GET /api/serve/applications/`: the status of Serve's applications and deployments.
    pub async fn serve_details(&self) -> Result<ServeDetails, DashboardError> {
        let answer = self
            .send(Method::GET, "/api/serve/applications/", None)
            .await?;
        if answer.status.is_success() {
            answer.json()
        } else {
            Err(answer.unexpected())
        }
    }

    /// `PUT /api/serve/applications/`: declares Serve's whole configuration (the RayService's
    /// `serveConfigV2`, converted from YAML to JSON). Ray accepts it and deploys in the
    /// background; [`Self::serve_details`] tells how that goes. Ray answers `400` when the
    /// document is invalid or an application cannot even be built.
    pub async fn put_serve_config(&self, config: &serde_json::Value) -> Result<(), DashboardError> {
        let path = "/api/serve/applications/";
        let body = self.encode(Method::PUT, path, config)?;
        let answer = self.send(Method::PUT, path, Some(body)).await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(answer.unexpected())
        }
    }

    fn encode<T: serde::Serialize>(
        &self,
        method: Method,
        path: &str,
        value: &T,
    ) -> Result<Vec<u8>, DashboardError> {
        serde_json::to_vec(value).map_err(|source| DashboardError::Encode {
            method,
            url: format!("{}{path}", self.base_url),
            source,
        })
    }

    /// Sends one request and reads the whole answer, all within the client's timeout.
    async fn send(
        &self,
        method: Method,
        path: &str,
        json_body: Option<Vec<u8>>,
    ) -> Result<Answer, DashboardError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if json_body.is_some() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(token) = &self.auth_token {
            request = request.header(RAY_AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(json_body.unwrap_or_default())))
            .map_err(|source| DashboardError::InvalidRequest {
                method: method.clone(),
                url: url.clone(),
                source,
            })?;
        let unreachable =
            |source: Box<dyn std::error::Error + Send + Sync>| DashboardError::Unreachable {
                method: method.clone(),
                url: url.clone(),
                source,
            };
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| unreachable(Box::new(e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(unreachable)?
                .to_bytes();
            Ok::<_, DashboardError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| DashboardError::Timeout {
                method: method.clone(),
                url: url.clone(),
                timeout: self.timeout,
            })??;
        tracing::trace!(%method, %url, %status, "Ray dashboard answered");
        Ok(Answer {
            method,
            url,
            status,
            body,
        })
    }
}

/// `value` percent-encoded for use as one path segment: submission ids are chosen by users.
fn path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn base_urls_are_checked_and_trimmed() {
        let timeout = Duration::from_secs(2);
        let client = DashboardClient::new("http://127.0.0.1:8265/", timeout).expect("valid");
        assert_eq!(client.base_url(), "http://127.0.0.1:8265");
        for bad in [
            "https://127.0.0.1:8265",
            "127.0.0.1:8265",
            "http://",
            "http://h:1/?q",
            "not a url",
        ] {
            assert!(
                matches!(
                    DashboardClient::new(bad, timeout),
                    Err(DashboardError::InvalidUrl { .. })
                ),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn the_token_is_not_printed() {
        let client = DashboardClient::new("http://127.0.0.1:8265", Duration::from_secs(2))
            .expect("valid")
            .with_auth_token("s3cr3t".into());
        assert!(!format!("{client:?}").contains("s3cr3t"));
    }

    #[test]
    fn submission_ids_are_escaped_in_paths() {
        assert_eq!(path_segment("rayjob-a1.b_c~"), "rayjob-a1.b_c~");
        assert_eq!(path_segment("a/b c?"), "a%2Fb%20c%3F");
        assert_eq!(path_segment("é"), "%C3%A9");
    }

    /// A server that accepts connections and reads requests but never answers.
    fn silent_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept() {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                held.push(stream);
            }
        });
        url
    }

    #[tokio::test]
    async fn a_silent_dashboard_times_out() {
        let url = silent_server();
        let client = DashboardClient::new(&url, Duration::from_millis(200)).expect("valid");
        let started = std::time::Instant::now();
        let error = client
            .job_info("x")
            .await
            .expect_err("no answer is an error");
        assert!(matches!(error, DashboardError::Timeout { .. }), "{error}");
        assert!(error.is_unreachable());
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        drop(listener);
        let client = DashboardClient::new(&url, Duration::from_secs(2)).expect("valid");
        let error = client.gcs_healthy().await.expect_err("nothing listens");
        assert!(
            matches!(error, DashboardError::Unreachable { .. }),
            "{error}"
        );
    }

    /// Answers one request with `answer` (a whole HTTP/1.1 response) and hands back the
    /// request's head.
    fn one_answer(answer: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = stream.read(&mut buf).expect("read");
                request.extend_from_slice(&buf[..n]);
                if n == 0 || request.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            stream.write_all(answer.as_bytes()).expect("write");
            String::from_utf8_lossy(&request).into_owned()
        });
        (url, server)
    }

    #[tokio::test]
    async fn the_token_is_sent_in_ray_s_header() {
        let (url, server) =
            one_answer("HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nsuccess");
        let client = DashboardClient::new(&url, Duration::from_secs(2))
            .expect("valid")
            .with_auth_token("s3cr3t".into());
        assert!(client.gcs_healthy().await.expect("answers"));
        let request = server.join().expect("server thread");
        assert!(
            request
                .to_ascii_lowercase()
                .contains("x-ray-authorization: bearer s3cr3t\r\n"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn an_unexpected_status_carries_the_end_of_the_body() {
        let (url, server) = one_answer(
            "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 12\r\nconnection: close\r\n\r\nproxy error\n",
        );
        let client = DashboardClient::new(&url, Duration::from_secs(2)).expect("valid");
        let error = client.serve_details().await.expect_err("502 is an error");
        assert_eq!(error.status(), Some(StatusCode::BAD_GATEWAY));
        assert!(error.to_string().ends_with(": proxy error"), "{error}");
        server.join().expect("server thread");
    }
}
