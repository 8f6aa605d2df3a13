//! Kubernetes resource quantities (`500m`, `2`, `4Gi`, `1e3`, `1.5G`), read exactly enough to
//! compare them: the value in nano-units as an integer, so `1` and `1000m` are equal and
//! `1Gi` is larger than `1G`. The grammar is apimachinery's:
//! `[+-]?digits[.digits](Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?digits)?`.

/// A quantity's value in nano-units (10^-9), rounded up like apimachinery rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    nanos: i128,
}

pub const ONE_GIB: Quantity = Quantity {
    nanos: (1i128 << 30) * 1_000_000_000,
};

impl Quantity {
    /// The value as a float, for messages and for comparing with Ray's float parameters.
    pub fn as_f64(self) -> f64 {
        self.nanos as f64 / 1e9
    }

    /// The value in nano-units, for sums (policy limits add up a whole cluster).
    pub fn nanos(self) -> i128 {
        self.nanos
    }

    pub fn from_nanos(nanos: i128) -> Self {
        Self { nanos }
    }
}

/// The grammar's error, as the API server words it.
pub fn invalid_message(text: &str) -> String {
    format!(
        "quantity \"{text}\" is not a valid Kubernetes quantity: it must match \
         '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (e.g. 500m, 2, 4Gi)"
    )
}

pub fn parse(text: &str) -> Option<Quantity> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    let (int_digits, frac_digits) = number.split_once('.').unwrap_or((number, ""));
    if frac_digits.contains('.') || (int_digits.is_empty() && frac_digits.is_empty()) {
        return None;
    }
    let (exp10, exp2) = suffix_exponents(suffix)?;
    // More digits than an i128 holds in nano-units; no real quantity has them.
    if int_digits.len() + frac_digits.len() > 30 {
        return None;
    }
    // Only ASCII digits are left (the split above stops at anything else), at most 30 of them.
    let mantissa = int_digits
        .bytes()
        .chain(frac_digits.bytes())
        .fold(0i128, |mantissa, digit| {
            mantissa * 10 + i128::from(digit - b'0')
        });
    let exp10 = exp10 + 9 - frac_digits.len() as i32;
    let mut nanos = mantissa.checked_mul(1i128.checked_shl(exp2)?)?;
    if exp10 >= 0 {
        nanos = nanos.checked_mul(10i128.checked_pow(exp10 as u32)?)?;
    } else {
        nanos = match 10i128.checked_pow(exp10.unsigned_abs()) {
            Some(divisor) => nanos / divisor + i128::from(nanos % divisor != 0),
            // Smaller than a nano-unit: rounds up to one.
            None => i128::from(nanos != 0),
        };
    }
    Some(Quantity {
        nanos: if negative { -nanos } else { nanos },
    })
}

/// (power of ten, power of two) of a suffix.
fn suffix_exponents(suffix: &str) -> Option<(i32, u32)> {
    let decimal = match suffix {
        "" => Some(0),
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(exp10) = decimal {
        return Some((exp10, 0));
    }
    let binary = match suffix {
        "Ki" => Some(10),
        "Mi" => Some(20),
        "Gi" => Some(30),
        "Ti" => Some(40),
        "Pi" => Some(50),
        "Ei" => Some(60),
        _ => None,
    };
    if let Some(exp2) = binary {
        return Some((0, exp2));
    }
    let exponent = suffix.strip_prefix(['e', 'E'])?;
    let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 3 {
        return None;
    }
    let exp10: i32 = exponent.parse().ok()?;
    Some((exp10, 0))
}

/// A quantity given as a JSON string or number, rounded up to a whole number as Kubernetes'
/// `Quantity.Value()` does (so "500m" CPUs is 1). `None` when it doesn't parse.
pub fn ceil_integer(value: &serde_json::Value) -> Option<i64> {
    let quantity = match value {
        serde_json::Value::String(text) => parse(text)?,
        serde_json::Value::Number(number) => parse(&number.to_string())?,
        _ => return None,
    };
    const NANOS: i128 = 1_000_000_000;
    let whole =
        quantity.nanos.div_euclid(NANOS) + i128::from(quantity.nanos.rem_euclid(NANOS) != 0);
    i64::try_from(whole).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        parse(text).unwrap_or_else(|| panic!("{text} should parse"))
    }

    #[test]
    fn equal_values_in_different_spellings_are_equal() {
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1k"), q("1e3"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("0.5"), q("500m"));
        assert_eq!(q(".5"), q("500m"));
        assert_eq!(q("1Gi"), ONE_GIB);
        assert_eq!(q("+2"), q("2"));
    }

    #[test]
    fn orders_values() {
        assert!(q("1G") < q("1Gi"));
        assert!(q("2") > q("1500m"));
        assert!(q("512Mi") < ONE_GIB);
        assert!(q("-1") < q("0"));
        assert!(q("100n") < q("1m"));
        assert_eq!(q("4").as_f64(), 4.0);
        assert_eq!(q("0.1n"), q("1n"), "rounds up like apimachinery");
    }

    #[test]
    fn rejects_what_the_api_server_rejects() {
        for bad in [
            "", "abc", "1K", "1gi", "1.2.3", ".", "1e", "Gi", "1 Gi", "--1", "1Gib", "1e+",
        ] {
            assert!(parse(bad).is_none(), "{bad:?} parsed");
        }
    }

    #[test]
    fn huge_values_do_not_panic() {
        assert!(parse("99999999999999999999999999999999999999999").is_none());
        assert!(parse("999999999999Ei").is_none());
        assert!(parse("1e999").is_none());
        assert_eq!(parse("1e-999"), parse("1n"));
    }

    #[test]
    fn rounds_up_like_kubernetes() {
        use serde_json::json;
        assert_eq!(ceil_integer(&json!("500m")), Some(1));
        assert_eq!(ceil_integer(&json!(3)), Some(3));
        assert_eq!(ceil_integer(&json!(1.5)), Some(2));
        assert_eq!(ceil_integer(&json!("1Gi")), Some(1073741824));
        assert_eq!(ceil_integer(&json!("2G")), Some(2_000_000_000));
        assert_eq!(ceil_integer(&json!(true)), None);
        assert_eq!(ceil_integer(&json!("abc")), None);
    }
}
