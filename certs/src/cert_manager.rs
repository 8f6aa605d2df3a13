//! cert-manager mode: cert-manager issues and renews the serving certificate, its cainjector
//! fills the `caBundle` of raygate's webhook configurations, and raygate serves whatever
//! cert-manager writes to the Secret, reloading when it changes.
//!
//! raygate declares (server-side apply, so every replica applies the same objects):
//! - with no issuer given, a CA chain: a self-signed `Issuer`, a CA `Certificate` it signs,
//!   and a CA `Issuer` that signs the serving certificate. The serving certificate is then
//!   renewed under the same CA, so the injected `caBundle` does not change and no API server
//!   sees an unknown certificate during a renewal. (A serving certificate signed by a
//!   self-signed Issuer directly is its own CA: each renewal would replace the trusted
//!   certificate, and requests between raygate's reload and the cainjector's update would
//!   fail.)
//! - the serving `Certificate` for the Service's DNS names (and any IPs), in `--secret-name`;
//! - the `cert-manager.io/inject-ca-from: <ns>/<certificate>` annotation on its webhook
//!   configurations, for the cainjector.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde_json::{Value, json};

use crate::bundle::{CA_CRT, TLS_CRT, TLS_KEY, keyed};
use crate::issue::{KeyedCertificate, ServingNames};
use crate::manager::{DisplayChain, WebhookConfigNames};
use crate::parsed::{ParsedCertificate, all_from_pem};
use crate::serving_dir::ServingDir;
use crate::status::StatusCertificates;

/// Field manager of the objects raygate declares in cert-manager mode.
pub const FIELD_MANAGER: &str = "raygate-cert-manager";
/// The annotation cert-manager's cainjector reads: inject the CA of this Certificate's Secret.
pub const INJECT_CA_FROM: &str = "cert-manager.io/inject-ca-from";
/// cert-manager marks the Secrets it writes with the Certificate's name.
pub const CERTIFICATE_NAME_ANNOTATION: &str = "cert-manager.io/certificate-name";
const GROUP: &str = "cert-manager.io";
const VERSION: &str = "cert-manager.io/v1";

#[derive(Debug, thiserror::Error)]
pub enum CertManagerError {
    #[error(
        "cert-manager is not installed: the API server does not serve {missing} \
         (install cert-manager and its CRDs, or use --cert-mode self-managed)"
    )]
    CrdsMissing { missing: String },
    #[error("asking the API server whether it serves cert-manager.io/v1")]
    Discovery { source: kube::Error },
    #[error("applying {kind} {namespace}/{name}")]
    Apply {
        kind: &'static str,
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("annotating {kind} {name} with {INJECT_CA_FROM}")]
    Annotate {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("reading Secret {namespace}/{name}")]
    ReadSecret {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error(
        "cert-manager did not write Secret {namespace}/{secret} within {waited:?}; \
         Certificate {namespace}/{certificate} says: {conditions}"
    )]
    NotIssued {
        namespace: String,
        secret: String,
        certificate: String,
        waited: Duration,
        conditions: String,
    },
    #[error(transparent)]
    Certificates(#[from] crate::Error),
}

impl CertManagerError {
    /// A short name for metric labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            CertManagerError::CrdsMissing { .. } => "crds_missing",
            CertManagerError::Discovery { .. } => "discovery",
            CertManagerError::Apply { .. } => "apply",
            CertManagerError::Annotate { .. } => "annotate",
            CertManagerError::ReadSecret { .. } => "read_secret",
            CertManagerError::NotIssued { .. } => "not_issued",
            CertManagerError::Certificates(_) => "certificates",
        }
    }
}

/// An existing Issuer or ClusterIssuer to sign the serving certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerRef {
    pub name: String,
    /// `Issuer` or `ClusterIssuer` (or an external issuer's kind).
    pub kind: String,
    pub group: String,
}

#[derive(Debug, Clone)]
pub struct CertManagerConfig {
    pub namespace: String,
    /// The serving Certificate; the annotation names it.
    pub certificate_name: String,
    /// Where cert-manager writes the serving pair.
    pub secret_name: String,
    /// `None`: raygate declares its own self-signed CA chain.
    pub issuer: Option<IssuerRef>,
    pub names: ServingNames,
    /// The serving certificate's `duration`; renewed at 2/3 of it.
    pub duration: Duration,
    /// The CA certificate's `duration` (own CA chain only).
    pub ca_duration: Duration,
    pub webhook_configs: WebhookConfigNames,
    /// Where the served `tls.crt`/`tls.key` are written.
    pub dir: PathBuf,
}

/// The serving pair cert-manager wrote, with the CAs of its `ca.crt`.
#[derive(Debug, Clone)]
pub struct ServedPair {
    pub serving: KeyedCertificate,
    pub ca_pem: String,
    pub cas: Vec<ParsedCertificate>,
}

impl ServedPair {
    pub fn status_certificates(&self) -> StatusCertificates {
        let mut cas = self.cas.iter().cloned();
        StatusCertificates {
            serving: self.serving.parsed.clone(),
            signing_ca: cas.next(),
            next_ca: None,
            retired_cas: cas.collect(),
        }
    }
}

/// Whether cert-manager wrote this Secret.
pub fn is_cert_manager_secret(secret: &Secret) -> bool {
    secret
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(CERTIFICATE_NAME_ANNOTATION))
}

/// The serving pair of a Secret cert-manager wrote (`tls.crt`, `tls.key`, `ca.crt`).
pub fn served_pair(secret: &Secret) -> Result<ServedPair, crate::Error> {
    let text = |key: &str| -> Result<String, crate::Error> {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .filter(|bytes| !bytes.0.is_empty())
            .ok_or_else(|| crate::Error::SecretMissingKey {
                key: key.to_owned(),
            })?;
        String::from_utf8(bytes.0.clone()).map_err(|_| crate::Error::InvalidCertificate {
            what: key.to_owned(),
            reason: "not UTF-8 PEM".to_owned(),
        })
    };
    let serving = keyed(text(TLS_CRT)?, text(TLS_KEY)?, TLS_CRT)?;
    // An issuer that shares no CA leaves ca.crt out; then there is nothing to list.
    let ca_pem = text(CA_CRT).unwrap_or_default();
    let cas = if ca_pem.is_empty() {
        Vec::new()
    } else {
        all_from_pem(&ca_pem, CA_CRT)?
    };
    Ok(ServedPair {
        serving,
        ca_pem,
        cas,
    })
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", kind), plural)
}

/// Whether the API server serves the cert-manager kinds raygate needs; the error names each
/// that is missing.
pub async fn check_crds(
    client: &Client,
    issuer: Option<&IssuerRef>,
) -> Result<(), CertManagerError> {
    let mut needed = vec!["certificates"];
    match issuer {
        None => needed.push("issuers"),
        Some(issuer) if issuer.group == GROUP && issuer.kind == "ClusterIssuer" => {
            needed.push("clusterissuers")
        }
        Some(issuer) if issuer.group == GROUP => needed.push("issuers"),
        Some(_) => {}
    }
    let served: Vec<String> = match client.list_api_group_resources(VERSION).await {
        Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
        // A group nobody serves answers a plain-text 404, not a NotFound Status.
        Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
        Err(source) => return Err(CertManagerError::Discovery { source }),
    };
    let missing: Vec<String> = needed
        .iter()
        .filter(|plural| !served.iter().any(|name| name == *plural))
        .map(|plural| format!("{plural}.{GROUP}"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CertManagerError::CrdsMissing {
            missing: format!("{VERSION} ({} CRD missing)", missing.join(", ")),
        })
    }
}

/// cert-manager mode for one webhook replica.
pub struct CertManagerSource {
    client: Client,
    config: CertManagerConfig,
    serving_dir: ServingDir,
}

impl std::fmt::Debug for CertManagerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertManagerSource")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CertManagerSource {
    pub fn new(client: Client, config: CertManagerConfig) -> Self {
        Self {
            client,
            serving_dir: ServingDir::new(config.dir.clone()),
            config,
        }
    }

    pub fn cert_path(&self) -> PathBuf {
        self.serving_dir.cert_path()
    }

    pub fn key_path(&self) -> PathBuf {
        self.serving_dir.key_path()
    }

    /// `<namespace>/<certificate>`, the value of the `inject-ca-from` annotation.
    pub fn inject_ca_from(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.certificate_name)
    }

    /// Checks the CRDs, declares the issuers and the Certificate, and annotates the webhook
    /// configurations that exist.
    pub async fn declare(&self) -> Result<(), CertManagerError> {
        check_crds(&self.client, self.config.issuer.as_ref()).await?;
        let issuer_ref = match &self.config.issuer {
            Some(issuer) => {
                json!({"name": issuer.name, "kind": issuer.kind, "group": issuer.group})
            }
            None => {
                let (self_signed, ca) = self.own_issuer_names();
                self.apply("Issuer", "issuers", &self_signed, json!({"selfSigned": {}}))
                    .await?;
                let ca_secret = format!("{}-ca", self.config.secret_name);
                self.apply(
                    "Certificate",
                    "certificates",
                    &ca,
                    json!({
                        "isCA": true,
                        "commonName": format!("{} webhook CA", self.config.certificate_name),
                        "secretName": ca_secret,
                        "duration": go_duration(self.config.ca_duration),
                        "renewBefore": go_duration(self.config.ca_duration / 3),
                        "privateKey": {"algorithm": "ECDSA", "size": 256, "encoding": "PKCS8"},
                        "issuerRef": {"name": self_signed, "kind": "Issuer", "group": GROUP},
                    }),
                )
                .await?;
                self.apply(
                    "Issuer",
                    "issuers",
                    &ca,
                    json!({"ca": {"secretName": ca_secret}}),
                )
                .await?;
                json!({"name": ca, "kind": "Issuer", "group": GROUP})
            }
        };
        let names = &self.config.names;
        let mut spec = json!({
            "secretName": self.config.secret_name,
            "commonName": names.dns.first().cloned().unwrap_or_else(|| "raygate".to_owned()),
            "dnsNames": names.dns,
            "duration": go_duration(self.config.duration),
            "renewBefore": go_duration(self.config.duration / 3),
            "usages": ["digital signature", "key encipherment", "server auth"],
            // PKCS#8: the encoding every TLS stack reads; a new key on each renewal.
            "privateKey": {
                "algorithm": "ECDSA",
                "size": 256,
                "encoding": "PKCS8",
                "rotationPolicy": "Always",
            },
            "issuerRef": issuer_ref,
        });
        if !names.ips.is_empty() {
            spec["ipAddresses"] = json!(
                names
                    .ips
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            );
        }
        self.apply(
            "Certificate",
            "certificates",
            &self.config.certificate_name,
            spec,
        )
        .await?;
        self.annotate_webhook_configs().await
    }

    /// The self-signed Issuer and the CA Certificate/Issuer of raygate's own chain.
    fn own_issuer_names(&self) -> (String, String) {
        let base = &self.config.certificate_name;
        (format!("{base}-selfsigned"), format!("{base}-ca"))
    }

    async fn apply(
        &self,
        kind: &'static str,
        plural: &str,
        name: &str,
        spec: Value,
    ) -> Result<(), CertManagerError> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.config.namespace,
            &resource(kind, plural),
        );
        let object = json!({
            "apiVersion": VERSION,
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": self.config.namespace,
                "labels": {"app.kubernetes.io/managed-by": "raygate"},
            },
            "spec": spec,
        });
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(|source| CertManagerError::Apply {
            kind,
            namespace: self.config.namespace.clone(),
            name: name.to_owned(),
            source,
        })?;
        tracing::info!(kind, name, namespace = %self.config.namespace, "declared for cert-manager");
        Ok(())
    }

    async fn annotate_webhook_configs(&self) -> Result<(), CertManagerError> {
        let names = &self.config.webhook_configs;
        if let Some(name) = &names.mutating {
            let api: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
            self.annotate(&api, "MutatingWebhookConfiguration", name)
                .await?;
        }
        if let Some(name) = &names.validating {
            let api: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
            self.annotate(&api, "ValidatingWebhookConfiguration", name)
                .await?;
        }
        Ok(())
    }

    /// Adds the annotation to one configuration, if it exists and lacks it.
    async fn annotate<K>(
        &self,
        api: &Api<K>,
        kind: &'static str,
        name: &str,
    ) -> Result<(), CertManagerError>
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + serde::Serialize,
    {
        let wanted = self.inject_ca_from();
        let error = |source| CertManagerError::Annotate {
            kind,
            name: name.to_owned(),
            source,
        };
        let Some(config) = api.get_opt(name).await.map_err(error)? else {
            tracing::debug!(
                kind,
                name,
                "webhook configuration not found; annotated once it appears"
            );
            return Ok(());
        };
        if config
            .meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(INJECT_CA_FROM))
            == Some(&wanted)
        {
            return Ok(());
        }
        let apply = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": name, "annotations": {INJECT_CA_FROM: wanted}},
        });
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(apply),
        )
        .await
        .map_err(error)?;
        tracing::info!(kind, name, inject_ca_from = %wanted, "webhook configuration annotated for cainjector");
        Ok(())
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }

    /// Waits (up to `timeout`) until cert-manager has written the Secret, and writes its pair
    /// to the served files. Call after [`declare`](Self::declare) and before serving.
    pub async fn wait_for_secret(&self, timeout: Duration) -> Result<ServedPair, CertManagerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let secret = self
                .secrets()
                .get_opt(&self.config.secret_name)
                .await
                .map_err(|source| CertManagerError::ReadSecret {
                    namespace: self.config.namespace.clone(),
                    name: self.config.secret_name.clone(),
                    source,
                })?;
            if let Some(pair) = secret.as_ref().and_then(|s| served_pair(s).ok()) {
                self.write(&pair)?;
                return Ok(pair);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CertManagerError::NotIssued {
                    namespace: self.config.namespace.clone(),
                    secret: self.config.secret_name.clone(),
                    certificate: self.config.certificate_name.clone(),
                    waited: timeout,
                    conditions: self.certificate_conditions().await,
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The serving Certificate's status conditions, as one line for an error message.
    async fn certificate_conditions(&self) -> String {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.config.namespace,
            &resource("Certificate", "certificates"),
        );
        match api.get_opt(&self.config.certificate_name).await {
            Ok(Some(certificate)) => conditions_line(&certificate.data["status"]["conditions"]),
            Ok(None) => "not found".to_owned(),
            Err(error) => format!("unreadable ({error})"),
        }
    }

    fn write(&self, pair: &ServedPair) -> Result<(), crate::Error> {
        if self
            .serving_dir
            .holds_files(&pair.serving.cert_pem, &pair.serving.key_pem, &pair.ca_pem)
        {
            return Ok(());
        }
        self.serving_dir.write_files(
            &pair.serving.cert_pem,
            &pair.serving.key_pem,
            &pair.ca_pem,
        )?;
        tracing::info!(
            serving_not_after = %pair.serving.parsed.not_after,
            serial = %pair.serving.parsed.fingerprint(),
            "serving the certificate cert-manager issued"
        );
        Ok(())
    }

    /// Follows the Secret (every renewal is served as soon as cert-manager writes it) and
    /// re-annotates webhook configurations that are (re)applied without the annotation.
    /// `on_reload` is called for each newly served certificate, `on_error` for each failure.
    pub async fn run(
        self: Arc<Self>,
        on_reload: impl Fn() + Send + Sync + 'static,
        on_error: impl Fn(&'static str) + Send + Sync + 'static,
    ) {
        let on_error = Arc::new(on_error);
        let mut tasks = Vec::new();
        if let Some(name) = self.config.webhook_configs.mutating.clone() {
            let api: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
            let this = self.clone();
            let on_error = on_error.clone();
            tasks.push(tokio::spawn(async move {
                this.follow_config(api, "MutatingWebhookConfiguration", name, &*on_error)
                    .await
            }));
        }
        if let Some(name) = self.config.webhook_configs.validating.clone() {
            let api: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
            let this = self.clone();
            let on_error = on_error.clone();
            tasks.push(tokio::spawn(async move {
                this.follow_config(api, "ValidatingWebhookConfiguration", name, &*on_error)
                    .await
            }));
        }
        let config = watcher::Config::default()
            .fields(&format!("metadata.name={}", self.config.secret_name));
        let mut events = std::pin::pin!(kube::runtime::WatchStreamExt::default_backoff(watcher(
            self.secrets(),
            config
        )));
        let mut served = None;
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(secret) | watcher::Event::InitApply(secret)) => {
                    match served_pair(&secret) {
                        Ok(pair) => {
                            let fingerprint = pair.serving.parsed.fingerprint();
                            match self.write(&pair) {
                                Ok(()) if served.as_ref() != Some(&fingerprint) => {
                                    if served.is_some() {
                                        on_reload();
                                    }
                                    served = Some(fingerprint);
                                }
                                Ok(()) => {}
                                Err(error) => {
                                    on_error("write_files");
                                    tracing::error!(error = %DisplayChain(&error), "writing the serving certificate");
                                }
                            }
                        }
                        // cert-manager writes the Secret in steps (say, a new key before the
                        // certificate); keep serving the last complete pair.
                        Err(error) => {
                            tracing::info!(%error, "the Secret holds no complete pair yet; serving the previous one")
                        }
                    }
                }
                Ok(watcher::Event::Delete(_)) => tracing::warn!(
                    secret = %self.config.secret_name,
                    "the certificate Secret was deleted; serving the last certificate until cert-manager reissues it"
                ),
                Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
                Err(error) => {
                    on_error("watch_secret");
                    tracing::warn!(%error, "watching the certificate Secret");
                }
            }
        }
        tasks.iter().for_each(|task| task.abort());
    }

    async fn follow_config<K>(
        &self,
        api: Api<K>,
        kind: &'static str,
        name: String,
        on_error: &(dyn Fn(&'static str) + Send + Sync),
    ) where
        K: Resource
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut events = std::pin::pin!(kube::runtime::WatchStreamExt::default_backoff(watcher(
            api.clone(),
            config
        )));
        while let Some(event) = events.next().await {
            let Ok(watcher::Event::Apply(_) | watcher::Event::InitApply(_)) = event else {
                continue;
            };
            if let Err(error) = self.annotate(&api, kind, &name).await {
                on_error(error.metric_label());
                tracing::error!(error = %DisplayChain(&error), "annotating a webhook configuration");
            }
        }
    }
}

/// `type=status (reason: message)` for each condition.
fn conditions_line(conditions: &Value) -> String {
    let Some(conditions) = conditions.as_array().filter(|c| !c.is_empty()) else {
        return "no status conditions yet (is cert-manager's controller running?)".to_owned();
    };
    conditions
        .iter()
        .map(|c| {
            format!(
                "{}={} ({}: {})",
                c["type"].as_str().unwrap_or("?"),
                c["status"].as_str().unwrap_or("?"),
                c["reason"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A Go duration (`2160h0m0s` style) as cert-manager's API takes it.
pub fn go_duration(duration: Duration) -> String {
    let seconds = duration.as_secs().max(1);
    format!(
        "{}h{}m{}s",
        seconds / 3600,
        (seconds % 3600) / 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn secret(data: &[(&str, &str)], cert_manager: bool) -> Secret {
        Secret {
            metadata: ObjectMeta {
                annotations: cert_manager.then(|| {
                    BTreeMap::from([(CERTIFICATE_NAME_ANNOTATION.to_owned(), "raygate".to_owned())])
                }),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn go_durations_are_what_cert_manager_parses() {
        assert_eq!(go_duration(Duration::from_secs(90 * 86400)), "2160h0m0s");
        assert_eq!(go_duration(Duration::from_secs(200)), "0h3m20s");
    }

    #[test]
    fn a_cert_manager_secret_yields_its_pair_and_ca() {
        let issued =
            crate::self_signed(&["raygate.raygate-system.svc".into()], &[], 1).expect("issued");
        let s = secret(
            &[
                (TLS_CRT, &issued.cert_pem),
                (TLS_KEY, &issued.key_pem),
                (CA_CRT, &issued.ca_pem),
            ],
            true,
        );
        assert!(is_cert_manager_secret(&s));
        let pair = served_pair(&s).expect("pair");
        assert_eq!(pair.cas.len(), 1);
        let status = pair.status_certificates();
        assert!(
            status
                .serving
                .is_signed_by(status.signing_ca.as_ref().expect("CA"))
        );
    }

    #[test]
    fn a_half_written_secret_is_not_served() {
        let issued = crate::self_signed(&["a".into()], &[], 1).expect("issued");
        let other = crate::self_signed(&["b".into()], &[], 1).expect("issued");
        let missing_key = secret(&[(TLS_CRT, &issued.cert_pem)], true);
        assert!(served_pair(&missing_key).is_err());
        let wrong_key = secret(
            &[(TLS_CRT, &issued.cert_pem), (TLS_KEY, &other.key_pem)],
            true,
        );
        assert!(served_pair(&wrong_key).is_err());
        assert!(!is_cert_manager_secret(&secret(&[], false)));
    }

    #[test]
    fn missing_kinds_are_named() {
        let error = CertManagerError::CrdsMissing {
            missing: "cert-manager.io/v1 (certificates.cert-manager.io, issuers.cert-manager.io CRD missing)".into(),
        };
        let text = error.to_string();
        assert!(text.contains("certificates.cert-manager.io"), "{text}");
        assert!(text.contains("--cert-mode self-managed"), "{text}");
    }
}
