//! What `raygate certs status` reports: which mode manages the certificates, when they
//! expire, and whether every webhook's `caBundle` trusts the certificate being served — the
//! usual reason admissions fail with "x509: certificate signed by unknown authority".

use std::fmt::{self, Write as _};

use time::OffsetDateTime;

use crate::bundle::CertBundle;
use crate::manager::WebhookCaBundle;
use crate::parsed::{ParsedCertificate, all_from_pem};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// raygate's own Secret (`raygate webhook --cert-mode self-managed`).
    SelfManaged,
    /// The webhook configurations ask cert-manager's cainjector for their `caBundle`.
    CertManager,
    /// Neither: certificates and `caBundle` were put in place by hand.
    Unmanaged,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::SelfManaged => "self-managed",
            Mode::CertManager => "cert-manager",
            Mode::Unmanaged => "unmanaged",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookTrust {
    /// A valid CA in the bundle signed the served certificate.
    Trusted,
    NoCaBundle,
    /// No CA in the bundle signed it.
    UnknownAuthority,
    /// The CA that signed it has expired.
    CaExpired,
    Unreadable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookStatus {
    pub kind: &'static str,
    pub config: String,
    pub webhook: String,
    pub trust: WebhookTrust,
}

/// The certificates a Secret holds, as status reads them: the served one, and the CAs it
/// carries with the part each plays.
#[derive(Debug, Clone)]
pub struct StatusCertificates {
    pub serving: ParsedCertificate,
    /// The CA that signs serving certificates now (self-managed), or the Secret's `ca.crt`
    /// (cert-manager), if any.
    pub signing_ca: Option<ParsedCertificate>,
    pub next_ca: Option<ParsedCertificate>,
    pub retired_cas: Vec<ParsedCertificate>,
}

impl From<&CertBundle> for StatusCertificates {
    fn from(bundle: &CertBundle) -> Self {
        Self {
            serving: bundle.serving.parsed.clone(),
            signing_ca: Some(bundle.ca.parsed.clone()),
            next_ca: bundle.next_ca.as_ref().map(|next| next.parsed.clone()),
            retired_cas: bundle.retired_cas.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StatusReport {
    pub mode: Mode,
    pub secret: String,
    /// The Secret's certificates, or why they can't be read.
    pub bundle: Result<StatusCertificates, String>,
    pub webhooks: Vec<WebhookStatus>,
    pub now: OffsetDateTime,
}

impl StatusReport {
    pub fn new(
        secret: String,
        secret_is_self_managed: bool,
        bundle: Result<StatusCertificates, String>,
        ca_bundles: &[WebhookCaBundle],
        now: OffsetDateTime,
    ) -> Self {
        let mode = if ca_bundles.iter().any(|hook| hook.inject_ca_from.is_some()) {
            Mode::CertManager
        } else if secret_is_self_managed {
            Mode::SelfManaged
        } else {
            Mode::Unmanaged
        };
        let webhooks = ca_bundles
            .iter()
            .map(|hook| WebhookStatus {
                kind: hook.kind,
                config: hook.config.clone(),
                webhook: hook.webhook.clone(),
                trust: match &bundle {
                    Ok(bundle) => trust(hook, &bundle.serving, now),
                    Err(_) => WebhookTrust::Unreadable("no served certificate to check".into()),
                },
            })
            .collect();
        Self {
            mode,
            secret,
            bundle,
            webhooks,
            now,
        }
    }

    /// Everything an admin must fix; empty when admissions can work.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match &self.bundle {
            Err(error) => problems.push(format!("Secret {}: {error}", self.secret)),
            Ok(bundle) => {
                let serving = &bundle.serving;
                if !serving.is_valid_at(self.now) {
                    problems.push(format!(
                        "the serving certificate is not valid now (notBefore {}, notAfter {})",
                        serving.not_before, serving.not_after
                    ));
                }
                if let Some(ca) = &bundle.signing_ca
                    && !ca.is_valid_at(self.now)
                {
                    problems.push(format!("the CA expired at {}", ca.not_after));
                }
            }
        }
        if self.webhooks.is_empty() {
            problems.push("no webhook configuration found".to_owned());
        }
        for hook in &self.webhooks {
            let what = match &hook.trust {
                WebhookTrust::Trusted => continue,
                WebhookTrust::NoCaBundle => "has no caBundle".to_owned(),
                WebhookTrust::UnknownAuthority => {
                    "caBundle does not hold the CA that signed the served certificate".to_owned()
                }
                WebhookTrust::CaExpired => {
                    "caBundle's CA for the served certificate has expired".to_owned()
                }
                WebhookTrust::Unreadable(reason) => format!("caBundle unreadable: {reason}"),
            };
            problems.push(format!(
                "{} {} webhook {}: {what}",
                hook.kind, hook.config, hook.webhook
            ));
        }
        problems
    }

    /// The text `raygate certs status` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "mode:            {}", self.mode);
        let _ = writeln!(out, "secret:          {}", self.secret);
        if let Ok(bundle) = &self.bundle {
            let line = |out: &mut String, label: &str, cert: &ParsedCertificate| {
                let _ = writeln!(
                    out,
                    "{label:<16} {} (notAfter {}, {})",
                    cert.subject,
                    cert.not_after,
                    remaining(cert, self.now)
                );
            };
            line(&mut out, "serving cert:", &bundle.serving);
            if let Some(ca) = &bundle.signing_ca {
                line(&mut out, "signing CA:", ca);
            }
            if let Some(next) = &bundle.next_ca {
                line(&mut out, "next CA:", next);
            }
            for retired in &bundle.retired_cas {
                line(&mut out, "retired CA:", retired);
            }
        }
        for hook in &self.webhooks {
            let verdict = match &hook.trust {
                WebhookTrust::Trusted => "OK (caBundle trusts the served certificate)".to_owned(),
                WebhookTrust::NoCaBundle => "MISMATCH (no caBundle)".to_owned(),
                WebhookTrust::UnknownAuthority => {
                    "MISMATCH (signed by a CA not in caBundle)".to_owned()
                }
                WebhookTrust::CaExpired => "MISMATCH (its CA has expired)".to_owned(),
                WebhookTrust::Unreadable(reason) => {
                    format!("MISMATCH (caBundle unreadable: {reason})")
                }
            };
            let _ = writeln!(
                out,
                "webhook:         {} {}/{}: {verdict}",
                hook.kind, hook.config, hook.webhook
            );
        }
        let problems = self.problems();
        if problems.is_empty() {
            let _ = writeln!(out, "status:          OK");
        } else {
            for problem in problems {
                let _ = writeln!(out, "problem:         {problem}");
            }
        }
        out
    }
}

fn remaining(cert: &ParsedCertificate, now: OffsetDateTime) -> String {
    let seconds = (cert.not_after - now).whole_seconds();
    if seconds <= 0 {
        "EXPIRED".to_owned()
    } else if seconds < 120 {
        format!("{seconds}s left")
    } else if seconds < 2 * 3600 {
        format!("{}m left", seconds / 60)
    } else if seconds < 2 * 86400 {
        format!("{}h left", seconds / 3600)
    } else {
        format!("{}d left", seconds / 86400)
    }
}

fn trust(hook: &WebhookCaBundle, served: &ParsedCertificate, now: OffsetDateTime) -> WebhookTrust {
    let Some(pem) = &hook.ca_bundle else {
        return WebhookTrust::NoCaBundle;
    };
    let cas = match all_from_pem(pem, "caBundle") {
        Ok(cas) => cas,
        Err(error) => return WebhookTrust::Unreadable(error.to_string()),
    };
    let signers: Vec<&ParsedCertificate> =
        cas.iter().filter(|ca| served.is_signed_by(ca)).collect();
    if signers.is_empty() {
        WebhookTrust::UnknownAuthority
    } else if signers.iter().any(|ca| ca.is_valid_at(now)) {
        WebhookTrust::Trusted
    } else {
        WebhookTrust::CaExpired
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::issue::ServingNames;
    use crate::rotation::{Lifetimes, Step, apply};

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time")
    }

    fn bundle() -> CertBundle {
        let lifetimes =
            Lifetimes::new(Duration::from_secs(30), Duration::from_secs(90)).expect("lifetimes");
        apply(
            None,
            Step::Issue,
            &ServingNames::default(),
            &lifetimes,
            now(),
        )
        .expect("issued")
    }

    fn hook(ca_bundle: Option<String>) -> WebhookCaBundle {
        WebhookCaBundle {
            kind: "ValidatingWebhookConfiguration",
            config: "raygate".to_owned(),
            webhook: "validate.raygate.io".to_owned(),
            ca_bundle,
            inject_ca_from: None,
        }
    }

    #[test]
    fn a_matching_ca_bundle_is_ok() {
        let bundle = bundle();
        let hooks = [hook(Some(bundle.trust_bundle()))];
        let report = StatusReport::new("ns/s".into(), true, Ok((&bundle).into()), &hooks, now());
        assert_eq!(report.mode, Mode::SelfManaged);
        assert!(report.problems().is_empty(), "{}", report.render());
        assert!(report.render().contains("status:          OK"));
    }

    #[test]
    fn another_cas_bundle_is_a_mismatch_naming_the_webhook() {
        let served = bundle();
        let other = bundle();
        let hooks = [hook(Some(other.trust_bundle())), hook(None)];
        let report = StatusReport::new("ns/s".into(), true, Ok((&served).into()), &hooks, now());
        let problems = report.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("validate.raygate.io"), "{problems:?}");
        assert!(problems[0].contains("does not hold the CA"), "{problems:?}");
        assert!(problems[1].contains("no caBundle"), "{problems:?}");
    }

    #[test]
    fn an_expired_serving_certificate_is_a_problem() {
        let bundle = bundle();
        let hooks = [hook(Some(bundle.trust_bundle()))];
        let later = now() + Duration::from_secs(120);
        let report = StatusReport::new("ns/s".into(), true, Ok((&bundle).into()), &hooks, later);
        let text = report.render();
        assert!(text.contains("EXPIRED"), "{text}");
        assert!(!report.problems().is_empty());
    }
}
