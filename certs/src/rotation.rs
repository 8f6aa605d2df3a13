//! When to renew what: a pure function of the stored certificates and the time.
//!
//! The API server must never meet a serving certificate it can't verify, so the CA changes in
//! three steps, each at least an overlap apart:
//! 1. at 2/3 of the CA's lifetime a new CA joins the trusted bundle (`caBundle`) while the
//!    old CA's serving certificate is still served;
//! 2. once every API server has had the overlap to see that bundle, serving certificates
//!    switch to the new CA; the old CA stays trusted for replicas that haven't reloaded yet;
//! 3. when the old CA expires it leaves the bundle.
//!
//! Serving certificates are renewed at 2/3 of their lifetime, which the CA's trust covers.

use std::time::Duration;

use time::OffsetDateTime;

use crate::Error;
use crate::bundle::CertBundle;
use crate::issue::{BACKDATE, ServingNames, issue_ca, issue_serving};

/// How long new certificates live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    serving: Duration,
    ca: Duration,
}

/// Below this, a ticking loop and the API server's informer can't keep up with renewals.
pub const MIN_SERVING_LIFETIME: Duration = Duration::from_secs(15);

impl Lifetimes {
    /// The serving certificate must live at most half as long as the CA: serving renewals
    /// (at 2/3) then always fall inside one CA's validity, and the CA's overlap (1/6 of its
    /// lifetime) is at least as long as the serving certificate's renewal margin (1/3).
    pub fn new(serving: Duration, ca: Duration) -> Result<Self, Error> {
        if serving < MIN_SERVING_LIFETIME || serving.saturating_mul(2) > ca {
            return Err(Error::Lifetimes { serving, ca });
        }
        Ok(Self { serving, ca })
    }

    pub fn serving(&self) -> Duration {
        self.serving
    }

    pub fn ca(&self) -> Duration {
        self.ca
    }

    /// How long a new CA is trusted before it signs, and an old one after.
    pub fn ca_overlap(&self) -> Duration {
        self.ca / 6
    }

    /// How often to look again: fine enough to hit each renewal point, and no busier.
    pub fn check_interval(&self) -> Duration {
        (self.serving / 20).clamp(Duration::from_secs(1), Duration::from_secs(300))
    }
}

/// One change to the stored certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing usable is stored (or the signing CA expired): a new CA and serving certificate.
    Issue,
    /// A new serving certificate from the same CA.
    RenewServing,
    /// A new CA joins the trusted bundle; serving is unchanged.
    StartCaRotation,
    /// Serving certificates now come from the new CA; the old one stays trusted.
    SwitchToNextCa,
    /// An expired retired CA leaves the trusted bundle.
    DropRetiredCa,
}

impl Step {
    /// A name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Issue => "issue",
            Step::RenewServing => "renew_serving",
            Step::StartCaRotation => "start_ca_rotation",
            Step::SwitchToNextCa => "switch_to_next_ca",
            Step::DropRetiredCa => "drop_retired_ca",
        }
    }
}

/// The next change due at `now`, if any.
pub fn next_step(
    bundle: Option<&CertBundle>,
    names: &ServingNames,
    lifetimes: &Lifetimes,
    now: OffsetDateTime,
) -> Option<Step> {
    let Some(bundle) = bundle else {
        return Some(Step::Issue);
    };
    let ca = &bundle.ca.parsed;
    if now >= ca.not_after {
        // Nothing signed by it verifies any more; a trusted successor is the only way out
        // without a gap.
        return Some(match &bundle.next_ca {
            Some(next) if next.parsed.is_valid_at(now) => Step::SwitchToNextCa,
            _ => Step::Issue,
        });
    }
    if bundle.retired_cas.iter().any(|old| now >= old.not_after) {
        return Some(Step::DropRetiredCa);
    }
    if let Some(next) = &bundle.next_ca {
        let trusted_since = next.parsed.not_before + BACKDATE;
        if now >= trusted_since + lifetimes.ca_overlap() {
            return Some(Step::SwitchToNextCa);
        }
    } else if now + lifetimes.ca / 3 >= ca.not_after {
        return Some(Step::StartCaRotation);
    }
    let serving = &bundle.serving.parsed;
    let misfit = !serving.is_signed_by(ca)
        || !names.is_covered_by(&serving.names)
        || !serving.is_valid_at(now);
    // A renewal is clamped to the CA's notAfter; once the serving certificate already ends
    // there, renewing again would gain nothing (the CA switch will).
    let renewal_gains = (now + lifetimes.serving).min(ca.not_after) > serving.not_after;
    let due = now + lifetimes.serving / 3 >= serving.not_after && renewal_gains;
    (misfit || due).then_some(Step::RenewServing)
}

/// `bundle` with `step` made.
pub fn apply(
    bundle: Option<CertBundle>,
    step: Step,
    names: &ServingNames,
    lifetimes: &Lifetimes,
    now: OffsetDateTime,
) -> Result<CertBundle, Error> {
    let issue_fresh = || -> Result<CertBundle, Error> {
        let ca = issue_ca(now, lifetimes.ca)?;
        let serving = issue_serving(&ca, names, now, lifetimes.serving)?;
        Ok(CertBundle {
            serving,
            ca,
            next_ca: None,
            retired_cas: Vec::new(),
        })
    };
    let Some(mut bundle) = bundle else {
        return issue_fresh();
    };
    // Keep names that other replicas (say, mid-rollout with different flags) asked for, so
    // two configurations converge instead of re-issuing over each other.
    let names = names.union(&bundle.serving.parsed.names);
    match step {
        Step::Issue => return issue_fresh(),
        Step::RenewServing => {
            bundle.serving = issue_serving(&bundle.ca, &names, now, lifetimes.serving)?;
        }
        Step::StartCaRotation => {
            bundle.next_ca = Some(issue_ca(now, lifetimes.ca)?);
        }
        Step::SwitchToNextCa => {
            let Some(next) = bundle.next_ca.take() else {
                return Ok(bundle);
            };
            bundle.serving = issue_serving(&next, &names, now, lifetimes.serving)?;
            let old = std::mem::replace(&mut bundle.ca, next);
            if now < old.parsed.not_after {
                bundle.retired_cas.push(old.parsed);
            }
        }
        Step::DropRetiredCa => bundle.retired_cas.retain(|old| now < old.not_after),
    }
    Ok(bundle)
}

/// Every step due at `now` applied in turn, or `None` when nothing is due.
pub fn plan(
    bundle: Option<&CertBundle>,
    names: &ServingNames,
    lifetimes: &Lifetimes,
    now: OffsetDateTime,
) -> Result<Option<(Vec<Step>, CertBundle)>, Error> {
    let mut current = bundle.cloned();
    let mut steps = Vec::new();
    // Each step settles its own condition, so a handful covers any state; the bound only
    // guards against a bug turning into a busy loop.
    for _ in 0..6 {
        match next_step(current.as_ref(), names, lifetimes, now) {
            None => break,
            Some(step) => {
                current = Some(apply(current, step, names, lifetimes, now)?);
                steps.push(step);
            }
        }
    }
    Ok(current.filter(|_| !steps.is_empty()).map(|b| (steps, b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVING: Duration = Duration::from_secs(30);
    const CA: Duration = Duration::from_secs(90);

    fn t(seconds: u64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time")
            + Duration::from_secs(seconds)
    }

    fn lifetimes() -> Lifetimes {
        Lifetimes::new(SERVING, CA).expect("valid lifetimes")
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

    fn fresh(at: u64) -> CertBundle {
        apply(None, Step::Issue, &names(), &lifetimes(), t(at)).expect("issued")
    }

    fn step_at(bundle: &CertBundle, at: u64) -> Option<Step> {
        next_step(Some(bundle), &names(), &lifetimes(), t(at))
    }

    #[test]
    fn nothing_stored_means_issue() {
        assert_eq!(
            next_step(None, &names(), &lifetimes(), t(0)),
            Some(Step::Issue)
        );
    }

    #[test]
    fn a_fresh_bundle_is_kept() {
        let bundle = fresh(0);
        assert_eq!(step_at(&bundle, 0), None);
        assert_eq!(step_at(&bundle, 19), None);
    }

    #[test]
    fn the_serving_certificate_is_renewed_at_two_thirds_of_its_lifetime() {
        let bundle = fresh(0);
        assert_eq!(step_at(&bundle, 20), Some(Step::RenewServing));
        let renewed = apply(
            Some(bundle.clone()),
            Step::RenewServing,
            &names(),
            &lifetimes(),
            t(20),
        )
        .expect("renewed");
        assert_eq!(renewed.ca, bundle.ca, "same CA");
        assert_ne!(renewed.serving, bundle.serving);
        assert!(renewed.serving.parsed.is_signed_by(&renewed.ca.parsed));
        assert_eq!(step_at(&renewed, 21), None);
    }

    #[test]
    fn a_serving_certificate_lacking_a_wanted_name_is_renewed_keeping_its_old_names() {
        let bundle = fresh(0);
        let mut wanted = names();
        wanted.dns.push("raygate.example".to_owned());
        assert_eq!(
            next_step(Some(&bundle), &wanted, &lifetimes(), t(1)),
            Some(Step::RenewServing)
        );
        let renewed = apply(
            Some(bundle),
            Step::RenewServing,
            &wanted,
            &lifetimes(),
            t(1),
        )
        .expect("renewed");
        assert!(wanted.is_covered_by(&renewed.serving.parsed.names));
        assert_eq!(
            next_step(Some(&renewed), &names(), &lifetimes(), t(2)),
            None
        );
    }

    #[test]
    fn the_ca_rotates_in_three_steps_an_overlap_apart() {
        let l = lifetimes();
        let mut bundle = fresh(0);
        let first_ca = bundle.ca.clone();
        let mut history = Vec::new();
        // Walk the clock second by second, as the background loop would.
        for second in 1..=200 {
            if let Some((steps, next)) = plan(Some(&bundle), &names(), &l, t(second)).expect("plan")
            {
                history.extend(steps.iter().map(|s| (second, *s)));
                bundle = next;
            }
            // The invariant the API server depends on: whatever is served verifies against
            // a trusted, valid CA.
            assert!(
                bundle
                    .trusted()
                    .iter()
                    .any(|ca| ca.is_valid_at(t(second)) && bundle.serving.parsed.is_signed_by(ca)),
                "at {second}s the served certificate is not trusted"
            );
            assert!(bundle.serving.parsed.is_valid_at(t(second)), "at {second}s");
        }
        let ca_steps: Vec<_> = history
            .iter()
            .filter(|(_, s)| *s != Step::RenewServing)
            .copied()
            .collect();
        assert_eq!(
            ca_steps,
            [
                (60, Step::StartCaRotation),
                (75, Step::SwitchToNextCa),
                (90, Step::DropRetiredCa),
                // The second CA was made at 60, so its own rotation starts at 60 + 90 * 2/3.
                (120, Step::StartCaRotation),
                (135, Step::SwitchToNextCa),
                (150, Step::DropRetiredCa),
                (180, Step::StartCaRotation),
                (195, Step::SwitchToNextCa),
            ]
        );
        let renewals = history
            .iter()
            .filter(|(_, s)| *s == Step::RenewServing)
            .count();
        assert!(renewals >= 6, "{history:?}");
        assert_ne!(bundle.ca, first_ca);
    }

    #[test]
    fn during_the_overlap_both_cas_are_trusted_and_the_old_one_still_signs() {
        let bundle = fresh(0);
        let (steps, rotating) = plan(Some(&bundle), &names(), &lifetimes(), t(60))
            .expect("plan")
            .expect("due");
        assert_eq!(steps, [Step::StartCaRotation, Step::RenewServing]);
        assert_eq!(rotating.ca, bundle.ca);
        assert!(rotating.serving.parsed.is_signed_by(&bundle.ca.parsed));
        let trust = rotating.trust_bundle();
        assert_eq!(trust.matches("BEGIN CERTIFICATE").count(), 2, "{trust}");
        assert_eq!(step_at(&rotating, 74), None);
        assert_eq!(step_at(&rotating, 75), Some(Step::SwitchToNextCa));
    }

    #[test]
    fn an_expired_ca_without_a_successor_is_replaced() {
        let bundle = fresh(0);
        assert_eq!(step_at(&bundle, 90), Some(Step::Issue));
    }

    #[test]
    fn an_expired_ca_with_a_valid_successor_switches_at_once() {
        let bundle = fresh(0);
        let rotating = apply(
            Some(bundle),
            Step::StartCaRotation,
            &names(),
            &lifetimes(),
            t(60),
        )
        .expect("rotation started");
        assert_eq!(step_at(&rotating, 95), Some(Step::SwitchToNextCa));
    }

    #[test]
    fn a_serving_certificate_from_an_untrusted_ca_is_renewed() {
        let mut bundle = fresh(0);
        let other = fresh(0);
        bundle.serving = other.serving;
        assert_eq!(step_at(&bundle, 1), Some(Step::RenewServing));
    }

    #[test]
    fn lifetimes_must_leave_room_for_the_overlap() {
        assert!(Lifetimes::new(Duration::from_secs(60), Duration::from_secs(90)).is_err());
        assert!(Lifetimes::new(Duration::from_secs(5), Duration::from_secs(90)).is_err());
        assert!(Lifetimes::new(Duration::from_secs(45), Duration::from_secs(90)).is_ok());
    }

    #[test]
    fn the_bundle_survives_the_secret_round_trip() {
        let bundle = apply(
            Some(fresh(0)),
            Step::StartCaRotation,
            &names(),
            &lifetimes(),
            t(60),
        )
        .expect("rotating");
        let switched = apply(
            Some(bundle.clone()),
            Step::SwitchToNextCa,
            &names(),
            &lifetimes(),
            t(75),
        )
        .expect("switched");
        for bundle in [bundle, switched] {
            let data = bundle.to_secret_data();
            let back = CertBundle::from_secret_data(&data).expect("parses");
            assert_eq!(back.ca.parsed, bundle.ca.parsed);
            assert_eq!(back.ca.key_pem, bundle.ca.key_pem);
            assert_eq!(
                back.next_ca.as_ref().map(|n| &n.parsed),
                bundle.next_ca.as_ref().map(|n| &n.parsed)
            );
            assert_eq!(back.retired_cas, bundle.retired_cas);
            assert_eq!(back.serving, bundle.serving);
            assert_eq!(back.to_secret_data(), data);
        }
    }
}
