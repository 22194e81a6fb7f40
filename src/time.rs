//! RFC 3339 / ISO 8601 timestamps as express-session writes them (`Date.prototype.toJSON`:
//! `2026-11-26T12:00:00.000Z`), converted to and from Unix milliseconds. The core never reads a
//! clock: callers pass `now` in.

/// Milliseconds since the Unix epoch of an RFC 3339 date-time (`T` or space separator,
/// optional fraction, `Z` or `±HH:MM`). `None` for anything else.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            // Keep millisecond precision, as JavaScript's Date does.
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let h = digits(b, i + 1, 2)?;
            let m = digits(b, i + 4, 2)?;
            if h > 23 || m > 59 {
                return None;
            }
            let total = h * 60 + m;
            if sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// `Date.prototype.toISOString` of Unix milliseconds: `YYYY-MM-DDTHH:MM:SS.sssZ`.
pub fn format_rfc3339_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// An HTTP date (RFC 7231 IMF-fixdate) for `Expires`: `Thu, 26 Nov 2026 12:00:00 GMT`.
pub fn format_http_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000) / 1000;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[inline(always)]
fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let slice = b.get(at..at + n)?;
    slice.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

/// `x / 100` for `0 <= x < 43_699` as a multiply and a shift: at opt-level "z" a division by
/// a constant stays a division instruction, and a date took seven of them.
fn div100(x: i64) -> i64 {
    debug_assert!((0..43_699).contains(&x));
    (x * 5243) >> 19
}

/// For the four-digit years an RFC 3339 date has (0 to 9999).
fn is_leap(year: i64) -> bool {
    let centuries = div100(year);
    year & 3 == 0 && (year != centuries * 100 || centuries & 3 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's days_from_civil for the four-digit years an RFC 3339 date has (0 to 9999),
/// without a division instruction: the year is moved one 400-year era on so that it is never
/// negative, and divisions by constants are shifts or [`div100`].
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    /// Days from March 1 to the first of each month, March first.
    const MONTH_START: [i64; 12] = [0, 31, 61, 92, 122, 153, 184, 214, 245, 275, 306, 337];
    let y = if m <= 2 { y - 1 } else { y } + 400;
    let era = div100(y) >> 2;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = MONTH_START[mp as usize] + d - 1;
    let doe = yoe * 365 + (yoe >> 2) - div100(yoe) + doy;
    (era - 1) * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_arithmetic_without_division_is_the_plain_one() {
        fn days_from_civil_reference(y: i64, m: i64, d: i64) -> i64 {
            let y = if m <= 2 { y - 1 } else { y };
            let era = y.div_euclid(400);
            let yoe = y - era * 400;
            let mp = (m + 9) % 12;
            let doy = (153 * mp + 2) / 5 + d - 1;
            let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
            era * 146_097 + doe - 719_468
        }
        for x in 0..43_699 {
            assert_eq!(div100(x), x / 100, "{x}");
        }
        for year in 0..=9999 {
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            assert_eq!(is_leap(year), leap, "{year}");
            for month in 1..=12 {
                for day in [1, 15, days_in_month(year, month)] {
                    assert_eq!(
                        days_from_civil(year, month, day),
                        days_from_civil_reference(year, month, day),
                        "{year}-{month}-{day}"
                    );
                }
            }
        }
    }

    #[test]
    fn parses_what_express_session_writes() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2026-11-26T12:00:00.000Z"),
            Some(1_795_694_400_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T23:59:59.999Z"),
            Some(951_868_799_999)
        );
    }

    #[test]
    fn offsets_and_fractions() {
        let z = parse_rfc3339_ms("2026-11-26T12:00:00Z").unwrap();
        assert_eq!(parse_rfc3339_ms("2026-11-26T13:30:00+01:30"), Some(z));
        assert_eq!(parse_rfc3339_ms("2026-11-26T12:00:00.5Z"), Some(z + 500));
        assert_eq!(
            parse_rfc3339_ms("2026-11-26T12:00:00.123456Z"),
            Some(z + 123)
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2026-11-26",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-26T24:00:00Z",
            "2026-11-26T12:00:00",
            "2026-11-26T12:00:00.Z",
            "2026-11-26T12:00:00Zjunk",
            "２０２６-11-26T12:00:00Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    /// Regression (found by fuzz/rfc3339): a leap second was accepted, which `Date.parse`
    /// rejects, and "9999-12-31T23:59:60Z" parsed to year 10000, which does not format back.
    #[test]
    fn regression_leap_second_is_rejected_like_date_parse() {
        assert_eq!(parse_rfc3339_ms("2026-01-01T00:00:60Z"), None);
        assert_eq!(parse_rfc3339_ms("9999-12-31T23:59:60Z"), None);
    }

    #[test]
    fn http_dates() {
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            format_http_date(1_795_694_400_000),
            "Thu, 26 Nov 2026 12:00:00 GMT"
        );
    }

    #[test]
    fn format_round_trips() {
        for ms in [0, 951_868_799_999, 1_795_694_400_000, -1] {
            assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(ms)), Some(ms));
        }
        assert_eq!(
            format_rfc3339_ms(1_795_694_400_000),
            "2026-11-26T12:00:00.000Z"
        );
    }
}
