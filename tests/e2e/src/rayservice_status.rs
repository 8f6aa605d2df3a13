//! Reading a RayService's status the way a user does with `kubectl get rayservice -o yaml`.

use raygate_api::RayService;
use raygate_api::rayservice::RayServiceStatus;

/// A condition's status (`True`, `False`, `Unknown`), if the condition is there.
pub fn condition(service: &RayService, type_: &str) -> Option<String> {
    service
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

/// `activeServiceStatus`, or `pendingServiceStatus` when `pending`.
pub fn side(service: &RayService, pending: bool) -> Option<&RayServiceStatus> {
    let status = service.status.as_ref()?;
    if pending {
        status.pending_service_status.as_ref()
    } else {
        status.active_service_status.as_ref()
    }
}

/// The name of the active (or pending) cluster.
pub fn cluster_of(service: &RayService, pending: bool) -> Option<String> {
    side(service, pending)?.ray_cluster_name.clone()
}
