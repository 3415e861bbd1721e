//! Datetimes in the ATProto profile of RFC 3339: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`,
//! uppercase `T` and `Z`, a timezone always present and `-00:00` refused.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};

use super::{SyntaxError, SyntaxKind};

/// Generous cap: the longest valid form is 25 characters plus fractional digits.
const DATETIME_MAX_LEN: usize = 64;

/// The fields of a syntactically valid datetime, before any range checks.
struct Parts {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    offset_minutes: i64,
}

fn fail<T>(reason: &'static str) -> Result<T, SyntaxError> {
    Err(SyntaxError::new(SyntaxKind::Datetime, reason))
}

/// Checks datetime syntax only (field ranges such as month 13 are caught by [`parse_datetime`]).
pub fn validate_datetime(s: &str) -> Result<(), SyntaxError> {
    split(s).map(|_| ())
}

/// Parses a datetime into UTC, rejecting impossible dates and times and any instant before
/// year 0 once the offset is applied.
pub fn parse_datetime(s: &str) -> Result<DateTime<Utc>, SyntaxError> {
    let p = split(s)?;
    let Some(date) = NaiveDate::from_ymd_opt(p.year, p.month, p.day) else {
        return fail("not a calendar date");
    };
    // Leap seconds are refused: chrono would accept 60 but JavaScript and most stores do not.
    if p.second > 59 {
        return fail("second out of range");
    }
    let Some(naive) = date.and_hms_nano_opt(p.hour, p.minute, p.second, p.nanos) else {
        return fail("time of day out of range");
    };
    let Some(utc) = naive.checked_sub_signed(TimeDelta::minutes(p.offset_minutes)) else {
        return fail("out of range once the offset is applied");
    };
    let utc = utc.and_utc();
    if utc.year() < 0 {
        return fail("before year 0 once the offset is applied");
    }
    Ok(utc)
}

/// Splits the fixed-width fields out of the string, enforcing the syntax.
fn split(s: &str) -> Result<Parts, SyntaxError> {
    let b = s.as_bytes();
    if b.len() > DATETIME_MAX_LEN {
        return fail("too long");
    }
    if b.len() < 20 {
        return fail("too short");
    }
    let digits = |range: std::ops::Range<usize>| -> Result<u32, SyntaxError> {
        let mut n = 0u32;
        for &c in &b[range] {
            if !c.is_ascii_digit() {
                return fail("expected a digit");
            }
            n = n * 10 + u32::from(c - b'0');
        }
        Ok(n)
    };
    let year = digits(0..4)?;
    let month = digits(5..7)?;
    let day = digits(8..10)?;
    let hour = digits(11..13)?;
    let minute = digits(14..16)?;
    let second = digits(17..19)?;
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return fail("expected YYYY-MM-DDTHH:MM:SS");
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            // Digits past nanosecond precision are accepted and dropped.
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        let count = i - start;
        if count == 0 {
            return fail("empty fractional seconds");
        }
        for _ in count..9 {
            nanos *= 10;
        }
    }
    let offset_minutes = match &b[i..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let all_digits = [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit());
            if !all_digits {
                return fail("malformed timezone offset");
            }
            let hours = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let minutes = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if hours > 23 || minutes > 59 {
                return fail("timezone offset out of range");
            }
            let total = hours * 60 + minutes;
            if *sign == b'-' {
                if total == 0 {
                    return fail("\"-00:00\" is not allowed");
                }
                -total
            } else {
                total
            }
        }
        _ => return fail("timezone must be \"Z\" or \"+HH:MM\""),
    };
    let Ok(year) = i32::try_from(year) else {
        return fail("year out of range");
    };
    Ok(Parts {
        year,
        month,
        day,
        hour,
        minute,
        second,
        nanos,
        offset_minutes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_to_utc_with_offset_and_fraction() {
        let cases = [
            ("1985-04-12T23:20:50.123Z", "1985-04-12T23:20:50.123+00:00"),
            (
                "1985-04-12T23:20:50.123-07:00",
                "1985-04-13T06:20:50.123+00:00",
            ),
            ("1985-04-12T23:20:50Z", "1985-04-12T23:20:50+00:00"),
            (
                "1985-04-12T23:20:50.1234567891234Z",
                "1985-04-12T23:20:50.123456789+00:00",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_datetime(input).map(|d| d.to_rfc3339()),
                Ok(want.to_owned()),
                "{input}"
            );
        }
    }
}
