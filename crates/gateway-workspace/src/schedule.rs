//! Cron expressions and timezones of schedules.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Parses a cron expression: the classic 5 fields, or 6 with a leading seconds field.
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    let fields = expression.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "invalid cron expression '{expression}': expected 5 fields (minute hour day month weekday), got {fields}"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|err| format!("invalid cron expression '{expression}': {err}"))
}

/// Parses an IANA timezone name.
pub fn parse_timezone(name: &str) -> Result<chrono_tz::Tz, String> {
    name.parse::<chrono_tz::Tz>().map_err(|_| {
        format!("unknown timezone '{name}': use an IANA name such as UTC or Europe/London")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_five_and_six_fields() {
        assert!(parse_cron("0 9 * * 1-5").is_ok());
        assert!(parse_cron("*/2 * * * * *").is_ok());
        assert!(parse_cron("0 9 * *").is_err());
        assert!(parse_cron("61 * * * *").is_err());
        assert!(parse_cron("not a cron at all").is_err());
    }

    #[test]
    fn timezones() {
        assert!(parse_timezone("Europe/London").is_ok());
        assert!(parse_timezone("Mars/Base").is_err());
    }
}
