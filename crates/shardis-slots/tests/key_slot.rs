//! Slot calculator: every vector of the reference §1.3 and checklist §7(a),
//! plus properties against a bit-by-bit CRC16 written from the spec.

use proptest::prelude::*;
use shardis_slots::{SLOT_COUNT, crc16, hash_tag, key_slot};

/// CRC16-XMODEM straight from the definition: poly 0x1021, init 0, MSB first.
fn crc16_reference(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[test]
fn crc_check_value_and_mask() {
    assert_eq!(crc16(b"123456789"), 0x31C3);
    assert_eq!(key_slot(b"123456789"), 12739);
    assert_eq!(crc16(b"a"), 0x7C87);
    assert_eq!(key_slot(b"a"), 15495, "14-bit mask applied");
}

#[test]
fn crc_table_of_section_1_3() {
    let cases: &[(&[u8], u16, u16)] = &[
        (b"123456789", 0x31C3, 12739),
        (b"", 0x0000, 0),
        (b"\x00", 0x0000, 0),
        (b"a", 0x7C87, 15495),
        (b"foo", 0xAF96, 12182),
        (b"bar", 0x93C5, 5061),
        (b"hello", 0xC362, 866),
        (b"key", 0x70FB, 12539),
        (b"{", 0xCFFC, 4092),
        (b"}", 0xAF3A, 12090),
        (b"user1000", 0x4D73, 3443),
        (b"\xff\xff\xff\xff", 0x99CF, 6607),
    ];
    for &(key, crc, slot) in cases {
        assert_eq!(crc16(key), crc, "crc16({key:?})");
        assert_eq!(key_slot(key), slot, "slot({key:?})");
    }
}

#[test]
fn empty_and_nul_keys() {
    assert_eq!(key_slot(b""), 0);
    assert_eq!(key_slot(b"\x00"), 0);
}

#[test]
fn plain_keys() {
    assert_eq!(key_slot(b"foo"), 12182);
    assert_eq!(key_slot(b"bar"), 5061);
    assert_eq!(key_slot(b"hello"), 866);
    assert_eq!(key_slot(b"key"), 12539);
    assert_eq!(key_slot(b"somekey"), 11058);
}

#[test]
fn boundary_keys() {
    assert_eq!(key_slot(b"key:24358"), 0);
    assert_eq!(key_slot(b"key:13358"), 16383);
}

#[test]
fn braces_table_of_section_1_3() {
    let cases: &[(&[u8], &[u8], u16)] = &[
        (b"{user1000}.following", b"user1000", 3443),
        (b"{user1000}.followers", b"user1000", 3443),
        (b"foo{}{bar}", b"foo{}{bar}", 8363),
        (b"foo{{bar}}zap", b"{bar", 4015),
        (b"foo{bar}{zap}", b"bar", 5061),
        (b"{}", b"{}", 15257),
        (b"{", b"{", 4092),
        (b"}", b"}", 12090),
        (b"}{", b"}{", 12793),
        (b"{}{foo}", b"{}{foo}", 2263),
        (b"foo{", b"foo{", 7673),
        (b"foo}", b"foo}", 15679),
        (b"{foo}", b"foo", 12182),
        (b"a{b}c", b"b", 3300),
        (b"{{}}", b"{", 4092),
        (b"{{", b"{{", 7007),
        (b"{a}}", b"a", 15495),
        (b"}{a}", b"a", 15495),
        (b"{a{b}c}", b"a{b", 13340),
        (b"{ab}", b"ab", 13567),
        (b"{user:1000}.name", b"user:1000", 1649),
        (b"\xff\x00{x}", b"x", 16287),
        (b"{abc}xyz", b"abc", 7638),
        (b"somekey", b"somekey", 11058),
    ];
    for &(key, tag, slot) in cases {
        assert_eq!(hash_tag(key), tag, "hash_tag({key:?})");
        assert_eq!(key_slot(key), slot, "slot({key:?})");
    }
}

#[test]
fn same_tag_same_slot() {
    assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
    assert_eq!(key_slot(b"{user1000}.followers"), key_slot(b"user1000"));
}

#[test]
fn empty_tag_hashes_whole_key() {
    assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
    assert_ne!(key_slot(b"{}{foo}"), key_slot(b"foo"));
}

#[test]
fn binary_keys_non_utf8() {
    assert_eq!(key_slot(b"\xff\x00{x}"), 16287);
    assert_eq!(key_slot(b"\xff\xff\xff\xff"), 6607);
    let key: &[u8] = &[0xff, 0x00, b'{', b'x', b'}'];
    assert!(
        std::str::from_utf8(std::hint::black_box(key)).is_err(),
        "not UTF-8, still hashed"
    );
    assert_eq!(key_slot(key), 16287);
}

#[test]
fn no_read_past_length_or_nul_termination() {
    // A sub-slice of a larger buffer: hashing must stop at the slice end, and
    // embedded NULs must be hashed, not treated as terminators.
    let buf = b"foo\x00bar{zz}";
    assert_eq!(key_slot(&buf[..3]), 12182);
    assert_ne!(key_slot(&buf[..7]), key_slot(b"foo"));
    assert_eq!(crc16(&buf[..7]), crc16_reference(b"foo\x00bar"));
    // `{zz}` lies beyond the slice: no tag may be found in it.
    assert_eq!(hash_tag(&buf[..8]), b"foo\x00bar{");
}

/// The tag rule written independently of the crate: first `{`, first `}` after it.
fn tag_reference(key: &[u8]) -> &[u8] {
    if let Some(s) = key.iter().position(|&b| b == b'{')
        && let Some(len) = key[s + 1..].iter().position(|&b| b == b'}')
        && len > 0
    {
        return &key[s + 1..s + 1 + len];
    }
    key
}

proptest! {
    #[test]
    fn crc_matches_bitwise_reference(data in prop::collection::vec(any::<u8>(), 0..64)) {
        prop_assert_eq!(crc16(&data), crc16_reference(&data));
    }

    #[test]
    fn slot_in_range(key in prop::collection::vec(any::<u8>(), 0..64)) {
        prop_assert!((key_slot(&key) as usize) < SLOT_COUNT);
        prop_assert_eq!(key_slot(&key), crc16_reference(tag_reference(&key)) & 0x3FFF);
    }

    #[test]
    fn non_empty_tag_decides_slot(
        prefix in prop::collection::vec(any::<u8>().prop_filter("no brace", |b| *b != b'{'), 0..10),
        tag in prop::collection::vec(any::<u8>().prop_filter("no close", |b| *b != b'}'), 1..10),
        suffix in prop::collection::vec(any::<u8>(), 0..10),
    ) {
        let mut key = prefix.clone();
        key.push(b'{');
        key.extend_from_slice(&tag);
        key.push(b'}');
        key.extend_from_slice(&suffix);
        prop_assert_eq!(hash_tag(&key), &tag[..]);
        prop_assert_eq!(key_slot(&key), key_slot(&tag));
    }

    #[test]
    fn brace_heavy_keys_match_reference(key in prop::collection::vec(
        prop::sample::select(vec![b'{', b'}', b'a', b'b', 0u8, 0xff]), 0..12)) {
        prop_assert_eq!(hash_tag(&key), tag_reference(&key));
    }
}
