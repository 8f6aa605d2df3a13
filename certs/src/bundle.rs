//! The self-managed certificates as one value, and its form as the data of a Kubernetes
//! `kubernetes.io/tls` Secret.
//!
//! Keys: `tls.crt`/`tls.key` (the serving pair, the names every TLS Secret uses), `ca.crt`
//! (every CA the API server must trust: the signing CA, plus the next one or the retired one
//! during a rotation), `ca.key` (the signing CA's key) and, during a rotation, `next-ca.key`.
//! Which certificate in `ca.crt` plays which part is found by matching public keys, so the
//! Secret holds nothing but the standard PEM files.

use std::collections::BTreeMap;

use crate::Error;
use crate::issue::KeyedCertificate;
use crate::parsed::{ParsedCertificate, all_from_pem};

pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
pub const CA_CRT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const NEXT_CA_KEY: &str = "next-ca.key";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertBundle {
    /// What the webhook serves.
    pub serving: KeyedCertificate,
    /// Signs serving certificates now.
    pub ca: KeyedCertificate,
    /// During a CA rotation: already trusted, signs serving certificates after the overlap.
    pub next_ca: Option<KeyedCertificate>,
    /// After a CA rotation: still trusted until it expires, so replicas that have not yet
    /// picked up the new serving certificate keep working.
    pub retired_cas: Vec<ParsedCertificate>,
}

impl CertBundle {
    /// The PEM the webhook configurations' `caBundle` must hold.
    pub fn trust_bundle(&self) -> String {
        let mut pem = self.ca.cert_pem.clone();
        if let Some(next) = &self.next_ca {
            push_pem(&mut pem, &next.cert_pem);
        }
        for retired in &self.retired_cas {
            push_pem(&mut pem, &der_to_pem(&retired.der));
        }
        pem
    }

    /// Every trusted CA certificate, parsed.
    pub fn trusted(&self) -> Vec<&ParsedCertificate> {
        let mut trusted = vec![&self.ca.parsed];
        trusted.extend(self.next_ca.as_ref().map(|next| &next.parsed));
        trusted.extend(self.retired_cas.iter());
        trusted
    }

    pub fn to_secret_data(&self) -> BTreeMap<String, Vec<u8>> {
        let mut data = BTreeMap::from([
            (
                TLS_CRT.to_owned(),
                self.serving.cert_pem.clone().into_bytes(),
            ),
            (
                TLS_KEY.to_owned(),
                self.serving.key_pem.clone().into_bytes(),
            ),
            (CA_CRT.to_owned(), self.trust_bundle().into_bytes()),
            (CA_KEY.to_owned(), self.ca.key_pem.clone().into_bytes()),
        ]);
        if let Some(next) = &self.next_ca {
            data.insert(NEXT_CA_KEY.to_owned(), next.key_pem.clone().into_bytes());
        }
        data
    }

    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Self, Error> {
        let text = |key: &str| -> Result<String, Error> {
            let bytes = data.get(key).ok_or_else(|| Error::SecretMissingKey {
                key: key.to_owned(),
            })?;
            String::from_utf8(bytes.clone()).map_err(|_| Error::InvalidCertificate {
                what: key.to_owned(),
                reason: "not UTF-8 PEM".to_owned(),
            })
        };
        let serving = keyed(text(TLS_CRT)?, text(TLS_KEY)?, TLS_CRT)?;
        let ca_key = text(CA_KEY)?;
        let next_ca_key = data
            .contains_key(NEXT_CA_KEY)
            .then(|| text(NEXT_CA_KEY))
            .transpose()?;
        let ca_pem = text(CA_CRT)?;
        let ca_key_public = public_key_of(&ca_key, CA_KEY)?;
        let next_key_public = next_ca_key
            .as_deref()
            .map(|key| public_key_of(key, NEXT_CA_KEY))
            .transpose()?;
        let mut ca = None;
        let mut next_ca = None;
        let mut retired_cas = Vec::new();
        for parsed in all_from_pem(&ca_pem, CA_CRT)? {
            if parsed.public_key == ca_key_public && ca.is_none() {
                ca = Some(KeyedCertificate {
                    cert_pem: der_to_pem(&parsed.der),
                    key_pem: ca_key.clone(),
                    parsed,
                });
            } else if next_key_public.as_ref() == Some(&parsed.public_key) && next_ca.is_none() {
                next_ca = Some(KeyedCertificate {
                    cert_pem: der_to_pem(&parsed.der),
                    key_pem: next_ca_key.clone().unwrap_or_default(),
                    parsed,
                });
            } else {
                retired_cas.push(parsed);
            }
        }
        let ca = ca.ok_or_else(|| Error::InvalidCertificate {
            what: CA_CRT.to_owned(),
            reason: format!("no certificate in it matches {CA_KEY}"),
        })?;
        if next_key_public.is_some() && next_ca.is_none() {
            return Err(Error::InvalidCertificate {
                what: CA_CRT.to_owned(),
                reason: format!("no certificate in it matches {NEXT_CA_KEY}"),
            });
        }
        Ok(Self {
            serving,
            ca,
            next_ca,
            retired_cas,
        })
    }
}

pub(crate) fn keyed(
    cert_pem: String,
    key_pem: String,
    what: &str,
) -> Result<KeyedCertificate, Error> {
    let parsed = ParsedCertificate::from_pem(&cert_pem, what)?;
    if public_key_of(&key_pem, TLS_KEY)? != parsed.public_key {
        return Err(Error::InvalidCertificate {
            what: what.to_owned(),
            reason: format!("{TLS_KEY} does not belong to it"),
        });
    }
    Ok(KeyedCertificate {
        cert_pem,
        key_pem,
        parsed,
    })
}

fn public_key_of(key_pem: &str, what: &str) -> Result<Vec<u8>, Error> {
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| Error::InvalidCertificate {
        what: what.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(key.public_key_raw().to_vec())
}

fn push_pem(bundle: &mut String, pem: &str) {
    if !bundle.ends_with('\n') {
        bundle.push('\n');
    }
    bundle.push_str(pem);
}

/// PEM of one DER certificate, with the LF line endings `rcgen` writes.
pub fn der_to_pem(der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der), config)
}
