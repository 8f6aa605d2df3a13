//! Which extended resources are GPUs. One rule for defaulting (`num-gpus`), the controller's
//! `status.desiredGPU` and policy GPU caps, so that a name counted by one is counted by all:
//! a cap that ignores a resource Ray schedules on as a GPU could be dodged by renaming it.

/// KubeRay's rule: any resource name ending in `gpu` (`nvidia.com/gpu`, `amd.com/gpu`,
/// `intel.com/gpu`, ...), or an NVIDIA MIG slice, which Ray sees as one GPU.
pub fn is_gpu_resource(name: &str) -> bool {
    name.ends_with("gpu") || is_mig_resource(name)
}

/// `nvidia.com/mig-<N>g.<M>gb` (`nvidia.com/mig-1g.5gb`): the device plugin's name for a MIG
/// slice under the mixed strategy. Its node taint is `nvidia.com/gpu`, like a whole GPU's.
pub fn is_mig_resource(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    name.strip_prefix("nvidia.com/mig-")
        .and_then(|profile| profile.strip_suffix("gb"))
        .and_then(|profile| profile.split_once("g."))
        .is_some_and(|(compute, memory)| digits(compute) && digits(memory))
}

#[cfg(test)]
mod tests {
    use super::is_gpu_resource;

    #[test]
    fn gpu_names_follow_kuberay() {
        for gpu in [
            "nvidia.com/gpu",
            "amd.com/gpu",
            "intel.com/gpu",
            "nvidia.com/mig-1g.5gb",
            "nvidia.com/mig-7g.80gb",
        ] {
            assert!(is_gpu_resource(gpu), "{gpu}");
        }
        for other in [
            "cpu",
            "memory",
            "google.com/tpu",
            "aws.amazon.com/neuroncore",
            "nvidia.com/mig-",
            "nvidia.com/mig-1g.gb",
            "nvidia.com/mig-xg.5gb",
        ] {
            assert!(!is_gpu_resource(other), "{other}");
        }
    }
}
