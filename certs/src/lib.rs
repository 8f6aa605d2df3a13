//! Serving certificates for the admission webhook.
