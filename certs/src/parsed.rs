//! The fields of an X.509 certificate that rotation and status decisions read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

use crate::Error;
use crate::issue::ServingNames;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCertificate {
    pub der: Vec<u8>,
    pub subject: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub names: ServingNames,
    /// The subjectPublicKey bits, to pair a certificate with its private key.
    pub public_key: Vec<u8>,
}

impl ParsedCertificate {
    /// The first certificate in `pem`; `what` names the source in errors.
    pub fn from_pem(pem: &str, what: &str) -> Result<Self, Error> {
        all_from_pem(pem, what)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::InvalidCertificate {
                what: what.to_owned(),
                reason: "no PEM certificate".to_owned(),
            })
    }

    pub fn from_der(der: &[u8], what: &str) -> Result<Self, Error> {
        let cert = parse(der, what)?;
        let invalid = |reason: String| Error::InvalidCertificate {
            what: what.to_owned(),
            reason,
        };
        let mut names = ServingNames::default();
        let san = cert
            .subject_alternative_name()
            .map_err(|e| invalid(e.to_string()))?;
        for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
            match name {
                GeneralName::DNSName(dns) => names.dns.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        names.ips.push(ip);
                    }
                }
                _ => {}
            }
        }
        let time = |t: x509_parser::time::ASN1Time| {
            OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|e| invalid(e.to_string()))
        };
        Ok(Self {
            der: der.to_vec(),
            subject: cert.subject().to_string(),
            not_before: time(cert.validity().not_before)?,
            not_after: time(cert.validity().not_after)?,
            names,
            public_key: cert.public_key().subject_public_key.data.to_vec(),
        })
    }

    /// Whether `issuer`'s key made this certificate's signature.
    pub fn is_signed_by(&self, issuer: &ParsedCertificate) -> bool {
        let (Ok(child), Ok(parent)) = (parse(&self.der, ""), parse(&issuer.der, "")) else {
            return false;
        };
        child.verify_signature(Some(parent.public_key())).is_ok()
    }

    /// Valid at `now` (inside notBefore..notAfter).
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now < self.not_after
    }

    /// Hex SHA-256 of the DER, as `openssl x509 -fingerprint -sha256` prints it (without colons).
    pub fn fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.der);
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Every certificate in `pem`, in order (other PEM blocks are skipped).
pub fn all_from_pem(pem: &str, what: &str) -> Result<Vec<ParsedCertificate>, Error> {
    let mut certificates = Vec::new();
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| Error::InvalidCertificate {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
        if block.label == "CERTIFICATE" {
            certificates.push(ParsedCertificate::from_der(&block.contents, what)?);
        }
    }
    Ok(certificates)
}

fn parse<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, Error> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| Error::InvalidCertificate {
            what: what.to_owned(),
            reason: e.to_string(),
        })
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        _ => None,
    }
}
