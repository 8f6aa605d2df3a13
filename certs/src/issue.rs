//! Issuing the webhook's CA and the serving certificates it signs (ECDSA P-256).

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use crate::Error;
use crate::parsed::ParsedCertificate;

/// Certificates start this long before they are issued, so an API server whose clock is a
/// little behind ours still accepts them.
pub const BACKDATE: Duration = Duration::from_secs(60);

/// The names the API server uses to reach the webhook; every serving certificate carries them
/// as SANs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServingNames {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl ServingNames {
    /// The names of a Service (`<svc>.<ns>.svc` is what the API server dials for a `service`
    /// reference; the cluster-domain form is for clients that resolve fully), plus extras.
    pub fn for_service(
        service: &str,
        namespace: &str,
        cluster_domain: &str,
        extra_dns: &[String],
        ips: &[IpAddr],
    ) -> Self {
        let mut dns = vec![
            format!("{service}.{namespace}.svc"),
            format!("{service}.{namespace}.svc.{cluster_domain}"),
        ];
        for name in extra_dns {
            if !dns.contains(name) {
                dns.push(name.clone());
            }
        }
        let mut unique_ips = Vec::new();
        for ip in ips {
            if !unique_ips.contains(ip) {
                unique_ips.push(*ip);
            }
        }
        Self {
            dns,
            ips: unique_ips,
        }
    }

    /// These names plus any the other set has that these lack.
    pub fn union(&self, other: &ServingNames) -> ServingNames {
        let mut union = self.clone();
        for name in &other.dns {
            if !union.dns.contains(name) {
                union.dns.push(name.clone());
            }
        }
        for ip in &other.ips {
            if !union.ips.contains(ip) {
                union.ips.push(*ip);
            }
        }
        union
    }

    /// Whether every name in `self` is also in `other`.
    pub fn is_covered_by(&self, other: &ServingNames) -> bool {
        self.dns.iter().all(|name| other.dns.contains(name))
            && self.ips.iter().all(|ip| other.ips.contains(ip))
    }
}

/// A certificate and its private key, PEM, with the parsed fields decisions need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedCertificate {
    pub cert_pem: String,
    pub key_pem: String,
    pub parsed: ParsedCertificate,
}

/// Issues a new self-signed CA valid from `now` for `lifetime`.
pub fn issue_ca(now: OffsetDateTime, lifetime: Duration) -> Result<KeyedCertificate, Error> {
    let mut params = CertificateParams::default();
    // The timestamp makes each CA's subject unique, so `openssl x509 -issuer` tells an old CA
    // from its successor during a rotation.
    params.distinguished_name.push(
        DnType::CommonName,
        format!("raygate webhook CA {}", now.unix_timestamp()),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    keyed(cert.pem(), key.serialize_pem())
}

/// Issues a serving certificate for `names` signed by `ca`, valid for `lifetime` but never
/// beyond the CA (a chain is only as valid as its shortest link).
pub fn issue_serving(
    ca: &KeyedCertificate,
    names: &ServingNames,
    now: OffsetDateTime,
    lifetime: Duration,
) -> Result<KeyedCertificate, Error> {
    let mut params = CertificateParams::default();
    let common_name = names
        .dns
        .first()
        .map_or_else(|| "raygate".to_owned(), Clone::clone);
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    for name in &names.dns {
        let san = name
            .clone()
            .try_into()
            .map_err(|_| Error::InvalidDnsName { name: name.clone() })?;
        params.subject_alt_names.push(SanType::DnsName(san));
    }
    params
        .subject_alt_names
        .extend(names.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - BACKDATE;
    params.not_after = (now + lifetime).min(ca.parsed.not_after);
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    keyed(cert.pem(), key.serialize_pem())
}

fn keyed(cert_pem: String, key_pem: String) -> Result<KeyedCertificate, Error> {
    let parsed = ParsedCertificate::from_pem(&cert_pem, "issued certificate")?;
    Ok(KeyedCertificate {
        cert_pem,
        key_pem,
        parsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time")
    }

    fn names() -> ServingNames {
        ServingNames::for_service(
            "raygate",
            "raygate-system",
            "cluster.local",
            &[],
            &["127.0.0.1".parse().expect("ip")],
        )
    }

    #[test]
    fn the_serving_certificate_carries_the_service_names_and_ips() {
        let ca = issue_ca(now(), Duration::from_secs(3600)).expect("CA");
        let serving =
            issue_serving(&ca, &names(), now(), Duration::from_secs(600)).expect("serving");
        assert_eq!(
            serving.parsed.names.dns,
            [
                "raygate.raygate-system.svc",
                "raygate.raygate-system.svc.cluster.local"
            ]
        );
        assert_eq!(serving.parsed.names.ips, names().ips);
        assert!(serving.parsed.is_signed_by(&ca.parsed));
        assert_eq!(serving.parsed.not_after, now() + Duration::from_secs(600));
        assert!(serving.parsed.not_before < now());
    }

    #[test]
    fn a_serving_certificate_never_outlives_its_ca() {
        let ca = issue_ca(now(), Duration::from_secs(60)).expect("CA");
        let serving =
            issue_serving(&ca, &names(), now(), Duration::from_secs(600)).expect("serving");
        assert_eq!(serving.parsed.not_after, ca.parsed.not_after);
    }

    #[test]
    fn a_certificate_is_not_signed_by_another_ca() {
        let ca = issue_ca(now(), Duration::from_secs(3600)).expect("CA");
        let other = issue_ca(now(), Duration::from_secs(3600)).expect("CA");
        let serving =
            issue_serving(&ca, &names(), now(), Duration::from_secs(600)).expect("serving");
        assert!(!serving.parsed.is_signed_by(&other.parsed));
    }

    #[test]
    fn rejects_a_bad_dns_name() {
        let ca = issue_ca(now(), Duration::from_secs(3600)).expect("CA");
        let names = ServingNames {
            dns: vec!["ráygate".to_owned()],
            ips: vec![],
        };
        let error = issue_serving(&ca, &names, now(), Duration::from_secs(600))
            .expect_err("not a DNS name");
        assert!(error.to_string().contains("ráygate"), "{error}");
    }
}
