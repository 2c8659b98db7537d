//! `cron_restart` patterns as PM2 reads them (its `croner`: 5 fields, or 6 with seconds first;
//! no year field), and their next run in the daemon's local time (`TZ` honoured by chrono).
//! Used by the CLI to refuse a bad pattern and by the daemon to schedule restarts.

use chrono::{DateTime, Local};
use croner::parser::{CronParser, Year};
use croner::Cron;

/// The pattern parsed, or why it is not one (the caller names the key and the pattern).
pub fn parse(pattern: &str) -> Result<Cron, String> {
    // croner would take a 7th (year) field; PM2's croner does not.
    CronParser::builder()
        .year(Year::Disallowed)
        .build()
        .parse(pattern.trim())
        .map_err(|e| e.to_string())
}

/// The first run strictly after `now`, or `None` when the pattern never runs again.
pub fn next_after(cron: &Cron, now: &DateTime<Local>) -> Option<DateTime<Local>> {
    cron.find_next_occurrence(now, false).ok()
}

/// The next run of `pattern` from now, ms since the epoch (for `describe`).
pub fn next_run_ms(pattern: &str) -> Option<i64> {
    let cron = parse(pattern).ok()?;
    next_after(&cron, &Local::now()).map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn five_and_six_fields_are_patterns_seven_are_not() {
        assert!(parse("0 3 * * *").is_ok());
        assert!(parse("*/1 * * * * *").is_ok());
        assert!(parse("@daily").is_ok());
        assert!(parse("0 0 3 * * * 2030").is_err());
        assert!(parse("0 25 * * *").is_err(), "hour out of range");
        assert!(parse("* * * *").is_err());
    }

    #[test]
    fn next_run_is_strictly_later_and_in_local_time() {
        let cron = parse("30 2 * * *").unwrap();
        let now = Local.with_ymd_and_hms(2030, 1, 1, 2, 30, 0).unwrap();
        let next = next_after(&cron, &now).unwrap();
        assert_eq!(next, Local.with_ymd_and_hms(2030, 1, 2, 2, 30, 0).unwrap());
        let every_second = parse("* * * * * *").unwrap();
        let n = next_after(&every_second, &now).unwrap();
        assert_eq!((n - now).num_seconds(), 1);
    }
}
