//! Segment records: the leaves of the log tree. The type and its byte
//! encoding are the verifier crate's (`sealtrail_verify::record`, LEDGER.md
//! §5), so the writer and every verifier share one definition.

pub use sealtrail_verify::record::{
    ByteReader, MAX_ORIGIN_LEN, RECORD_VERSION, RecordError, SegmentRecord,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentRecord {
        SegmentRecord {
            origin: "clinic.example/log".into(),
            number: 7,
            first_index: 1000,
            count: 16,
            min_time_ms: -5,
            max_time_ms: 1_800_000_000_000,
            root: [3; 32],
            prev: [9; 32],
        }
    }

    #[test]
    fn round_trips() {
        let r = sample();
        let bytes = r.to_bytes();
        assert_eq!(bytes.len(), 1 + 2 + r.origin.len() + 40 + 64);
        assert_eq!(SegmentRecord::from_bytes(&bytes).unwrap(), r);
    }

    #[test]
    fn rejects_every_truncation_and_trailing_bytes() {
        let bytes = sample().to_bytes();
        for n in 0..bytes.len() {
            assert!(
                SegmentRecord::from_bytes(&bytes[..n]).is_err(),
                "prefix {n}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            SegmentRecord::from_bytes(&long),
            Err(RecordError::Invalid("has 1 trailing bytes".into()))
        );
    }

    #[test]
    fn rejects_bad_version_and_empty_segment() {
        let mut bytes = sample().to_bytes();
        bytes[0] = 2;
        assert_eq!(
            SegmentRecord::from_bytes(&bytes),
            Err(RecordError::Invalid("version 2 is not supported".into()))
        );
        let mut r = sample();
        r.count = 0;
        assert_eq!(
            SegmentRecord::from_bytes(&r.to_bytes()),
            Err(RecordError::Invalid("has no events".into()))
        );
    }
}
