//! Test support: the local control plane (etcd + kube-apiserver) and helpers named for what a user sees.
