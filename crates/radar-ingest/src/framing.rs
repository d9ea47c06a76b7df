//! The Confluent schema-registry wire format (also Karapace's and Redpanda's): byte 0 is
//! `0x00`, bytes 1–4 the schema id, big-endian, then the payload. A Protobuf payload
//! starts with its message indexes (see [`crate::protobuf`]).

use crate::Malformed;

/// The schema id and the payload of a Confluent-framed record.
pub fn split(record: &[u8]) -> Result<(u32, &[u8]), Malformed> {
    match record {
        [0, a, b, c, d, payload @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), payload)),
        [0, ..] => Err(Malformed::new(
            "shorter than the 5-byte schema-registry header",
        )),
        [first, ..] => Err(Malformed(
            format!("not the schema-registry wire format (first byte {first:#04x}, not 0x00)")
                .into(),
        )),
        [] => Err(Malformed::new("empty record")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_gives_the_id_and_the_payload() {
        assert_eq!(split(&[0, 0, 0, 1, 2, 9, 9]), Ok((258, &[9u8, 9][..])));
        assert_eq!(split(&[0, 0, 0, 0, 7]), Ok((7, &[][..])));
        assert!(split(&[1, 0, 0, 0, 7]).unwrap_err().0.contains("0x01"));
        assert!(split(&[0, 0, 0]).is_err());
        assert!(split(&[]).is_err());
    }
}
