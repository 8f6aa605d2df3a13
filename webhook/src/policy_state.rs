//! The policies in force and the namespace labels they select on, shared by every admission
//! request and updated by the cluster watches ([`crate::policy_watch`]); and what admission
//! counted for each cluster policy, for its status ([`crate::policy_status`]).
//!
//! Readers take an `Arc` snapshot of the [`PolicySet`], so a policy change never blocks or
//! tears an admission in flight: a request sees the old set or the new one, whole.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use raygate_api::policy::{CompiledPolicy, PolicySet};

use crate::policy_status::PolicyStatusBook;

#[derive(Debug)]
pub struct PolicyState {
    /// From `--policy-dir`; fixed for the life of the process.
    files: Vec<CompiledPolicy>,
    /// From the cluster's RayPolicies, by name.
    cluster: RwLock<BTreeMap<String, CompiledPolicy>>,
    active: RwLock<Arc<PolicySet>>,
    namespaces: RwLock<HashMap<String, BTreeMap<String, String>>>,
    /// True once the watches have listed RayPolicies and Namespaces (or when there is no
    /// cluster to watch).
    synced: AtomicBool,
    status: PolicyStatusBook,
}

impl Default for PolicyState {
    /// No policies, and nothing to wait for.
    fn default() -> Self {
        Self {
            files: Vec::new(),
            cluster: RwLock::default(),
            active: RwLock::default(),
            namespaces: RwLock::default(),
            synced: AtomicBool::new(true),
            status: PolicyStatusBook::default(),
        }
    }
}

impl PolicyState {
    /// Policies from files only; no cluster watches.
    pub fn from_files(files: PolicySet) -> Self {
        let files = files.policies().to_vec();
        let state = Self {
            files,
            ..Self::default()
        };
        state.rebuild();
        state
    }

    /// The policies in force now.
    pub fn current(&self) -> Arc<PolicySet> {
        match self.active.read() {
            Ok(active) => active.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The labels of a namespace as last seen; empty when unknown (the selector still sees
    /// `kubernetes.io/metadata.name`, which every namespace has).
    pub fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        let namespaces = match self.namespaces.read() {
            Ok(n) => n,
            Err(poisoned) => poisoned.into_inner(),
        };
        namespaces.get(namespace).cloned().unwrap_or_default()
    }

    /// Admission counts and load reports of the cluster's RayPolicies, for their status.
    pub fn status_book(&self) -> &PolicyStatusBook {
        &self.status
    }

    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Holds readiness back until the cluster watches have listed (call before serving).
    pub fn mark_unsynced(&self) {
        self.synced.store(false, Ordering::Release);
    }

    pub fn mark_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }

    /// Replaces every cluster policy (after a full list).
    pub fn replace_cluster_policies(&self, policies: Vec<CompiledPolicy>) {
        {
            let mut cluster = write(&self.cluster);
            *cluster = policies.into_iter().map(|p| (p.name.clone(), p)).collect();
        }
        self.rebuild();
    }

    /// Adds or replaces a cluster policy. Returns false (and rebuilds nothing) when the same
    /// policy is already in force, as after a status-only change.
    pub fn upsert_cluster_policy(&self, policy: CompiledPolicy) -> bool {
        {
            let mut cluster = write(&self.cluster);
            if cluster.get(&policy.name) == Some(&policy) {
                return false;
            }
            cluster.insert(policy.name.clone(), policy);
        }
        self.rebuild();
        true
    }

    pub fn remove_cluster_policy(&self, name: &str) {
        let removed = write(&self.cluster).remove(name).is_some();
        if removed {
            self.rebuild();
        }
    }

    pub fn replace_namespaces(&self, namespaces: HashMap<String, BTreeMap<String, String>>) {
        *write(&self.namespaces) = namespaces;
    }

    pub fn upsert_namespace(&self, name: String, labels: BTreeMap<String, String>) {
        write(&self.namespaces).insert(name, labels);
    }

    pub fn remove_namespace(&self, name: &str) {
        write(&self.namespaces).remove(name);
    }

    fn rebuild(&self) {
        let mut policies = self.files.clone();
        policies.extend(
            self.cluster
                .read()
                .map(|c| c.values().cloned().collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        let set = Arc::new(PolicySet::new(policies));
        *write(&self.active) = set;
    }
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    match lock.write() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
