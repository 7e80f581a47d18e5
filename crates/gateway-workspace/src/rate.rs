//! Rate strings such as `100/minute`.

use std::time::Duration;

/// A number of requests allowed per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
}

/// Parses `<count>/<period>` where period is `second`, `minute`, `hour` or `day`
/// (also plural, `s`/`m`/`h`/`d`, or `<n> <unit>` such as `100/5 minutes`).
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let invalid = || {
        format!(
            "invalid rate '{text}': expected '<count>/<second|minute|hour|day>', e.g. '100/minute'"
        )
    };
    let (count, period) = text.split_once('/').ok_or_else(invalid)?;
    let count: u32 = count.trim().parse().map_err(|_| invalid())?;
    if count == 0 {
        return Err(format!("invalid rate '{text}': count must be at least 1"));
    }
    let period = period.trim();
    let (multiplier, unit) = match period.split_once(' ') {
        Some((n, unit)) => (n.trim().parse::<u64>().map_err(|_| invalid())?, unit.trim()),
        None => (1, period),
    };
    let seconds: u64 = match unit.trim_end_matches('s') {
        "second" | "sec" | "" => 1,
        "minute" | "min" | "m" => 60,
        "hour" | "h" => 3600,
        "day" | "d" => 86_400,
        _ if unit == "s" => 1,
        _ => return Err(invalid()),
    };
    if multiplier == 0 {
        return Err(invalid());
    }
    // `<n> <unit>` is the file's (or the environment's) to choose: a period past u64 seconds
    // would overflow (a panic in debug builds, a wrapped period in release).
    let period = seconds
        .checked_mul(multiplier)
        .ok_or_else(|| format!("invalid rate '{text}': the period is too long"))?;
    Ok(Rate {
        count,
        period: Duration::from_secs(period),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(
            parse_rate("100/minute").unwrap().period,
            Duration::from_secs(60)
        );
        assert_eq!(parse_rate("5/second").unwrap().count, 5);
        assert_eq!(
            parse_rate("10/hours").unwrap().period,
            Duration::from_secs(3600)
        );
        assert_eq!(
            parse_rate("1/d").unwrap().period,
            Duration::from_secs(86_400)
        );
        assert_eq!(parse_rate("3/s").unwrap().period, Duration::from_secs(1));
        assert_eq!(
            parse_rate("100/5 minutes").unwrap().period,
            Duration::from_secs(300)
        );
        assert!(parse_rate("many/minute").is_err());
        assert!(parse_rate("0/minute").is_err());
        assert!(parse_rate("10/fortnight").is_err());
        assert!(parse_rate("10").is_err());
    }

    /// Found reading the parser while writing the `gateway_config` fuzz target (a route's
    /// rate), confirmed with it: the period's seconds overflowed.
    #[test]
    fn a_period_too_long_to_count_is_an_error() {
        for text in ["1/99999999999999999 days", "1/144115188075855872 days"] {
            let err = parse_rate(text).unwrap_err();
            assert!(err.contains("too long"), "{err}");
        }
        assert_eq!(
            parse_rate("1/213503982334601 days").unwrap().period,
            Duration::from_secs(213_503_982_334_601 * 86_400)
        );
    }
}
