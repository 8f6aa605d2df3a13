//! Kubernetes resource quantities ("500m", "2", "1.5Gi", "1e3") as numbers, for deriving Ray's
//! logical resources from container limits.

use serde_json::Value;

/// The value of a quantity given as a JSON string or number, or `None` if it doesn't parse.
pub fn parse(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => parse_str(text),
        _ => None,
    }
}

/// The value of a quantity string such as "500m", "4Gi", "1.5", "2e3".
pub fn parse_str(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let base: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => 10f64.powi(exponent[1..].parse().ok()?),
        _ => return None,
    };
    let value = base * factor;
    value.is_finite().then_some(value)
}

/// A quantity rounded up to a whole number, as Kubernetes' `Quantity.Value()` does
/// (so "500m" CPUs is 1).
pub fn ceil_integer(value: &Value) -> Option<i64> {
    parse(value).map(|v| v.ceil() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_decimal_binary_and_exponent_suffixes() {
        assert_eq!(parse_str("500m"), Some(0.5));
        assert_eq!(parse_str("2"), Some(2.0));
        assert_eq!(parse_str("1.5"), Some(1.5));
        assert_eq!(parse_str("4Gi"), Some(4.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(parse_str("2G"), Some(2e9));
        assert_eq!(parse_str("1e3"), Some(1000.0));
        assert_eq!(parse_str("abc"), None);
        assert_eq!(parse_str("1Xi"), None);
    }

    #[test]
    fn rounds_up_like_kubernetes() {
        assert_eq!(ceil_integer(&json!("500m")), Some(1));
        assert_eq!(ceil_integer(&json!(3)), Some(3));
        assert_eq!(ceil_integer(&json!("1Gi")), Some(1073741824));
        assert_eq!(ceil_integer(&json!(true)), None);
    }
}
