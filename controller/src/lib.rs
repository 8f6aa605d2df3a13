//! The lean controller: materializes RayClusters, RayJobs and RayServices.
