//! Watches of the cluster's RayPolicies and Namespaces. A RayPolicy change reaches admission
//! as soon as its watch event arrives (well within 5 s); AdmissionReviews don't carry the
//! namespace's labels, so the webhook keeps them from a metadata-only watch of Namespaces.
//!
//! RayPolicies are read untyped and compiled one by one: a stored policy that doesn't compile
//! (stored while the webhook was down) is skipped whole and logged, never half-applied, and
//! never stops the others from loading. Each object and what became of it is recorded for the
//! policy's status ([`crate::policy_status`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use raygate_api::policy::{CompiledPolicy, RayPolicy, compile};
use tokio::sync::watch;

use crate::policy_state::PolicyState;
use crate::policy_status::{LoadOutcome, ObservedPolicy};

/// Runs both watches until the process ends. `synced` turns true once both have listed.
pub async fn run(client: Client, state: Arc<PolicyState>) {
    state.mark_unsynced();
    let (policies_tx, policies_rx) = watch::channel(false);
    let (namespaces_tx, namespaces_rx) = watch::channel(false);
    let sync = {
        let state = state.clone();
        async move {
            let mut p = policies_rx;
            let mut n = namespaces_rx;
            let _ = p.wait_for(|listed| *listed).await;
            let _ = n.wait_for(|listed| *listed).await;
            state.mark_synced();
            tracing::info!(
                policies = state.current().len(),
                "policy and namespace watches synced"
            );
        }
    };
    tokio::join!(
        watch_policies(client.clone(), state.clone(), policies_tx),
        watch_namespaces(client, state, namespaces_tx),
        sync
    );
}

async fn watch_policies(client: Client, state: Arc<PolicyState>, listed: watch::Sender<bool>) {
    let resource = ApiResource::erase::<RayPolicy>(&());
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let mut buffer: Vec<CompiledPolicy> = Vec::new();
    let mut listed_names: HashSet<String> = HashSet::new();
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    loop {
        match events.try_next().await {
            Ok(Some(Event::Init)) => {
                buffer.clear();
                listed_names.clear();
            }
            Ok(Some(Event::InitApply(object))) => {
                listed_names.insert(name_of(&object));
                if let Some(policy) = load(&state, &object) {
                    buffer.push(policy);
                }
            }
            Ok(Some(Event::InitDone)) => {
                state.replace_cluster_policies(std::mem::take(&mut buffer));
                let names = std::mem::take(&mut listed_names);
                state.status_book().retain(|name| names.contains(name));
                let _ = listed.send(true);
            }
            Ok(Some(Event::Apply(object))) => match load(&state, &object) {
                Some(policy) => {
                    let name = policy.name.clone();
                    // Status writes come back as events too; only a new spec is news.
                    if state.upsert_cluster_policy(policy) {
                        tracing::info!(policy = %name, "RayPolicy loaded");
                    }
                }
                // A policy that no longer compiles stops applying rather than applying in part.
                None => state.remove_cluster_policy(&name_of(&object)),
            },
            Ok(Some(Event::Delete(object))) => {
                let name = name_of(&object);
                tracing::info!(policy = %name, "RayPolicy removed");
                state.remove_cluster_policy(&name);
                state.status_book().forget(&name);
            }
            Ok(None) => return,
            Err(error) => {
                // The backoff retries; the last good set stays in force meanwhile.
                tracing::warn!(%error, "watching RayPolicies failed; retrying");
            }
        }
    }
}

async fn watch_namespaces(client: Client, state: Arc<PolicyState>, listed: watch::Sender<bool>) {
    // Metadata only: the labels are all a namespaceSelector needs.
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client);
    let mut buffer: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    loop {
        match events.try_next().await {
            Ok(Some(Event::Init)) => buffer.clear(),
            Ok(Some(Event::InitApply(object))) => {
                if let Some(name) = object.metadata.name {
                    buffer.insert(name, object.metadata.labels.unwrap_or_default());
                }
            }
            Ok(Some(Event::InitDone)) => {
                state.replace_namespaces(std::mem::take(&mut buffer));
                let _ = listed.send(true);
            }
            Ok(Some(Event::Apply(object))) => {
                if let Some(name) = object.metadata.name {
                    state.upsert_namespace(name, object.metadata.labels.unwrap_or_default());
                }
            }
            Ok(Some(Event::Delete(object))) => {
                if let Some(name) = object.metadata.name {
                    state.remove_namespace(&name);
                }
            }
            Ok(None) => return,
            Err(error) => tracing::warn!(%error, "watching Namespaces failed; retrying"),
        }
    }
}

fn name_of(object: &DynamicObject) -> String {
    object.metadata.name.clone().unwrap_or_default()
}

/// Compiles a RayPolicy object, and records the object and the outcome for its status.
fn load(state: &PolicyState, object: &DynamicObject) -> Option<CompiledPolicy> {
    let book = state.status_book();
    let observed = ObservedPolicy::from_object(object);
    let generation = observed.as_ref().map(|o| o.generation).unwrap_or_default();
    if let Some(observed) = observed {
        book.observe(observed);
    }
    let name = name_of(object);
    let compiled = serde_json::to_value(object)
        .map_err(|error| format!("the object could not be read: {error}"))
        .and_then(|value| {
            compile(&value).map_err(|errors| {
                let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                errors.join("; ")
            })
        });
    match compiled {
        Ok(policy) => {
            book.loaded(&name, generation, LoadOutcome::Loaded);
            Some(policy)
        }
        Err(errors) => {
            // Logged once per generation: the status write that reports it is an event too.
            if book.loaded(&name, generation, LoadOutcome::Invalid(errors.clone())) {
                tracing::error!(
                    policy = %name,
                    generation,
                    %errors,
                    "RayPolicy is invalid and not enforced"
                );
            }
            None
        }
    }
}
