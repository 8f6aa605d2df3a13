//! Go's `time.ParseDuration` syntax ("30m", "1h30m", "1.5h", "300ms"), which KubeRay uses for
//! the `ray.io/initializing-timeout` annotation: a sign, then one or more decimal numbers each
//! followed by a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`). A bare "0" is allowed.

const NANOS_PER_UNIT: [(&str, u128); 9] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),  // µs, MICRO SIGN
    ("\u{3bc}s", 1_000), // μs, GREEK SMALL LETTER MU
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("", 0),
];

/// The duration in nanoseconds, or Go's error message.
pub(crate) fn parse(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{text}\"");
    let (negative, mut rest) = match text.chars().next() {
        Some('-') => (true, &text[1..]),
        Some('+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let limit: u128 = 1 << 63;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_digits, after_int) = rest.split_at(int_len);
        let (frac_digits, after_number) = match after_int.strip_prefix('.') {
            Some(after_dot) => {
                let frac_len = after_dot
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(after_dot.len());
                after_dot.split_at(frac_len)
            }
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid());
        }
        let unit_len = after_number
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration \"{text}\""));
        }
        let Some(&(_, nanos)) = NANOS_PER_UNIT
            .iter()
            .find(|(name, nanos)| *name == unit && *nanos > 0)
        else {
            return Err(format!(
                "time: unknown unit \"{unit}\" in duration \"{text}\""
            ));
        };
        let whole: u128 = if int_digits.is_empty() {
            0
        } else {
            int_digits.parse().map_err(|_| invalid())?
        };
        let mut value = whole.checked_mul(nanos).ok_or_else(invalid)?;
        // Fractions beyond 18 digits can't change a nanosecond count.
        let frac_digits = &frac_digits[..frac_digits.len().min(18)];
        if !frac_digits.is_empty() {
            let numerator: u128 = frac_digits.parse().map_err(|_| invalid())?;
            let scale = 10u128.pow(frac_digits.len() as u32);
            value += numerator * nanos / scale;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > limit {
            return Err(invalid());
        }
        rest = after_unit;
    }
    if negative {
        Ok(-(total as i128) as i64)
    } else if total >= limit {
        Err(invalid())
    } else {
        Ok(total as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    #[test]
    fn parses_what_go_parses() {
        assert_eq!(parse("30m"), Ok(30 * 60 * SECOND));
        assert_eq!(parse("1h30m"), Ok(90 * 60 * SECOND));
        assert_eq!(parse("45s"), Ok(45 * SECOND));
        assert_eq!(parse("1.5h"), Ok(90 * 60 * SECOND));
        assert_eq!(parse(".5s"), Ok(SECOND / 2));
        assert_eq!(parse("300ms"), Ok(300_000_000));
        assert_eq!(parse("2us"), Ok(2_000));
        assert_eq!(parse("2µs"), Ok(2_000));
        assert_eq!(parse("7ns"), Ok(7));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("-5m"), Ok(-300 * SECOND));
        assert_eq!(parse("+5s"), Ok(5 * SECOND));
        assert_eq!(parse("0s"), Ok(0));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "", "30", "m", "-", ".s", "1x", "1h 30m", "1.2.3s", "5 m", "h1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse("30").unwrap_err().contains("missing unit"));
        assert!(parse("1d").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(parse("9999999999999999999999999h").is_err());
        assert!(parse("3000000h").is_err());
        assert!(parse("2562047h").is_ok());
    }
}
