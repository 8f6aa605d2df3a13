//! Self-managed mode against the API server: one Secret shared by every replica, the
//! `caBundle` of raygate's webhook configurations, and the local files the webhook serves.
//!
//! Replicas never overwrite each other: the Secret is created only if absent (losing that
//! race means reading the winner's), and changed only by `replace` at the resourceVersion
//! that was read (a 409 means someone else changed it: read again and decide again).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde_json::json;
use time::OffsetDateTime;

use crate::bundle::CertBundle;
use crate::issue::ServingNames;
use crate::parsed::all_from_pem;
use crate::rotation::{Lifetimes, Step, plan};
use crate::serving_dir::ServingDir;

/// Field manager of the `caBundle` patches, so `kubectl get -o yaml --show-managed-fields`
/// tells who wrote them.
pub const FIELD_MANAGER: &str = "raygate-certs";
/// Marks a Secret as raygate's self-managed certificates (what `raygate certs status` reads).
pub const MODE_ANNOTATION: &str = "raygate.io/cert-mode";
pub const SELF_MANAGED: &str = "self-managed";
/// Replicas that race for one change settle in one or two rounds; more means something else
/// keeps writing the Secret.
const MAX_CONFLICTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("reading Secret {namespace}/{name}")]
    ReadSecret {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("creating Secret {namespace}/{name}")]
    CreateSecret {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("updating Secret {namespace}/{name}")]
    ReplaceSecret {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("Secret {namespace}/{name} kept changing under us ({MAX_CONFLICTS} conflicts)")]
    TooManyConflicts { namespace: String, name: String },
    #[error("reading {kind} {name}")]
    ReadWebhookConfig {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("patching the caBundle of {kind} {name}")]
    PatchCaBundle {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error(transparent)]
    Certificates(#[from] crate::Error),
}

impl ManagerError {
    /// A short name for metric labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ManagerError::ReadSecret { .. } => "read_secret",
            ManagerError::CreateSecret { .. } => "create_secret",
            ManagerError::ReplaceSecret { .. } => "replace_secret",
            ManagerError::TooManyConflicts { .. } => "too_many_conflicts",
            ManagerError::ReadWebhookConfig { .. } => "read_webhook_config",
            ManagerError::PatchCaBundle { .. } => "patch_ca_bundle",
            ManagerError::Certificates(_) => "certificates",
        }
    }
}

/// The webhook configurations whose `caBundle` raygate keeps; `None` skips one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookConfigNames {
    pub mutating: Option<String>,
    pub validating: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub namespace: String,
    pub secret_name: String,
    pub webhook_configs: WebhookConfigNames,
    pub names: ServingNames,
    pub lifetimes: Lifetimes,
    /// Where the served `tls.crt`/`tls.key` are written.
    pub dir: PathBuf,
}

/// What the manager did, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertEvent {
    /// This replica wrote a change to the Secret.
    Rotated(Step),
    /// Syncing the files or the `caBundle`s failed; retried on the next event or tick.
    SyncFailed(&'static str),
}

type Observer = Arc<dyn Fn(CertEvent) + Send + Sync>;

pub struct CertManager {
    client: Client,
    config: ManagerConfig,
    serving_dir: ServingDir,
    /// The highest Secret resourceVersion already written to disk, so a slow periodic read
    /// can't put back files older than what the watch delivered.
    synced_version: AtomicU64,
    sync_lock: tokio::sync::Mutex<()>,
    /// What was last synced, for re-patching a webhook configuration that (re)appears.
    synced: std::sync::Mutex<Option<CertBundle>>,
    observer: std::sync::RwLock<Option<Observer>>,
}

impl std::fmt::Debug for CertManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertManager")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CertManager {
    pub fn new(client: Client, config: ManagerConfig) -> Self {
        Self {
            client,
            serving_dir: ServingDir::new(config.dir.clone()),
            config,
            synced_version: AtomicU64::new(0),
            sync_lock: tokio::sync::Mutex::new(()),
            synced: std::sync::Mutex::new(None),
            observer: std::sync::RwLock::new(None),
        }
    }

    pub fn cert_path(&self) -> PathBuf {
        self.serving_dir.cert_path()
    }

    pub fn key_path(&self) -> PathBuf {
        self.serving_dir.key_path()
    }

    /// Called for each [`CertEvent`] (metrics).
    pub fn set_observer(&self, observer: impl Fn(CertEvent) + Send + Sync + 'static) {
        if let Ok(mut slot) = self.observer.write() {
            *slot = Some(Arc::new(observer));
        }
    }

    fn observe(&self, event: CertEvent) {
        let observer = self.observer.read().ok().and_then(|slot| slot.clone());
        if let Some(observer) = observer {
            observer(event);
        }
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }

    /// Makes sure the Secret holds current certificates, the `caBundle`s trust them, and the
    /// files on disk are what the Secret says. Call before serving; then [`run`](Self::run).
    pub async fn reconcile(&self) -> Result<CertBundle, ManagerError> {
        let (secret, bundle) = self.ensure_secret().await?;
        self.sync(&secret, &bundle).await?;
        Ok(bundle)
    }

    /// Keeps everything current until the process ends: a watch on the Secret (so every
    /// replica follows the one that rotated) and a periodic re-decision.
    pub async fn run(self: Arc<Self>) {
        let watch = tokio::spawn(self.clone().follow_secret());
        let mut config_watches = Vec::new();
        if let Some(name) = self.config.webhook_configs.mutating.clone() {
            let api: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
            config_watches.push(tokio::spawn(self.clone().follow_config(api, name)));
        }
        if let Some(name) = self.config.webhook_configs.validating.clone() {
            let api: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
            config_watches.push(tokio::spawn(self.clone().follow_config(api, name)));
        }
        let mut ticker = tokio::time::interval(self.config.lifetimes.check_interval());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(error) = self.reconcile().await {
                self.observe(CertEvent::SyncFailed(error.metric_label()));
                tracing::error!(error = %DisplayChain(&error), "certificate check failed; retrying");
            }
            if watch.is_finished() || config_watches.iter().any(|w| w.is_finished()) {
                tracing::error!("a watch ended; restarting them");
                break;
            }
        }
        watch.abort();
        config_watches.iter().for_each(|w| w.abort());
        Box::pin(self.run()).await;
    }

    async fn follow_secret(self: Arc<Self>) {
        let config = watcher::Config::default()
            .fields(&format!("metadata.name={}", self.config.secret_name));
        let mut events = std::pin::pin!(kube::runtime::WatchStreamExt::default_backoff(watcher(
            self.secrets(),
            config
        )));
        while let Some(event) = events.next().await {
            let result = match event {
                Ok(watcher::Event::Apply(secret) | watcher::Event::InitApply(secret)) => {
                    match stored_bundle(&secret) {
                        Ok(bundle) => self.sync(&secret, &bundle).await,
                        Err(error) => {
                            tracing::warn!(%error, "the certificate Secret is not usable; repairing");
                            self.reconcile().await.map(drop)
                        }
                    }
                }
                Ok(watcher::Event::Delete(_)) => {
                    tracing::warn!("the certificate Secret was deleted; issuing new certificates");
                    self.reconcile().await.map(drop)
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) => Ok(()),
                Err(error) => {
                    tracing::warn!(%error, "watching the certificate Secret");
                    Ok(())
                }
            };
            if let Err(error) = result {
                self.observe(CertEvent::SyncFailed(error.metric_label()));
                tracing::error!(error = %DisplayChain(&error), "following the certificate Secret");
            }
        }
    }

    /// A webhook configuration applied anew (say, `raygate webhook-config | kubectl apply`)
    /// comes without our `caBundle`; put it back at once rather than at the next tick.
    async fn follow_config<K>(self: Arc<Self>, api: Api<K>, name: String)
    where
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
            api, config
        )));
        while let Some(event) = events.next().await {
            let Ok(watcher::Event::Apply(_) | watcher::Event::InitApply(_)) = event else {
                continue;
            };
            let synced = self.synced.lock().ok().and_then(|s| s.clone());
            if let Some(bundle) = synced
                && let Err(error) = self.patch_ca_bundles(&bundle).await
            {
                self.observe(CertEvent::SyncFailed(error.metric_label()));
                tracing::error!(error = %DisplayChain(&error), "restoring a caBundle");
            }
        }
    }

    /// Reads the Secret and writes whatever change is due, racing other replicas safely.
    async fn ensure_secret(&self) -> Result<(Secret, CertBundle), ManagerError> {
        let api = self.secrets();
        let (namespace, name) = (&self.config.namespace, &self.config.secret_name);
        let cfg = &self.config;
        for _ in 0..MAX_CONFLICTS {
            let now = OffsetDateTime::now_utc();
            let existing = api
                .get_opt(name)
                .await
                .map_err(|source| ManagerError::ReadSecret {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    source,
                })?;
            let Some(existing) = existing else {
                let Some((_, bundle)) = plan(None, &cfg.names, &cfg.lifetimes, now)? else {
                    continue;
                };
                match api
                    .create(&PostParams::default(), &self.new_secret(&bundle))
                    .await
                {
                    Ok(created) => {
                        tracing::info!(secret = %name, "issued a new CA and serving certificate");
                        self.observe(CertEvent::Rotated(Step::Issue));
                        return Ok((created, bundle));
                    }
                    // Another replica created it first: theirs is the one.
                    Err(kube::Error::Api(status)) if status.is_already_exists() => continue,
                    Err(source) => {
                        return Err(ManagerError::CreateSecret {
                            namespace: namespace.clone(),
                            name: name.clone(),
                            source,
                        });
                    }
                }
            };
            let stored = match stored_bundle(&existing) {
                Ok(bundle) => Some(bundle),
                Err(error) => {
                    tracing::warn!(%error, secret = %name, "stored certificates are unusable; replacing them");
                    None
                }
            };
            let Some((steps, bundle)) = plan(stored.as_ref(), &cfg.names, &cfg.lifetimes, now)?
            else {
                if let Some(stored) = stored {
                    return Ok((existing, stored));
                }
                continue;
            };
            if steps.contains(&Step::SwitchToNextCa)
                && let Some(stored) = &stored
                && !self.ca_bundles_trust(stored).await?
            {
                // Serving from the new CA before every webhook trusts it would fail
                // admissions; make them trust it and switch on a later tick.
                tracing::info!("new CA not yet in every caBundle; delaying the switch to it");
                self.patch_ca_bundles(stored).await?;
                return Ok((existing, stored.clone()));
            }
            let mut replacement = existing.clone();
            replacement.data = Some(secret_data(&bundle));
            // `replace` carries the resourceVersion read above: a write by another replica in
            // between makes this one fail with 409 instead of overwriting it.
            match api
                .replace(name, &PostParams::default(), &replacement)
                .await
            {
                Ok(replaced) => {
                    for step in &steps {
                        tracing::info!(step = step.as_str(), secret = %name, "certificates rotated");
                        self.observe(CertEvent::Rotated(*step));
                    }
                    return Ok((replaced, bundle));
                }
                Err(kube::Error::Api(status)) if status.is_conflict() => continue,
                Err(source) => {
                    return Err(ManagerError::ReplaceSecret {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        source,
                    });
                }
            }
        }
        Err(ManagerError::TooManyConflicts {
            namespace: namespace.clone(),
            name: name.clone(),
        })
    }

    fn new_secret(&self, bundle: &CertBundle) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(self.config.secret_name.clone()),
                namespace: Some(self.config.namespace.clone()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "raygate".to_owned(),
                )])),
                annotations: Some(BTreeMap::from([(
                    MODE_ANNOTATION.to_owned(),
                    SELF_MANAGED.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/tls".to_owned()),
            data: Some(secret_data(bundle)),
            ..Secret::default()
        }
    }

    /// Files first, then `caBundle`s; neither is touched when already current.
    async fn sync(&self, secret: &Secret, bundle: &CertBundle) -> Result<(), ManagerError> {
        let _guard = self.sync_lock.lock().await;
        let version = secret
            .meta()
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok());
        // resourceVersions are opaque by contract, but etcd's are increasing integers; when
        // one doesn't parse, syncing anyway is the safe side.
        let stale = version.is_some_and(|v| v < self.synced_version.load(Ordering::SeqCst));
        if stale {
            return Ok(());
        }
        if !self.serving_dir.holds(bundle) {
            self.serving_dir.write(bundle)?;
            tracing::info!(
                dir = %self.config.dir.display(),
                serving_not_after = %bundle.serving.parsed.not_after,
                "serving certificate written for the webhook to load"
            );
        }
        if let Some(version) = version {
            self.synced_version.fetch_max(version, Ordering::SeqCst);
        }
        if let Ok(mut synced) = self.synced.lock() {
            *synced = Some(bundle.clone());
        }
        self.patch_ca_bundles(bundle).await
    }

    /// Whether every configured webhook's `caBundle` holds every CA of `bundle`.
    async fn ca_bundles_trust(&self, bundle: &CertBundle) -> Result<bool, ManagerError> {
        let wanted: Vec<Vec<u8>> = bundle.trusted().iter().map(|ca| ca.der.clone()).collect();
        for hook in self.read_ca_bundles().await? {
            let present: Vec<Vec<u8>> = hook
                .ca_bundle
                .as_deref()
                .and_then(|pem| all_from_pem(pem, "caBundle").ok())
                .unwrap_or_default()
                .into_iter()
                .map(|ca| ca.der)
                .collect();
            if !wanted.iter().all(|ca| present.contains(ca)) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub async fn read_ca_bundles(&self) -> Result<Vec<WebhookCaBundle>, ManagerError> {
        read_ca_bundles(&self.client, &self.config.webhook_configs).await
    }

    async fn patch_ca_bundles(&self, bundle: &CertBundle) -> Result<(), ManagerError> {
        let trust = bundle.trust_bundle();
        let names = &self.config.webhook_configs;
        if let Some(name) = &names.mutating {
            let api: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
            patch_ca_bundle(&api, "MutatingWebhookConfiguration", name, &trust).await?;
        }
        if let Some(name) = &names.validating {
            let api: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
            patch_ca_bundle(&api, "ValidatingWebhookConfiguration", name, &trust).await?;
        }
        Ok(())
    }
}

/// One webhook's `caBundle` as the API server holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookCaBundle {
    pub kind: &'static str,
    pub config: String,
    pub webhook: String,
    /// PEM; `None` when unset.
    pub ca_bundle: Option<String>,
    /// The configuration's `cert-manager.io/inject-ca-from` annotation.
    pub inject_ca_from: Option<String>,
}

/// The `caBundle` of every webhook in the named configurations. A configuration that does
/// not exist yet contributes nothing (it is patched once it appears).
pub async fn read_ca_bundles(
    client: &Client,
    names: &WebhookConfigNames,
) -> Result<Vec<WebhookCaBundle>, ManagerError> {
    let mut found = Vec::new();
    if let Some(name) = &names.mutating {
        let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        found.extend(read_config(&api, "MutatingWebhookConfiguration", name).await?);
    }
    if let Some(name) = &names.validating {
        let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        found.extend(read_config(&api, "ValidatingWebhookConfiguration", name).await?);
    }
    Ok(found)
}

async fn read_config<K>(
    api: &Api<K>,
    kind: &'static str,
    name: &str,
) -> Result<Vec<WebhookCaBundle>, ManagerError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + serde::Serialize,
{
    let Some(config) =
        api.get_opt(name)
            .await
            .map_err(|source| ManagerError::ReadWebhookConfig {
                kind,
                name: name.to_owned(),
                source,
            })?
    else {
        return Ok(Vec::new());
    };
    // Both configuration kinds share the fields read here; JSON saves a trait over them.
    let value = serde_json::to_value(&config).unwrap_or_default();
    let inject_ca_from = value["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        .as_str()
        .map(str::to_owned);
    let hooks = value["webhooks"].as_array().cloned().unwrap_or_default();
    Ok(hooks
        .iter()
        .map(|hook| WebhookCaBundle {
            kind,
            config: name.to_owned(),
            webhook: hook["name"].as_str().unwrap_or_default().to_owned(),
            ca_bundle: hook["clientConfig"]["caBundle"]
                .as_str()
                .and_then(decode_base64)
                .and_then(|bytes| String::from_utf8(bytes).ok()),
            inject_ca_from: inject_ca_from.clone(),
        })
        .collect())
}

/// Sets `caBundle` on every webhook of one configuration whose bundle differs, by
/// server-side apply: `webhooks` is a list keyed by name, so the apply touches nothing but
/// the bundles, and its field manager shows who owns them.
async fn patch_ca_bundle<K>(
    api: &Api<K>,
    kind: &'static str,
    name: &str,
    trust_pem: &str,
) -> Result<(), ManagerError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + serde::Serialize,
{
    let Some(config) =
        api.get_opt(name)
            .await
            .map_err(|source| ManagerError::ReadWebhookConfig {
                kind,
                name: name.to_owned(),
                source,
            })?
    else {
        tracing::debug!(
            kind,
            name,
            "webhook configuration not found; nothing to patch"
        );
        return Ok(());
    };
    let value = serde_json::to_value(&config).unwrap_or_default();
    let wanted =
        serde_json::to_value(ByteString(trust_pem.as_bytes().to_vec())).unwrap_or_default();
    let hooks: Vec<&serde_json::Value> =
        value["webhooks"].as_array().into_iter().flatten().collect();
    if hooks
        .iter()
        .all(|hook| hook["clientConfig"]["caBundle"] == wanted)
    {
        return Ok(());
    }
    // Only webhooks that exist: applying an unknown name would create an incomplete one.
    let webhooks: Vec<serde_json::Value> = hooks
        .iter()
        .map(|hook| json!({"name": hook["name"], "clientConfig": {"caBundle": wanted}}))
        .collect();
    let apply = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": webhooks,
    });
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(apply),
    )
    .await
    .map_err(|source| ManagerError::PatchCaBundle {
        kind,
        name: name.to_owned(),
        source,
    })?;
    tracing::info!(kind, name, "caBundle updated");
    Ok(())
}

/// The stored certificates of a Secret.
pub fn stored_bundle(secret: &Secret) -> Result<CertBundle, crate::Error> {
    let data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    CertBundle::from_secret_data(&data)
}

fn secret_data(bundle: &CertBundle) -> BTreeMap<String, ByteString> {
    bundle
        .to_secret_data()
        .into_iter()
        .map(|(k, v)| (k, ByteString(v)))
        .collect()
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    serde_json::from_value::<ByteString>(serde_json::Value::String(text.to_owned()))
        .ok()
        .map(|b| b.0)
}

/// An error with its causes, on one line, for logs.
pub struct DisplayChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// Everything `raygate certs status` reports, read from the cluster.
pub async fn read_status(
    client: &Client,
    namespace: &str,
    secret_name: &str,
    webhook_configs: &WebhookConfigNames,
) -> Result<crate::status::StatusReport, ManagerError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(secret_name)
        .await
        .map_err(|source| ManagerError::ReadSecret {
            namespace: namespace.to_owned(),
            name: secret_name.to_owned(),
            source,
        })?;
    let self_managed = secret.as_ref().is_some_and(|secret| {
        secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(MODE_ANNOTATION))
            .is_some_and(|mode| mode == SELF_MANAGED)
    });
    let bundle = match &secret {
        None => Err("not found".to_owned()),
        // cert-manager's Secrets hold no CA key; read the served pair and ca.crt.
        Some(secret) if crate::cert_manager::is_cert_manager_secret(secret) => {
            crate::cert_manager::served_pair(secret)
                .map(|pair| pair.status_certificates())
                .map_err(|e| e.to_string())
        }
        Some(secret) => stored_bundle(secret)
            .map(|bundle| (&bundle).into())
            .map_err(|e| e.to_string()),
    };
    let ca_bundles = read_ca_bundles(client, webhook_configs).await?;
    Ok(crate::status::StatusReport::new(
        format!("{namespace}/{secret_name}"),
        self_managed,
        bundle,
        &ca_bundles,
        OffsetDateTime::now_utc(),
    ))
}
