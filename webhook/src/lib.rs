//! Admission: AdmissionReview decoding, mutate and validate, policies, the TLS server.
