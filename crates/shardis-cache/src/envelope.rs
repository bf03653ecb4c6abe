//! The bytes stored in Redis: a fixed header (format version, codec, compression, flags,
//! written-at, soft expiry, load time) followed by the encoded, maybe compressed, value.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::raw;

/// First byte of every envelope: marks bytes written by shardis-cache.
const MAGIC: u8 = 0xC7;
/// The envelope format this build writes and reads.
pub(crate) const FORMAT: u8 = 1;
/// Header length in bytes.
pub(crate) const HEADER: usize = 25;
const FLAG_NEGATIVE: u8 = 1;

/// How values are serialized. The codec is recorded in each envelope, so a cache reads
/// entries written with another codec (a rolling codec change needs no flush).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// JSON via `serde_json` (the default): readable with `redis-cli`.
    Json,
    /// MessagePack via `rmp-serde` (struct fields by name): smaller and faster than JSON.
    MessagePack,
    /// The value's bytes as they are, for values that serialize as bytes or a string
    /// (`Vec<u8>`, `String`, `bytes::Bytes`, ...); anything else fails to encode.
    Raw,
}

impl Codec {
    fn tag(self) -> u8 {
        match self {
            Codec::Json => 1,
            Codec::MessagePack => 2,
            Codec::Raw => 3,
        }
    }

    fn from_tag(tag: u8) -> Option<Codec> {
        match tag {
            1 => Some(Codec::Json),
            2 => Some(Codec::MessagePack),
            3 => Some(Codec::Raw),
            _ => None,
        }
    }

    /// Encodes `value` with this codec.
    pub fn encode<V: Serialize + ?Sized>(self, value: &V) -> Result<Vec<u8>, String> {
        match self {
            Codec::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
            Codec::MessagePack => rmp_serde::to_vec_named(value).map_err(|e| e.to_string()),
            Codec::Raw => raw::to_vec(value).map_err(|e| e.to_string()),
        }
    }

    /// Decodes bytes written by [`Codec::encode`] with the same codec.
    pub fn decode<V: DeserializeOwned>(self, bytes: &[u8]) -> Result<V, String> {
        match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            Codec::MessagePack => rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
            Codec::Raw => raw::from_slice(bytes).map_err(|e| e.to_string()),
        }
    }
}

/// Whether encoded values are compressed before they are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Never compress (the default).
    None,
    /// LZ4 (`lz4_flex`, size-prepended block) for encoded values of at least `min_size` bytes;
    /// smaller values, and values that do not shrink, are stored as they are.
    Lz4 {
        /// The smallest encoded size that is compressed.
        min_size: usize,
    },
}

impl Compression {
    /// LZ4 above `min_size` bytes.
    pub fn lz4_above(min_size: usize) -> Compression {
        Compression::Lz4 { min_size }
    }
}

/// Why stored bytes are not a value this cache can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the header.
    #[error("{0} bytes, shorter than the {HEADER}-byte envelope header")]
    Truncated(usize),
    /// Does not start with the envelope's magic byte (written by something else).
    #[error("not a shardis-cache envelope (first byte {0:#04x})")]
    NotAnEnvelope(u8),
    /// An envelope format this build does not know.
    #[error("envelope format {0} is not supported (this build reads {FORMAT})")]
    Format(u8),
    /// An unknown codec tag.
    #[error("unknown codec tag {0}")]
    Codec(u8),
    /// An unknown compression tag.
    #[error("unknown compression tag {0}")]
    Compression(u8),
    /// The compressed payload does not decompress.
    #[error("payload does not decompress: {0}")]
    Decompress(String),
    /// The payload does not decode as the value type with the recorded codec.
    #[error("payload does not decode: {0}")]
    Payload(String),
}

/// The metadata of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// The codec the payload was written with.
    pub codec: Codec,
    /// Whether the payload is LZ4-compressed.
    pub compressed: bool,
    /// A cached "not found" (negative caching): no payload value.
    pub negative: bool,
    /// When it was written, milliseconds since the Unix epoch.
    pub written_at_ms: u64,
    /// When it stops being fresh, milliseconds since the Unix epoch.
    pub soft_expiry_ms: u64,
    /// How long the load that produced it took, in milliseconds (XFetch's delta).
    pub load_ms: u32,
}

/// Encodes `value` (`None`: a negative entry) into an envelope.
pub fn encode<V: Serialize>(
    value: Option<&V>,
    codec: Codec,
    compression: Compression,
    written_at_ms: u64,
    soft_expiry_ms: u64,
    load_ms: u32,
) -> Result<Vec<u8>, String> {
    let payload = match value {
        Some(v) => codec.encode(v)?,
        None => Vec::new(),
    };
    let (payload, compressed) = match compression {
        Compression::Lz4 { min_size } if payload.len() >= min_size && !payload.is_empty() => {
            let packed = lz4_flex::compress_prepend_size(&payload);
            if packed.len() < payload.len() {
                (packed, true)
            } else {
                (payload, false)
            }
        }
        _ => (payload, false),
    };
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(MAGIC);
    out.push(FORMAT);
    out.push(codec.tag());
    out.push(u8::from(compressed));
    out.push(if value.is_none() { FLAG_NEGATIVE } else { 0 });
    out.extend_from_slice(&written_at_ms.to_be_bytes());
    out.extend_from_slice(&soft_expiry_ms.to_be_bytes());
    out.extend_from_slice(&load_ms.to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Reads the header of an envelope.
pub fn meta(bytes: &[u8]) -> Result<Meta, DecodeError> {
    if bytes.len() < HEADER {
        return Err(DecodeError::Truncated(bytes.len()));
    }
    if bytes[0] != MAGIC {
        return Err(DecodeError::NotAnEnvelope(bytes[0]));
    }
    if bytes[1] != FORMAT {
        return Err(DecodeError::Format(bytes[1]));
    }
    let codec = Codec::from_tag(bytes[2]).ok_or(DecodeError::Codec(bytes[2]))?;
    let compressed = match bytes[3] {
        0 => false,
        1 => true,
        other => return Err(DecodeError::Compression(other)),
    };
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_be_bytes(b)
    };
    let mut l = [0u8; 4];
    l.copy_from_slice(&bytes[21..25]);
    Ok(Meta {
        codec,
        compressed,
        negative: bytes[4] & FLAG_NEGATIVE != 0,
        written_at_ms: u64_at(5),
        soft_expiry_ms: u64_at(13),
        load_ms: u32::from_be_bytes(l),
    })
}

/// Decodes a whole envelope: its metadata and its value (`None` for a negative entry).
pub fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<(Meta, Option<V>), DecodeError> {
    let meta = meta(bytes)?;
    let payload = &bytes[HEADER..];
    if meta.negative {
        return if payload.is_empty() {
            Ok((meta, None))
        } else {
            Err(DecodeError::Payload("negative entry with a payload".into()))
        };
    }
    let value = if meta.compressed {
        let plain = lz4_flex::decompress_size_prepended(payload)
            .map_err(|e| DecodeError::Decompress(e.to_string()))?;
        meta.codec.decode(&plain)
    } else {
        meta.codec.decode(payload)
    }
    .map_err(DecodeError::Payload)?;
    Ok((meta, Some(value)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Product {
        id: u64,
        name: String,
        price_cents: i64,
        tags: Vec<String>,
        attrs: BTreeMap<String, f32>,
        parent: Option<u64>,
    }

    fn product() -> impl Strategy<Value = Product> {
        (
            any::<u64>(),
            ".{0,40}",
            any::<i64>(),
            proptest::collection::vec(".{0,12}", 0..20),
            proptest::collection::btree_map("[a-z]{1,8}", -1e6f32..1e6f32, 0..8),
            any::<Option<u64>>(),
        )
            .prop_map(|(id, name, price_cents, tags, attrs, parent)| Product {
                id,
                name,
                price_cents,
                tags,
                attrs,
                parent,
            })
    }

    fn compression() -> impl Strategy<Value = Compression> {
        prop_oneof![
            Just(Compression::None),
            (0usize..200).prop_map(Compression::lz4_above)
        ]
    }

    proptest! {
        #[test]
        fn structs_round_trip_through_json_and_messagepack(
            p in product(),
            codec in prop_oneof![Just(Codec::Json), Just(Codec::MessagePack)],
            compression in compression(),
            written in any::<u64>(), soft in any::<u64>(), load in any::<u32>(),
        ) {
            let bytes = encode(Some(&p), codec, compression, written, soft, load).unwrap();
            let (meta, back) = decode::<Product>(&bytes).unwrap();
            prop_assert_eq!(back, Some(p));
            prop_assert_eq!(meta.codec, codec);
            prop_assert_eq!((meta.written_at_ms, meta.soft_expiry_ms, meta.load_ms), (written, soft, load));
            prop_assert!(!meta.negative);
        }

        #[test]
        fn bytes_and_strings_round_trip_raw_and_compress_when_repetitive(
            b in proptest::collection::vec(any::<u8>(), 0..4000),
            s in ".{0,200}",
            repeat in 1usize..50,
            compression in compression(),
        ) {
            let bytes = encode(Some(&b), Codec::Raw, compression, 1, 2, 3).unwrap();
            prop_assert_eq!(decode::<Vec<u8>>(&bytes).unwrap().1, Some(b.clone()));
            // Raw stores the bytes as they are when not compressed.
            let m = meta(&bytes).unwrap();
            if !m.compressed {
                prop_assert_eq!(&bytes[HEADER..], &b[..]);
            }
            let text = s.repeat(repeat);
            let bytes = encode(Some(&text), Codec::Raw, compression, 1, 2, 3).unwrap();
            prop_assert_eq!(decode::<String>(&bytes).unwrap().1, Some(text.clone()));
            // Compression never makes an entry larger than the uncompressed one.
            prop_assert!(bytes.len() <= HEADER + text.len());
            if let Compression::Lz4 { min_size } = compression && text.len() >= 64.max(min_size) && !s.is_empty() && repeat >= 8 {
                prop_assert!(meta(&bytes).unwrap().compressed, "a repetitive {}-byte string was not compressed", text.len());
            }
        }

        #[test]
        fn negative_entries_round_trip(codec in prop_oneof![Just(Codec::Json), Just(Codec::MessagePack), Just(Codec::Raw)], soft in any::<u64>()) {
            let bytes = encode::<String>(None, codec, Compression::lz4_above(0), 7, soft, 9).unwrap();
            let (meta, v) = decode::<String>(&bytes).unwrap();
            prop_assert!(meta.negative);
            prop_assert_eq!(v, None);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_truncations_fail(
            junk in proptest::collection::vec(any::<u8>(), 0..300),
            p in product(),
            cut in any::<prop::sample::Index>(),
        ) {
            let _ = decode::<Product>(&junk);
            let bytes = encode(Some(&p), Codec::MessagePack, Compression::lz4_above(16), 1, 2, 3).unwrap();
            let cut = cut.index(bytes.len());
            prop_assert!(decode::<Product>(&bytes[..cut]).is_err(), "a {cut}-byte prefix of {} decoded", bytes.len());
        }
    }

    #[test]
    fn another_codec_or_foreign_bytes_do_not_decode() {
        let p = Product {
            id: 1,
            name: "x".into(),
            price_cents: 2,
            tags: vec![],
            attrs: BTreeMap::new(),
            parent: None,
        };
        assert!(matches!(
            decode::<Product>(br#"{"id":1,"name":"x"}"#),
            Err(DecodeError::Truncated(_)) | Err(DecodeError::NotAnEnvelope(_))
        ));
        let mut bytes = encode(Some(&p), Codec::Json, Compression::None, 1, 2, 3).unwrap();
        bytes[2] = 2; // claims MessagePack, holds JSON
        assert!(matches!(
            decode::<Product>(&bytes),
            Err(DecodeError::Payload(_))
        ));
        bytes[1] = 9;
        assert_eq!(decode::<Product>(&bytes), Err(DecodeError::Format(9)));
        // A struct is not raw bytes.
        assert!(encode(Some(&p), Codec::Raw, Compression::None, 1, 2, 3).is_err());
    }
}
