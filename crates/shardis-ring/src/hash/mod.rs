//! Hash functions: xxh3 for the native ring, and the exact functions ketama deployments use
//! (MD5 for the points; every key hash twemproxy offers, see [`crate::KeyHash`]).
//!
//! Everything here is a compatibility promise: changing an output moves keys in production.

use md5::{Digest, Md5};
use twox_hash::XxHash3_64;

mod twemproxy;

pub use twemproxy::{
    twemproxy_crc16, twemproxy_crc32, twemproxy_crc32a, twemproxy_fnv1_32, twemproxy_fnv1_64,
    twemproxy_fnv1a_32, twemproxy_hsieh, twemproxy_jenkins, twemproxy_murmur,
    twemproxy_one_at_a_time,
};

/// The native ring's key hash: xxh3-64 with seed 0 of the key bytes.
///
/// XXH3 output does not depend on the machine's endianness.
///
/// ```
/// assert_eq!(shardis_ring::hash::xxh3(b"foo"), twox_hash::XxHash3_64::oneshot(b"foo"));
/// ```
#[inline]
pub fn xxh3(key: &[u8]) -> u64 {
    XxHash3_64::oneshot(key)
}

/// The native ring's point `j` of the node called `name`: xxh3-64 (seed 0) of the bytes
/// `name`, `-`, and `j` in decimal without padding (`"redis-a:6379-0"`, `"redis-a:6379-1"`, ...).
///
/// This mirrors the ketama label so that any xxh3 implementation can recompute a ring.
///
/// ```
/// use shardis_ring::hash::{native_point, xxh3};
///
/// assert_eq!(native_point("redis-a", 12), xxh3(b"redis-a-12"));
/// ```
pub fn native_point(name: &str, j: u64) -> u64 {
    let mut label = Vec::with_capacity(name.len() + 21);
    label.extend_from_slice(name.as_bytes());
    xxh3(point_label(&mut label, name.len(), j))
}

/// Writes `-j` after the first `name_len` bytes of `buf` and returns the whole label.
/// Reusing one buffer keeps ring builds free of per-point allocations.
pub(crate) fn point_label(buf: &mut Vec<u8>, name_len: usize, j: u64) -> &[u8] {
    buf.truncate(name_len);
    buf.push(b'-');
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = j;
    loop {
        at -= 1;
        // `rest % 10 < 10`, so the cast cannot truncate.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
    buf
}

/// The four ketama points of one label: the MD5 digest read as four little-endian `u32` words.
///
/// This is twemproxy's `ketama_hash(label, x)` for `x` in `0..4`.
///
/// ```
/// let p = shardis_ring::hash::ketama_points(b"server1-8");
/// assert_eq!(p[0], 3853726576);
/// assert_eq!(p[3], 2667054752);
/// ```
pub fn ketama_points(label: &[u8]) -> [u32; 4] {
    let d = Md5::digest(label);
    let word = |x: usize| u32::from_le_bytes([d[4 * x], d[4 * x + 1], d[4 * x + 2], d[4 * x + 3]]);
    [word(0), word(1), word(2), word(3)]
}

/// MD5 key hash: word 0 of the digest, little-endian (libketama, libmemcached weighted
/// ketama, twemproxy `hash: md5`, uhashring `hashi`).
///
/// ```
/// assert_eq!(shardis_ring::hash::md5(b"apple"), 3195025439);
/// assert_eq!(shardis_ring::hash::md5(b"test"), 3446378249);
/// ```
pub fn md5(key: &[u8]) -> u32 {
    ketama_points(key)[0]
}

/// twemproxy's `hash_fnv1a_64`, which despite its name keeps a 32-bit state: the low 32 bits
/// of the FNV-64 offset basis and prime, and each byte **sign-extended** as a C `char` on x86.
///
/// ```
/// assert_eq!(shardis_ring::hash::twemproxy_fnv1a_64(b"apple"), 1488911807);
/// // Bytes >= 0x80 are sign-extended, as on x86 builds of twemproxy.
/// assert_eq!(shardis_ring::hash::twemproxy_fnv1a_64("é".as_bytes()), 3033280513);
/// ```
pub fn twemproxy_fnv1a_64(key: &[u8]) -> u32 {
    const INIT: u32 = 0x8422_2325; // (uint32_t)0xcbf29ce484222325
    const PRIME: u32 = 0x0000_01b3; // (uint32_t)0x100000001b3
    key.iter().fold(INIT, |h, &b| {
        // `(uint32_t)(char)b` with a signed char: i8 -> i32 -> u32 sign-extends.
        let v = i32::from(b as i8) as u32;
        (h ^ v).wrapping_mul(PRIME)
    })
}

/// twemproxy's `hash_tag`: if `tag[0]` occurs in `key` and `tag[1]` occurs after it with at
/// least one byte between them, only the bytes between are hashed; otherwise the whole key.
///
/// Only the first `tag[0]` and the first `tag[1]` after it count, as in twemproxy.
///
/// ```
/// use shardis_ring::hash::hash_tag;
///
/// assert_eq!(hash_tag(b"user:{42}:name", *b"{}"), b"42");
/// assert_eq!(hash_tag(b"user:{}:name", *b"{}"), b"user:{}:name");
/// assert_eq!(hash_tag(b"plain", *b"{}"), b"plain");
/// ```
pub fn hash_tag(key: &[u8], tag: [u8; 2]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == tag[0]) else {
        return key;
    };
    let inner = &key[open + 1..];
    match inner.iter().position(|&b| b == tag[1]) {
        Some(close) if close > 0 => &inner[..close],
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_name_dash_decimal() {
        let mut buf = b"node".to_vec();
        assert_eq!(point_label(&mut buf, 4, 0), b"node-0");
        assert_eq!(point_label(&mut buf, 4, 159), b"node-159");
        assert_eq!(
            point_label(&mut buf, 4, u64::MAX),
            b"node-18446744073709551615"
        );
        assert_eq!(point_label(&mut buf, 4, 7), b"node-7");
    }

    #[test]
    fn fnv_of_empty_is_the_basis_and_unsigned_bytes_differ() {
        assert_eq!(twemproxy_fnv1a_64(b""), 0x8422_2325);
        // The unsigned-char definition gives 3071811073 for "é"; we must not.
        assert_ne!(twemproxy_fnv1a_64("é".as_bytes()), 3071811073);
    }

    #[test]
    fn hash_tag_with_equal_tag_chars() {
        assert_eq!(hash_tag(b"a$bc$d", *b"$$"), b"bc");
        assert_eq!(hash_tag(b"a{b", *b"{}"), b"a{b");
        assert_eq!(hash_tag(b"}{x}", *b"{}"), b"x");
    }
}
