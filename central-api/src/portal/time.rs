//! Dates on the pages: Unix seconds as UTC calendar dates and times.

/// `(year, month, day)` of the day `days` after 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `"4 May 2026"`, with no-break spaces so a date never wraps.
pub fn date(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    format!(
        "{d}\u{a0}{}\u{a0}{y}",
        MONTHS[(m as usize).saturating_sub(1) % 12]
    )
}

/// `"4 May 2026, 14:03 UTC"`.
pub fn date_time(unix: i64) -> String {
    let secs = unix.rem_euclid(86_400);
    format!(
        "{}, {:02}:{:02} UTC",
        date(unix),
        secs / 3600,
        secs % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let plain = |s: String| s.replace('\u{a0}', " ");
        assert_eq!(plain(date(0)), "1 Jan 1970");
        assert_eq!(plain(date_time(1_700_000_025)), "14 Nov 2023, 22:13 UTC");
        assert_eq!(plain(date(951_782_400)), "29 Feb 2000");
        assert_eq!(plain(date(-86_400)), "31 Dec 1969");
    }
}
