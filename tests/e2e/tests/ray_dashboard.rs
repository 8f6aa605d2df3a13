//! The Ray dashboard client against a real Ray head (PyPI's `ray` 2.60, started on loopback by
//! `RayHead`): jobs run to SUCCEEDED or FAILED, a running job stops, a reused submission id is
//! recognised, and Serve deploys an application whose proxy answers.
//!
//! One head serves every test of this binary (it takes ~12 s to start); it is stopped when the
//! process exits. Submission ids are unique per test.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use raygate_controller::dashboard::{
    DashboardClient, JobInfo, JobStatus, JobSubmission, ServeDetails, SubmitOutcome,
};
use raygate_e2e::RayHead;
use raygate_e2e::ray_head::{free_loopback_port, loopback_http_get};
use serde_json::json;

/// Per request. KubeRay uses 2 s; a head sharing two cores with a build can be slower to
/// answer a submission, and these tests are about answers, not latency.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// For `PUT /api/serve/applications/`: Ray answers only once Serve's controller runs, and the
/// first PUT on a head starts it (5 s on an idle machine, more than 10 s on a busy one).
const SERVE_PUT_TIMEOUT: Duration = Duration::from_secs(120);
/// A trivial job goes PENDING → RUNNING → done in a few seconds.
const JOB_TIMEOUT: Duration = Duration::from_secs(90);
/// Serve starts its controller and proxy on the first deploy.
const SERVE_TIMEOUT: Duration = Duration::from_secs(180);

fn head() -> &'static RayHead {
    RayHead::shared().expect("a Ray head starts (tests/tools/install-ray.sh, RAYGATE_RAY_BIN)")
}

fn client(head: &RayHead) -> DashboardClient {
    DashboardClient::new(&head.dashboard_url(), REQUEST_TIMEOUT).expect("a valid dashboard URL")
}

/// `<name>-<pid>`: unique on this head, readable in Ray's logs.
fn submission_id(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

fn python_job(head: &RayHead, id: &str, code: &str) -> JobSubmission {
    JobSubmission {
        entrypoint: format!("{} -c '{code}'", head.python().display()),
        submission_id: id.to_string(),
        ..Default::default()
    }
}

async fn submit(client: &DashboardClient, job: &JobSubmission) {
    let outcome = client.submit_job(job).await.expect("Ray accepts the job");
    assert_eq!(outcome, SubmitOutcome::Submitted, "{}", job.submission_id);
}

/// Polls the job until `done` holds; panics with the last report after `JOB_TIMEOUT`.
async fn wait_for_job(
    client: &DashboardClient,
    id: &str,
    what: &str,
    done: impl Fn(&JobInfo) -> bool,
) -> JobInfo {
    let deadline = Instant::now() + JOB_TIMEOUT;
    loop {
        let last = match client.job_info(id).await {
            Ok(Some(info)) if done(&info) => return info,
            Ok(info) => format!("{info:#?}"),
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "job {id}: timed out after {JOB_TIMEOUT:?} waiting for {what}; last report: {last}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_for_serve(
    client: &DashboardClient,
    what: &str,
    done: impl Fn(&ServeDetails) -> bool,
) -> ServeDetails {
    let deadline = Instant::now() + SERVE_TIMEOUT;
    loop {
        let last = match client.serve_details().await {
            Ok(details) if done(&details) => return details,
            Ok(details) => format!("{details:#?}"),
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {SERVE_TIMEOUT:?} waiting for {what}; last details: {last}\n{}",
            head().log_tails()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn the_dashboard_reports_the_gcs_healthy() {
    let head = head();
    assert!(
        client(head)
            .gcs_healthy()
            .await
            .expect("the dashboard answers")
    );
}

#[tokio::test]
async fn a_job_that_exits_0_succeeds() {
    let head = head();
    let client = client(head);
    let id = submission_id("succeeds");
    let job = JobSubmission {
        metadata: Some(BTreeMap::from([(
            "ray.io/job-name".to_string(),
            "rayjob-sample".to_string(),
        )])),
        ..python_job(head, &id, r#"print("hello from a raygate test")"#)
    };
    submit(&client, &job).await;

    let info = wait_for_job(&client, &id, "an end", |i| i.status.is_terminal()).await;
    assert_eq!(info.status, JobStatus::Succeeded, "{info:#?}");
    assert_eq!(info.submission_id.as_deref(), Some(id.as_str()));
    assert_eq!(info.entrypoint.as_deref(), Some(job.entrypoint.as_str()));
    assert_eq!(info.metadata, job.metadata);
    assert_eq!(info.driver_exit_code, Some(0));
    assert_eq!(info.error_type, None);
    let (start, end) = (
        info.start_time.expect("a start time"),
        info.end_time.expect("an end time"),
    );
    assert!(start <= end, "start {start} after end {end}");
    assert!(
        start > 1_600_000_000_000,
        "start time {start} is not in milliseconds since the epoch"
    );
}

/// Ray's token authentication as raygate sets it up in a cluster's pods (`RAY_AUTH_MODE=token`,
/// `RAY_AUTH_TOKEN` in every Ray process): the dashboard refuses raygate's client without the
/// token, and runs a job submitted with it. A head of its own, stopped at the end.
#[tokio::test]
async fn a_token_authenticated_head_serves_only_requests_carrying_the_token() {
    let token = "raygate-e2e-0123456789abcdef0123456789abcdef";
    let head = RayHead::start_with_env(&[("RAY_AUTH_MODE", "token"), ("RAY_AUTH_TOKEN", token)])
        .expect("a Ray head with token authentication starts");
    let id = submission_id("token-auth");
    let job = python_job(&head, &id, r#"print("hello with a token")"#);

    let anonymous = client(&head).submit_job(&job).await;
    match anonymous {
        Err(raygate_controller::dashboard::DashboardError::Status { status, .. }) => {
            assert!(
                status.as_u16() == 401 || status.as_u16() == 403,
                "without the token Ray answered {status}"
            );
        }
        other => panic!("a submission without the token must be refused, got {other:?}"),
    }

    let wrong = client(&head)
        .with_auth_token("not-the-token".to_string())
        .job_info(&id)
        .await;
    assert!(wrong.is_err(), "a wrong token must be refused: {wrong:?}");

    let authenticated = client(&head).with_auth_token(token.to_string());
    submit(&authenticated, &job).await;
    let info = wait_for_job(&authenticated, &id, "an end", |i| i.status.is_terminal()).await;
    assert_eq!(info.status, JobStatus::Succeeded, "{info:#?}");
}

#[tokio::test]
async fn a_job_that_exits_1_fails() {
    let head = head();
    let client = client(head);
    let id = submission_id("fails");
    submit(&client, &python_job(head, &id, "import sys; sys.exit(1)")).await;

    let info = wait_for_job(&client, &id, "an end", |i| i.status.is_terminal()).await;
    assert_eq!(info.status, JobStatus::Failed, "{info:#?}");
    assert_eq!(info.driver_exit_code, Some(1));
    assert_eq!(
        info.error_type.as_deref(),
        Some("JOB_ENTRYPOINT_COMMAND_ERROR")
    );
    let message = info.message.unwrap_or_default();
    assert!(message.contains("exit code 1"), "{message}");
    assert!(info.end_time.is_some());
}

#[tokio::test]
async fn a_running_job_can_be_stopped_then_deleted() {
    let head = head();
    let client = client(head);
    let id = submission_id("stopped");
    submit(
        &client,
        &python_job(head, &id, "import time; time.sleep(600)"),
    )
    .await;
    wait_for_job(&client, &id, "RUNNING", |i| i.status == JobStatus::Running).await;

    // Ray refuses to forget a job that has not ended.
    let refused = client
        .delete_job(&id)
        .await
        .expect_err("a running job stays");
    assert!(
        refused.to_string().contains("non-terminal state"),
        "{refused}"
    );

    assert!(client.stop_job(&id).await.expect("stop answers"), "stopped");
    let info = wait_for_job(&client, &id, "STOPPED", |i| i.status.is_terminal()).await;
    assert_eq!(info.status, JobStatus::Stopped, "{info:#?}");
    assert!(info.end_time.is_some());
    assert_eq!(info.driver_exit_code, None);
    assert!(
        !client.stop_job(&id).await.expect("stop answers"),
        "a stopped job is not stopped again"
    );

    client
        .delete_job(&id)
        .await
        .expect("an ended job is deleted");
    assert_eq!(client.job_info(&id).await.expect("answers"), None);
    client
        .delete_job(&id)
        .await
        .expect("deleting a deleted job is fine");
}

#[tokio::test]
async fn a_reused_submission_id_already_exists() {
    let head = head();
    let client = client(head);
    let id = submission_id("twice");
    let job = python_job(head, &id, "print(1)");
    submit(&client, &job).await;
    assert_eq!(
        client.submit_job(&job).await.expect("answers"),
        SubmitOutcome::AlreadyExists
    );
    // Still so once it has ended, and with another entrypoint: the id is what counts.
    wait_for_job(&client, &id, "an end", |i| i.status.is_terminal()).await;
    let other = python_job(head, &id, "print(2)");
    assert_eq!(
        client.submit_job(&other).await.expect("answers"),
        SubmitOutcome::AlreadyExists
    );
}

#[tokio::test]
async fn an_unknown_job_is_absent() {
    let client = client(head());
    let id = submission_id("never-submitted");
    assert_eq!(client.job_info(&id).await.expect("answers"), None);
    assert!(!client.stop_job(&id).await.expect("answers"));
    client.delete_job(&id).await.expect("nothing to delete");
}

#[tokio::test]
async fn a_serve_application_deploys_and_answers() {
    let head = head();
    let client = DashboardClient::new(&head.dashboard_url(), SERVE_PUT_TIMEOUT)
        .expect("a valid dashboard URL");
    let app_dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(
        app_dir.path().join("raygate_hello.py"),
        "from ray import serve\n\n\n\
         @serve.deployment\n\
         class Hello:\n    \
             def __call__(self, request):\n        \
                 return \"hello from raygate\"\n\n\n\
         app = Hello.bind()\n",
    )
    .expect("write the app module");
    let port = free_loopback_port().expect("a free port");
    // What a RayService's serveConfigV2 holds, as JSON. The module is found through
    // PYTHONPATH (a `working_dir` must be a URI of an archive); the replica takes a tenth of
    // the head's only CPU so jobs of the other tests still fit.
    let hello = json!({
        "name": "hello",
        "route_prefix": "/",
        "import_path": "raygate_hello:app",
        "runtime_env": {"env_vars": {"PYTHONPATH": app_dir.path()}},
        "deployments": [{
            "name": "Hello",
            "num_replicas": 1,
            "ray_actor_options": {"num_cpus": 0.1},
        }],
    });
    let config = json!({
        "http_options": {"host": "127.0.0.1", "port": port},
        "applications": [hello],
    });
    let started = Instant::now();
    client
        .put_serve_config(&config)
        .await
        .expect("Ray accepts the Serve config");
    eprintln!("the first PUT took {:?}", started.elapsed());

    let details = wait_for_serve(&client, "hello RUNNING", |d| {
        d.applications
            .get("hello")
            .is_some_and(|a| a.status == "RUNNING")
    })
    .await;
    let app = &details.applications["hello"];
    assert_eq!(app.message, None);
    assert_eq!(
        app.deployments
            .iter()
            .map(|(name, d)| (name.as_str(), d.status.as_str()))
            .collect::<Vec<_>>(),
        [("Hello", "HEALTHY")]
    );

    // The proxy on 127.0.0.1 routes to the application.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match loopback_http_get(port, "/") {
            Ok((200, body)) => {
                assert_eq!(body, "hello from raygate");
                break;
            }
            other => assert!(
                Instant::now() < deadline,
                "the Serve proxy on 127.0.0.1:{port} did not answer: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Nothing of the head, Serve's proxy and replicas included, listens beyond loopback.
    let listeners = head.listeners().expect("read /proc");
    for port in [head.dashboard_port(), port] {
        assert!(
            listeners.iter().any(|l| l.address.port() == port),
            "the head's listeners lack port {port}: {listeners:?}"
        );
    }
    let exposed: Vec<_> = listeners.iter().filter(|l| !l.is_loopback()).collect();
    assert!(exposed.is_empty(), "listening beyond loopback: {exposed:?}");

    // An application that cannot be imported: Ray takes the config, then reports why.
    let broken = json!({
        "name": "broken",
        "route_prefix": "/broken",
        "import_path": "raygate_no_such_module:app",
    });
    let config = json!({
        "http_options": {"host": "127.0.0.1", "port": port},
        "applications": [hello, broken],
    });
    client
        .put_serve_config(&config)
        .await
        .expect("Ray accepts the Serve config");
    let details = wait_for_serve(&client, "broken DEPLOY_FAILED", |d| {
        d.applications
            .get("broken")
            .is_some_and(|a| a.status == "DEPLOY_FAILED")
    })
    .await;
    let message = details.applications["broken"]
        .message
        .clone()
        .unwrap_or_default();
    assert!(
        message.contains("No module named 'raygate_no_such_module'"),
        "{message}"
    );
    assert_eq!(details.applications["hello"].status, "RUNNING");

    // A document Serve cannot read is refused with the reason.
    let refused = client
        .put_serve_config(&json!({"applications": "not a list"}))
        .await
        .expect_err("an invalid config is refused");
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(400), "{refused}");
}
