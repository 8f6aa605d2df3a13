//! Cron schedules as a RayCronJob reads them: KubeRay parses `spec.schedule` with Go's
//! `cron.ParseStandard`, so the same text must mean the same instants here. Five fields
//! (minute, hour, day of month, month, day of week) with `*`, `?`, lists, ranges, steps and
//! month/weekday names, or a descriptor (`@hourly`, `@daily`, `@every 90m`, ...).
//!
//! When both day fields are restricted a day matches either of them (classic cron); when one
//! is `*` (or `?`) only the other decides.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::validation::go_duration;

/// How far ahead the next run is looked for; a schedule with no date in this window (such as
/// the 30th of February) never runs.
const SEARCH_DAYS: i32 = 5 * 366;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CronError {
    #[error("expected exactly 5 fields (minute hour day-of-month month day-of-week), found {0}")]
    FieldCount(usize),
    #[error(
        "unknown descriptor {0:?}; use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>"
    )]
    Descriptor(String),
    #[error("@every: {0}")]
    Every(String),
    #[error("@every needs a positive duration, got {0:?}")]
    EveryNotPositive(String),
    #[error("{field} field {text:?}: {reason}")]
    Field {
        field: &'static str,
        text: String,
        reason: String,
    },
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Fields(Fields),
    /// `@every <duration>`: runs that far apart, counted from the previous run.
    Every(SignedDuration),
}

/// The allowed values of each field, one bit per value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// The day-of-month field was `*` or `?`.
    any_day_of_month: bool,
    /// The day-of-week field was `*` or `?`.
    any_day_of_week: bool,
}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
/// Names start at the field's minimum: `JAN` is 1, `SUN` is 0.
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, CronError> {
        let text = text.trim();
        if let Some(descriptor) = text.strip_prefix('@') {
            return descriptor_schedule(descriptor);
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(CronError::FieldCount(fields.len()));
        };
        let (days_of_month, any_day_of_month) = parse_field(dom, &DAY_OF_MONTH)?;
        let (days_of_week, any_day_of_week) = parse_field(dow, &DAY_OF_WEEK)?;
        Ok(Schedule::Fields(Fields {
            minutes: parse_field(minute, &MINUTE)?.0,
            hours: parse_field(hour, &HOUR)?.0,
            days_of_month,
            months: parse_field(month, &MONTH)?.0,
            days_of_week,
            any_day_of_month,
            any_day_of_week,
        }))
    }

    /// The first run strictly after `after`, with the fields read as wall-clock time in `zone`;
    /// `None` when there is none in the next five years.
    pub fn next_after(&self, after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        match self {
            Schedule::Every(every) => {
                // Whole seconds, as Go's cron does.
                let start = Timestamp::from_second(after.as_second()).ok()?;
                start.checked_add(*every).ok()
            }
            Schedule::Fields(fields) => fields.next_after(after, zone),
        }
    }
}

impl Fields {
    fn next_after(&self, after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let local = after.to_zoned(zone.clone()).datetime();
        let mut date = local.date();
        let mut first_hour = local.hour();
        // The minute after `after`'s minute; 60 means "the next hour".
        let mut first_minute = local.minute() + 1;
        for _ in 0..SEARCH_DAYS {
            if self.day_matches(date) {
                for hour in first_hour..24 {
                    if !has(self.hours, hour) {
                        first_minute = 0;
                        continue;
                    }
                    for minute in first_minute..60 {
                        if !has(self.minutes, minute) {
                            continue;
                        }
                        let wall =
                            DateTime::from_parts(date, jiff::civil::time(hour, minute, 0, 0));
                        // A wall time skipped by a DST jump runs at the moment after the jump.
                        let instant = zone.to_ambiguous_timestamp(wall).compatible().ok()?;
                        if instant > after {
                            return Some(instant);
                        }
                    }
                    first_minute = 0;
                }
            }
            date = date.tomorrow().ok()?;
            first_hour = 0;
            first_minute = 0;
        }
        None
    }

    fn day_matches(&self, date: Date) -> bool {
        if !has(self.months, date.month()) {
            return false;
        }
        let by_month_day = has(self.days_of_month, date.day());
        let by_weekday = has(self.days_of_week, date.weekday().to_sunday_zero_offset());
        if self.any_day_of_month || self.any_day_of_week {
            by_month_day && by_weekday
        } else {
            by_month_day || by_weekday
        }
    }
}

fn has(bits: u64, value: i8) -> bool {
    u32::try_from(value).is_ok_and(|v| v < 64 && bits & (1 << v) != 0)
}

fn descriptor_schedule(descriptor: &str) -> Result<Schedule, CronError> {
    let fields = match descriptor {
        "yearly" | "annually" => "0 0 1 1 *",
        "monthly" => "0 0 1 * *",
        "weekly" => "0 0 * * 0",
        "daily" | "midnight" => "0 0 * * *",
        "hourly" => "0 * * * *",
        _ => {
            let Some(duration) = descriptor.strip_prefix("every ") else {
                return Err(CronError::Descriptor(format!("@{descriptor}")));
            };
            let duration = duration.trim();
            let nanos = go_duration::parse(duration).map_err(CronError::Every)?;
            // Go rounds the interval down to whole seconds, with a minimum of one.
            let seconds = nanos / 1_000_000_000;
            if nanos <= 0 {
                return Err(CronError::EveryNotPositive(duration.to_string()));
            }
            return Ok(Schedule::Every(SignedDuration::from_secs(seconds.max(1))));
        }
    };
    Schedule::parse(fields)
}

/// The bits of one field, and whether it was `*`/`?` (any value).
fn parse_field(text: &str, spec: &FieldSpec) -> Result<(u64, bool), CronError> {
    let error = |reason: String| CronError::Field {
        field: spec.name,
        text: text.to_string(),
        reason,
    };
    let mut bits = 0u64;
    let mut any = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .map_err(|_| error(format!("step {step:?} is not a number")))?;
                if step == 0 {
                    return Err(error("a step must be at least 1".into()));
                }
                (range, Some(step))
            }
            None => (part, None),
        };
        let (low, high) = if range == "*" || range == "?" {
            // `*/2` is a step over every value, not "any".
            any |= step.is_none_or(|s| s == 1);
            (spec.min, spec.max)
        } else if let Some((low, high)) = range.split_once('-') {
            (
                value(low, spec).map_err(&error)?,
                value(high, spec).map_err(&error)?,
            )
        } else {
            let low = value(range, spec).map_err(&error)?;
            // `5/15` means from 5 to the end, every 15.
            (low, if step.is_some() { spec.max } else { low })
        };
        if low > high {
            return Err(error(format!("range start {low} is beyond its end {high}")));
        }
        let step = step.unwrap_or(1);
        let mut v = low;
        while v <= high {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, any))
}

fn value(text: &str, spec: &FieldSpec) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(index) = spec.names.iter().position(|name| *name == lower) {
        return u32::try_from(index)
            .map(|i| i + spec.min)
            .map_err(|e| e.to_string());
    }
    let number: u32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number or a name"))?;
    if number < spec.min || number > spec.max {
        return Err(format!(
            "{number} is out of range [{}, {}]",
            spec.min, spec.max
        ));
    }
    Ok(number)
}

/// The zone a schedule's wall-clock times are read in: `spec.timeZone`, or UTC when unset.
/// Names come from the IANA database built into raygate, so they work on any image.
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, CronError> {
    match name {
        None => Ok(TimeZone::UTC),
        Some("Local") => Ok(TimeZone::system()),
        Some(name) => TimeZone::get(name).map_err(|_| CronError::TimeZone(name.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Timestamp {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn next(schedule: &str, after: &str) -> String {
        let schedule = Schedule::parse(schedule).unwrap_or_else(|e| panic!("{schedule}: {e}"));
        schedule
            .next_after(utc(after), &TimeZone::UTC)
            .map(|t| t.to_string())
            .unwrap_or_else(|| "never".into())
    }

    #[test]
    fn every_minute_is_the_next_whole_minute() {
        assert_eq!(
            next("* * * * *", "2026-11-26T10:15:30Z"),
            "2026-11-26T10:16:00Z"
        );
        assert_eq!(
            next("* * * * *", "2026-11-26T10:15:00Z"),
            "2026-11-26T10:16:00Z"
        );
    }

    #[test]
    fn fields_ranges_steps_and_names() {
        assert_eq!(
            next("*/15 * * * *", "2026-11-26T10:15:00Z"),
            "2026-11-26T10:30:00Z"
        );
        assert_eq!(
            next("5/20 * * * *", "2026-11-26T10:46:00Z"),
            "2026-11-26T11:05:00Z"
        );
        assert_eq!(
            next("0 9-17/4 * * *", "2026-11-26T13:00:00Z"),
            "2026-11-26T17:00:00Z"
        );
        assert_eq!(
            next("30 2 * * MON-FRI", "2026-11-27T03:00:00Z"),
            "2026-11-30T02:30:00Z"
        );
        assert_eq!(
            next("0 0 1 jan,Jul *", "2026-11-26T00:00:00Z"),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-03-01T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
    }

    #[test]
    fn restricted_day_fields_match_either_unless_one_is_any() {
        // The 1st of the month or any Friday (2026-11-27 is a Friday).
        assert_eq!(
            next("0 0 1 * 5", "2026-11-26T12:00:00Z"),
            "2026-11-27T00:00:00Z"
        );
        // `?` in day-of-month: only Fridays count.
        assert_eq!(
            next("0 0 ? * 5", "2026-11-26T12:00:00Z"),
            "2026-11-27T00:00:00Z"
        );
        assert_eq!(
            next("0 0 ? * 1", "2026-11-26T12:00:00Z"),
            "2026-11-30T00:00:00Z"
        );
        // A stepped star restricts: the 1st, 3rd, ... or a Monday.
        assert_eq!(
            next("0 0 */2 * 1", "2026-11-27T12:00:00Z"),
            "2026-11-29T00:00:00Z"
        );
    }

    #[test]
    fn descriptors() {
        assert_eq!(
            next("@hourly", "2026-11-26T10:15:00Z"),
            "2026-11-26T11:00:00Z"
        );
        assert_eq!(
            next("@daily", "2026-11-26T10:15:00Z"),
            "2026-11-27T00:00:00Z"
        );
        assert_eq!(
            next("@midnight", "2026-11-26T10:15:00Z"),
            "2026-11-27T00:00:00Z"
        );
        assert_eq!(
            next("@weekly", "2026-11-26T10:15:00Z"),
            "2026-11-29T00:00:00Z"
        );
        assert_eq!(
            next("@monthly", "2026-11-26T10:15:00Z"),
            "2026-12-01T00:00:00Z"
        );
        assert_eq!(
            next("@yearly", "2026-11-26T10:15:00Z"),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            next("@every 90m", "2026-11-26T10:15:00.5Z"),
            "2026-11-26T11:45:00Z"
        );
    }

    #[test]
    fn impossible_dates_never_run() {
        assert_eq!(next("0 0 30 2 *", "2026-11-26T10:15:00Z"), "never");
    }

    #[test]
    fn time_zones_and_daylight_saving() {
        let zone = time_zone(Some("America/New_York")).unwrap_or_else(|e| panic!("{e}"));
        let schedule = Schedule::parse("0 9 * * *").unwrap_or_else(|e| panic!("{e}"));
        // 09:00 in New York is 14:00 UTC in winter, 13:00 in summer.
        let winter = schedule.next_after(utc("2026-11-26T00:00:00Z"), &zone);
        assert_eq!(
            winter.map(|t| t.to_string()).as_deref(),
            Some("2026-11-26T14:00:00Z")
        );
        let summer = schedule.next_after(utc("2026-07-01T00:00:00Z"), &zone);
        assert_eq!(
            summer.map(|t| t.to_string()).as_deref(),
            Some("2026-07-01T13:00:00Z")
        );
        // 02:30 doesn't exist on 2026-03-08 in New York: it runs when the clock jumps (03:00 EDT).
        let skipped = Schedule::parse("30 2 8 3 *").unwrap_or_else(|e| panic!("{e}"));
        let at = skipped.next_after(utc("2026-03-01T00:00:00Z"), &zone);
        assert_eq!(
            at.map(|t| t.to_string()).as_deref(),
            Some("2026-03-08T07:30:00Z")
        );
        assert_eq!(time_zone(None), Ok(TimeZone::UTC));
        assert_eq!(
            time_zone(Some("Mars/Olympus_Mons")).map(|_| ()),
            Err(CronError::TimeZone("Mars/Olympus_Mons".into()))
        );
    }

    #[test]
    fn errors_name_the_field_and_the_problem() {
        let error = |text: &str| match Schedule::parse(text) {
            Ok(schedule) => panic!("{text} parsed as {schedule:?}"),
            Err(error) => error.to_string(),
        };
        assert_eq!(
            error("* * * *"),
            "expected exactly 5 fields (minute hour day-of-month month day-of-week), found 4"
        );
        assert_eq!(
            error("60 * * * *"),
            "minute field \"60\": 60 is out of range [0, 59]"
        );
        assert_eq!(
            error("* * * * 7"),
            "day-of-week field \"7\": 7 is out of range [0, 6]"
        );
        assert_eq!(
            error("* * * FOO *"),
            "month field \"FOO\": \"FOO\" is not a number or a name"
        );
        assert_eq!(
            error("*/0 * * * *"),
            "minute field \"*/0\": a step must be at least 1"
        );
        assert_eq!(
            error("5-1 * * * *"),
            "minute field \"5-1\": range start 5 is beyond its end 1"
        );
        assert!(error("@fortnightly").starts_with("unknown descriptor \"@fortnightly\""));
        assert_eq!(
            error("@every soon"),
            "@every: time: invalid duration \"soon\""
        );
    }
}
