//! PM2's day.js date tokens (`log_date_format`, `time`, rotated file names, `pmr logs`
//! timestamps): used by the daemon and the CLI alike.

use chrono::{DateTime, Datelike, Local, Offset, TimeZone, Timelike};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Format a time (ms since the epoch, local time zone) with day.js tokens:
/// `YYYY YY M MM MMM MMMM D DD d dd ddd dddd H HH h hh m mm s ss SSS A a Z ZZ X x`, and
/// `[literal text]`. Anything else is copied as is (as day.js does).
pub fn dayjs(fmt: &str, ms: i64) -> String {
    let t = Local
        .timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(|| DateTime::<Local>::from(std::time::UNIX_EPOCH));
    dayjs_at(fmt, &t)
}

pub fn dayjs_at<Tz: TimeZone>(fmt: &str, t: &DateTime<Tz>) -> String {
    let b = fmt.as_bytes();
    let mut out = String::with_capacity(fmt.len() + 8);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'[' {
            if let Some(end) = fmt[i + 1..].find(']') {
                out.push_str(&fmt[i + 1..i + 1 + end]);
                i += end + 2;
                continue;
            }
        }
        // Length of the run of the same letter, e.g. "YYYY" → 4.
        let run = b[i..].iter().take_while(|&&x| x == c).count();
        let (text, used): (String, usize) = match (c, run) {
            (b'Y', r) if r >= 4 => (format!("{:04}", t.year()), 4),
            (b'Y', r) if r >= 2 => (format!("{:02}", t.year().rem_euclid(100)), 2),
            (b'M', r) if r >= 4 => (MONTHS[t.month0() as usize].into(), 4),
            (b'M', 3) => (MONTHS[t.month0() as usize][..3].into(), 3),
            (b'M', 2) => (format!("{:02}", t.month()), 2),
            (b'M', _) => (t.month().to_string(), 1),
            (b'D', r) if r >= 2 => (format!("{:02}", t.day()), 2),
            (b'D', _) => (t.day().to_string(), 1),
            (b'd', r) if r >= 4 => (DAYS[wd(t)].into(), 4),
            (b'd', 3) => (DAYS[wd(t)][..3].into(), 3),
            (b'd', 2) => (DAYS[wd(t)][..2].into(), 2),
            (b'd', _) => (wd(t).to_string(), 1),
            (b'H', r) if r >= 2 => (format!("{:02}", t.hour()), 2),
            (b'H', _) => (t.hour().to_string(), 1),
            (b'h', r) if r >= 2 => (format!("{:02}", h12(t)), 2),
            (b'h', _) => (h12(t).to_string(), 1),
            (b'm', r) if r >= 2 => (format!("{:02}", t.minute()), 2),
            (b'm', _) => (t.minute().to_string(), 1),
            (b's', r) if r >= 2 => (format!("{:02}", t.second()), 2),
            (b's', _) => (t.second().to_string(), 1),
            (b'S', r) if r >= 3 => (format!("{:03}", t.timestamp_subsec_millis()), 3),
            (b'S', 2) => (format!("{:02}", t.timestamp_subsec_millis() / 10), 2),
            (b'S', _) => ((t.timestamp_subsec_millis() / 100).to_string(), 1),
            (b'A', _) => ((if t.hour() < 12 { "AM" } else { "PM" }).into(), 1),
            (b'a', _) => ((if t.hour() < 12 { "am" } else { "pm" }).into(), 1),
            (b'Z', r) if r >= 2 => (offset(t, ""), 2),
            (b'Z', _) => (offset(t, ":"), 1),
            (b'X', _) => (t.timestamp().to_string(), 1),
            (b'x', _) => (t.timestamp_millis().to_string(), 1),
            _ => {
                // Copy one character (which may be multi-byte).
                let ch = fmt[i..].chars().next().unwrap();
                out.push(ch);
                i += ch.len_utf8();
                continue;
            }
        };
        out.push_str(&text);
        i += used;
    }
    out
}

fn wd<Tz: TimeZone>(t: &DateTime<Tz>) -> usize {
    t.weekday().num_days_from_sunday() as usize
}

fn h12<Tz: TimeZone>(t: &DateTime<Tz>) -> u32 {
    match t.hour() % 12 {
        0 => 12,
        h => h,
    }
}

fn offset<Tz: TimeZone>(t: &DateTime<Tz>, sep: &str) -> String {
    let secs = t.offset().fix().local_minus_utc();
    let sign = if secs < 0 { '-' } else { '+' };
    let m = secs.abs() / 60;
    format!("{sign}{:02}{sep}{:02}", m / 60, m % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    #[test]
    fn dayjs_tokens() {
        let tz = FixedOffset::east_opt(2 * 3600).unwrap();
        let t =
            tz.with_ymd_and_hms(2026, 3, 7, 14, 5, 9).unwrap() + chrono::Duration::milliseconds(42);
        assert_eq!(dayjs_at("YYYY-MM-DDTHH:mm:ss", &t), "2026-03-07T14:05:09");
        assert_eq!(
            dayjs_at("YYYY-MM-DD HH:mm:ss.SSS Z", &t),
            "2026-03-07 14:05:09.042 +02:00"
        );
        assert_eq!(dayjs_at("YY M D H m s ZZ", &t), "26 3 7 14 5 9 +0200");
        assert_eq!(
            dayjs_at("MMM MMMM ddd dddd dd d", &t),
            "Mar March Sat Saturday Sa 6"
        );
        assert_eq!(dayjs_at("h:mm A a hh", &t), "2:05 PM pm 02");
        assert_eq!(dayjs_at("[at] HH [o'clock] é", &t), "at 14 o'clock é");
        assert_eq!(dayjs_at("X", &t), t.timestamp().to_string());
        assert_eq!(dayjs_at("YYYY-MM-DD_HH-mm-ss", &t), "2026-03-07_14-05-09");
    }
}
