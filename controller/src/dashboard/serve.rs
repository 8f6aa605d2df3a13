//! The Serve REST API's status document (`GET /api/serve/applications/`, Ray's
//! `ServeInstanceDetails`), reduced to what RayService needs: per application and per
//! deployment, a status and a message.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// Serve's applications by name. Missing (Serve not started) means none.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ServeDetails {
    #[serde(default)]
    pub applications: BTreeMap<String, ServeApplication>,
}

/// One application (Ray's `ApplicationDetails`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ServeApplication {
    /// `NOT_STARTED`, `DEPLOYING`, `RUNNING`, `DEPLOY_FAILED`, `UNHEALTHY` or `DELETING`.
    pub status: String,
    /// Why the application is not running; Ray sends `""` when there is nothing to say,
    /// which reads as `None` here.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub message: Option<String>,
    #[serde(default)]
    pub deployments: BTreeMap<String, ServeDeployment>,
}

/// One deployment of an application (Ray's `DeploymentDetails`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ServeDeployment {
    /// `UPDATING`, `HEALTHY`, `UNHEALTHY`, `DEPLOY_FAILED`, `UPSCALING` or `DOWNSCALING`.
    pub status: String,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub message: Option<String>,
}

fn empty_as_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn fixture(name: &str) -> ServeDetails {
        let path = format!(
            "{}/../tests/data/ray-dashboard/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        serde_json::from_str(&text).expect("captured ServeInstanceDetails decode")
    }

    #[test]
    fn a_running_application_decodes() {
        let details = fixture("serve-applications-running.json");
        assert_eq!(
            details,
            ServeDetails {
                applications: BTreeMap::from([(
                    "hello".to_string(),
                    ServeApplication {
                        status: "RUNNING".into(),
                        message: None,
                        deployments: BTreeMap::from([(
                            "Hello".to_string(),
                            ServeDeployment {
                                status: "HEALTHY".into(),
                                message: None,
                            }
                        )]),
                    }
                )]),
            }
        );
    }

    #[test]
    fn serve_not_started_has_no_applications() {
        assert_eq!(
            fixture("serve-applications-empty.json"),
            ServeDetails::default()
        );
        let bare: ServeDetails = serde_json::from_str("{}").expect("decodes");
        assert!(bare.applications.is_empty());
    }

    #[test]
    fn a_failed_application_keeps_its_message() {
        let details = fixture("serve-applications-deploy-failed.json");
        let app = &details.applications["broken"];
        assert_eq!(app.status, "DEPLOY_FAILED");
        assert!(
            app.message
                .as_deref()
                .is_some_and(|m| m.contains("ModuleNotFoundError"))
        );
    }
}
