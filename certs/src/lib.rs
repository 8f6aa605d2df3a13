//! Serving certificates for the admission webhook.
//!
//! - [`issue`]: a CA and the serving certificates it signs (ECDSA P-256), and
//!   [`self_signed`] for local runs and tests.
//! - [`bundle`]: the self-managed certificates and their Secret form.
//! - [`rotation`]: when to renew what, as a pure function of the certificates and the time.
//! - [`status`]: what `raygate certs status` reports, from the Secret and the `caBundle`s.
//! - [`manager`]: the Kubernetes side of self-managed mode (Secret, `caBundle`, watch, loop).
//! - [`cert_manager`]: cert-manager mode (Issuer, Certificate, `inject-ca-from`, the Secret
//!   cert-manager writes).
//! - [`serving_dir`]: the local files the webhook's reloading resolver serves.

pub mod bundle;
pub mod cert_manager;
pub mod issue;
pub mod manager;
pub mod parsed;
pub mod rotation;
pub mod serving_dir;
pub mod status;

pub use bundle::CertBundle;
pub use issue::{KeyedCertificate, ServingNames};

pub use manager::{CertManager, ManagerConfig, WebhookConfigNames};
pub use rotation::{Lifetimes, Step};

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{name:?} is not a valid DNS name for a certificate")]
    InvalidDnsName { name: String },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{what}: {reason}")]
    InvalidCertificate { what: String, reason: String },
    #[error("the Secret has no {key:?}")]
    SecretMissingKey { key: String },
    #[error(
        "serving certificate lifetime {serving:?} must be at least {min:?} and at most half the CA lifetime {ca:?}",
        min = rotation::MIN_SERVING_LIFETIME
    )]
    Lifetimes {
        serving: std::time::Duration,
        ca: std::time::Duration,
    },
}

/// A CA and a serving certificate signed by it, all PEM.
#[derive(Debug, Clone)]
pub struct ServingCertificate {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Issues a new CA and a serving certificate for the given DNS names and IP addresses,
/// valid for `days` days.
pub fn self_signed(
    dns_names: &[String],
    ips: &[IpAddr],
    days: i64,
) -> Result<ServingCertificate, Error> {
    let now = time::OffsetDateTime::now_utc();
    // A little slack in the past so a clock a minute behind still accepts the certificate.
    let not_before = now - time::Duration::minutes(5);
    let not_after = now + time::Duration::days(days);

    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "raygate webhook CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;

    let mut params = CertificateParams::default();
    params.distinguished_name.push(
        DnType::CommonName,
        dns_names.first().map_or("raygate", String::as_str),
    );
    for name in dns_names {
        let name = name
            .clone()
            .try_into()
            .map_err(|_| Error::InvalidDnsName { name: name.clone() })?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    params
        .subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = not_before;
    params.not_after = not_after;
    let key = KeyPair::generate()?;
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer)?;

    Ok(ServingCertificate {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

impl ServingCertificate {
    /// Writes `ca.crt`, `tls.crt` and `tls.key` (the names a Kubernetes TLS Secret uses).
    pub fn write_to(&self, dir: &Path) -> Result<(), Error> {
        for (name, contents) in [
            ("ca.crt", &self.ca_pem),
            ("tls.crt", &self.cert_pem),
            ("tls.key", &self.key_pem),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, contents).map_err(|source| Error::Write {
                path: path.display().to_string(),
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_a_ca_and_a_serving_certificate() {
        let cert = self_signed(
            &["raygate.raygate-system.svc".to_string()],
            &["127.0.0.1".parse().expect("ip")],
            30,
        )
        .expect("generated");
        assert!(cert.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(cert.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(cert.key_pem.contains("PRIVATE KEY"));
        assert_ne!(cert.ca_pem, cert.cert_pem);
    }

    #[test]
    fn rejects_a_bad_dns_name() {
        let error = self_signed(&["ráygate".to_string()], &[], 1).expect_err("invalid");
        assert!(error.to_string().contains("ráygate"), "{error}");
    }
}
