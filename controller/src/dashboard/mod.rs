//! A client for the Ray dashboard's HTTP API on the head (port 8265): the Jobs API, which
//! RayJob drives in HTTP submission mode, and the Serve REST API, which RayService drives.
//!
//! Plain HTTP/1.1, as the dashboard serves it. Every request has a deadline (KubeRay uses 2 s)
//! so a hung head cannot stall a reconcile. Answers were checked against a real Ray 2.60.0 head;
//! `tests/data/ray-dashboard/` holds captured bodies and `tests/e2e/tests/ray_dashboard.rs`
//! drives this client against a head started from PyPI's `ray`.

mod client;
mod error;
mod jobs;
mod serve;

pub use client::DashboardClient;
pub use error::DashboardError;
pub use jobs::{JobInfo, JobStatus, JobSubmission, SubmitOutcome};
pub use serve::{ServeApplication, ServeDeployment, ServeDetails};
