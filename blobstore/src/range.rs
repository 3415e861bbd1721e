//! `ByteRange`: a requested byte range (as in an HTTP `Range` header) and its resolution
//! against an object's size, following RFC 9110 §14.1.2.

use std::ops::Range;

/// A requested range of bytes. Resolved against the object's size by [`ByteRange::resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=start-` (to the end) or `bytes=start-last` (inclusive `last`).
    From {
        /// First byte wanted.
        start: u64,
        /// Last byte wanted, inclusive; clamped to the last byte of the object.
        last: Option<u64>,
    },
    /// `bytes=-len`: the final `len` bytes (the whole object when it is shorter).
    Suffix(u64),
}

impl ByteRange {
    /// The half-open byte range this selects in an object of `size` bytes, or `None` when
    /// unsatisfiable (a start at or past the end, an inverted range, a zero-length suffix, or
    /// any range of an empty object).
    pub fn resolve(&self, size: u64) -> Option<Range<u64>> {
        match *self {
            Self::From { start, last } => {
                if start >= size || last.is_some_and(|last| last < start) {
                    return None;
                }
                let end = last.map_or(size, |last| last.saturating_add(1).min(size));
                Some(start..end)
            }
            Self::Suffix(len) => {
                if len == 0 || size == 0 {
                    return None;
                }
                Some(size.saturating_sub(len)..size)
            }
        }
    }

    /// False for ranges no object can satisfy whatever its size: an end before the start, or
    /// a zero-length suffix.
    pub fn is_well_formed(&self) -> bool {
        match *self {
            Self::From { start, last } => last.is_none_or(|last| last >= start),
            Self::Suffix(len) => len > 0,
        }
    }

    /// The `Range` header value for this range (`bytes=…`), as sent to S3.
    pub fn to_header(&self) -> String {
        match *self {
            Self::From { start, last: None } => format!("bytes={start}-"),
            Self::From {
                start,
                last: Some(last),
            } => format!("bytes={start}-{last}"),
            Self::Suffix(len) => format!("bytes=-{len}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(start: u64, last: Option<u64>) -> ByteRange {
        ByteRange::From { start, last }
    }

    #[test]
    fn resolve_table() {
        let cases = [
            (from(0, Some(0)), 10, Some(0..1)),
            (from(3, Some(5)), 10, Some(3..6)),
            (from(9, Some(9)), 10, Some(9..10)),
            (from(9, None), 10, Some(9..10)),
            (from(0, None), 10, Some(0..10)),
            (from(4, Some(100)), 10, Some(4..10)),
            (from(0, Some(u64::MAX)), 10, Some(0..10)),
            (from(10, None), 10, None),
            (from(10, Some(12)), 10, None),
            (from(5, Some(4)), 10, None),
            (from(0, None), 0, None),
            (ByteRange::Suffix(1), 10, Some(9..10)),
            (ByteRange::Suffix(4), 10, Some(6..10)),
            (ByteRange::Suffix(10), 10, Some(0..10)),
            (ByteRange::Suffix(50), 10, Some(0..10)),
            (ByteRange::Suffix(0), 10, None),
            (ByteRange::Suffix(5), 0, None),
        ];
        for (range, size, want) in cases {
            assert_eq!(range.resolve(size), want, "{range:?} of {size}");
        }
    }

    #[test]
    fn well_formed() {
        assert!(from(3, Some(3)).is_well_formed());
        assert!(from(3, None).is_well_formed());
        assert!(!from(3, Some(2)).is_well_formed());
        assert!(ByteRange::Suffix(1).is_well_formed());
        assert!(!ByteRange::Suffix(0).is_well_formed());
    }

    #[test]
    fn header_forms() {
        assert_eq!(from(0, None).to_header(), "bytes=0-");
        assert_eq!(from(2, Some(7)).to_header(), "bytes=2-7");
        assert_eq!(ByteRange::Suffix(3).to_header(), "bytes=-3");
    }
}
