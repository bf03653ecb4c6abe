//! twemproxy's key hashes (`hash:` in `nutcracker.yml`), bit for bit as an x86-64 build of
//! twemproxy computes them, checked against a real nutcracker (`tests/vectors/twemproxy/`).
//!
//! Several differ from the textbook function of the same name, and that is the point:
//! - C `char` is signed on x86, so where twemproxy widens a key byte as `char`
//!   (`one_at_a_time`, the FNV family, `hsieh`'s 3-byte tail), bytes >= 0x80 are
//!   sign-extended;
//! - `crc16` runs the CRC16-XMODEM table over a 32-bit state that is never masked to 16 bits,
//!   so its result has up to 32 bits (the low 16 are the CRC);
//! - `crc32` is libmemcached's: 15 bits of the CRC-32 (`(crc >> 16) & 0x7fff`); `crc32a` is
//!   the CRC-32 of the standard;
//! - `hsieh` starts from 0 (SuperFastHash starts from the length); `murmur` is MurmurHash2
//!   seeded with `0xdeadbeef * len`; `jenkins` is lookup3's `hashlittle` with initval 13.
//!
//! Each function is the hash alone: the empty-key rule (an empty key hashes to 0) and the
//! hash tag are applied by the ring ([`crate::KetamaRing::hash_key`]).

/// A key byte as twemproxy widens a C `char` on x86: sign-extended to 32 bits.
#[inline]
fn signed(b: u8) -> u32 {
    i32::from(b as i8) as u32
}

/// twemproxy's `hash_one_at_a_time` (Jenkins' one-at-a-time, bytes sign-extended).
///
/// ```
/// use shardis_ring::hash::twemproxy_one_at_a_time;
/// assert_eq!(twemproxy_one_at_a_time(b""), 0);
/// assert_eq!(twemproxy_one_at_a_time(b"a"), 0xca2e_9442);
/// ```
pub fn twemproxy_one_at_a_time(key: &[u8]) -> u32 {
    let mut h = key.iter().fold(0u32, |mut h, &b| {
        h = h.wrapping_add(signed(b));
        h = h.wrapping_add(h << 10);
        h ^ (h >> 6)
    });
    h = h.wrapping_add(h << 3);
    h ^= h >> 11;
    h.wrapping_add(h << 15)
}

/// twemproxy's `hash_fnv1_64`: 64-bit FNV-1 (multiply, then xor the sign-extended byte),
/// truncated to its low 32 bits.
///
/// ```
/// use shardis_ring::hash::twemproxy_fnv1_64;
/// assert_eq!(twemproxy_fnv1_64(b""), 0x8422_2325);
/// assert_eq!(twemproxy_fnv1_64(b"a"), 0x8601_b7be);
/// ```
pub fn twemproxy_fnv1_64(key: &[u8]) -> u32 {
    const INIT: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let h = key.iter().fold(INIT, |h, &b| {
        h.wrapping_mul(PRIME) ^ i64::from(b as i8) as u64
    });
    h as u32
}

/// twemproxy's `hash_fnv1_32`: 32-bit FNV-1, bytes sign-extended.
///
/// ```
/// use shardis_ring::hash::twemproxy_fnv1_32;
/// assert_eq!(twemproxy_fnv1_32(b"a"), 0x050c_5d7e);
/// ```
pub fn twemproxy_fnv1_32(key: &[u8]) -> u32 {
    key.iter().fold(FNV_32_INIT, |h, &b| {
        h.wrapping_mul(FNV_32_PRIME) ^ signed(b)
    })
}

/// twemproxy's `hash_fnv1a_32`: 32-bit FNV-1a, bytes sign-extended.
///
/// ```
/// use shardis_ring::hash::twemproxy_fnv1a_32;
/// assert_eq!(twemproxy_fnv1a_32(b"a"), 0xe40c_292c);
/// ```
pub fn twemproxy_fnv1a_32(key: &[u8]) -> u32 {
    key.iter().fold(FNV_32_INIT, |h, &b| {
        (h ^ signed(b)).wrapping_mul(FNV_32_PRIME)
    })
}

const FNV_32_INIT: u32 = 2_166_136_261;
const FNV_32_PRIME: u32 = 16_777_619;

/// Table of a reflected CRC of `poly` (the polynomial bit-reversed), 8 bits at a time.
const fn reflected_table(poly: u32) -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ poly
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// Table of the non-reflected CRC of `poly` (16 bits), 8 bits at a time.
const fn xmodem_table(poly: u32) -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                ((crc << 1) ^ poly) & 0xffff
            } else {
                (crc << 1) & 0xffff
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// CRC16-XMODEM (0x1021).
static CRC16_TABLE: [u32; 256] = xmodem_table(0x1021);
/// CRC-32/ISO-HDLC (reflected 0x04C11DB7).
static CRC32_TABLE: [u32; 256] = reflected_table(0xedb8_8320);

/// twemproxy's `hash_crc16`: the CRC16-XMODEM table driven over a `uint32_t` state that is
/// shifted left without masking, so bits above 16 accumulate (and matter on the ring); the
/// low 16 bits are the CRC16-XMODEM of the key.
///
/// ```
/// use shardis_ring::hash::twemproxy_crc16;
/// assert_eq!(twemproxy_crc16(b"123456789") & 0xffff, 0x31c3);
/// assert_eq!(twemproxy_crc16(b"a"), 0x7c87);
/// ```
pub fn twemproxy_crc16(key: &[u8]) -> u32 {
    key.iter().fold(0u32, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[(((crc >> 8) ^ u32::from(b)) & 0xff) as usize]
    })
}

/// twemproxy's `hash_crc32a`: the standard CRC-32 (ISO-HDLC, as zlib).
///
/// ```
/// use shardis_ring::hash::twemproxy_crc32a;
/// assert_eq!(twemproxy_crc32a(b"123456789"), 0xcbf4_3926);
/// ```
pub fn twemproxy_crc32a(key: &[u8]) -> u32 {
    !key.iter().fold(u32::MAX, |crc, &b| {
        (crc >> 8) ^ CRC32_TABLE[((crc ^ u32::from(b)) & 0xff) as usize]
    })
}

/// twemproxy's `hash_crc32`, libmemcached's: bits 16..31 of the CRC-32, top bit cleared, so
/// `0..=0x7fff`. On a ketama ring such hashes all fall before the first points of the
/// continuum, which is why twemproxy pools rarely use it.
///
/// ```
/// use shardis_ring::hash::{twemproxy_crc32, twemproxy_crc32a};
/// assert_eq!(twemproxy_crc32(b"123456789"), (0xcbf4_3926 >> 16) & 0x7fff);
/// ```
pub fn twemproxy_crc32(key: &[u8]) -> u32 {
    (twemproxy_crc32a(key) >> 16) & 0x7fff
}

/// Two bytes, little-endian, as twemproxy's portable `get16bits`.
#[inline]
fn get16(b: &[u8]) -> u32 {
    u32::from(b[0]) | u32::from(b[1]) << 8
}

/// twemproxy's `hash_hsieh`: Paul Hsieh's SuperFastHash started from 0, the third byte of a
/// 3-byte tail sign-extended; an empty key hashes to 0.
///
/// ```
/// use shardis_ring::hash::twemproxy_hsieh;
/// assert_eq!(twemproxy_hsieh(b""), 0);
/// assert_ne!(twemproxy_hsieh(b"abc"), twemproxy_hsieh(b"abd"));
/// ```
pub fn twemproxy_hsieh(key: &[u8]) -> u32 {
    if key.is_empty() {
        return 0;
    }
    let mut h: u32 = 0;
    let mut blocks = key.chunks_exact(4);
    for block in &mut blocks {
        h = h.wrapping_add(get16(&block[0..2]));
        let tmp = (get16(&block[2..4]) << 11) ^ h;
        h = (h << 16) ^ tmp;
        h = h.wrapping_add(h >> 11);
    }
    let tail = blocks.remainder();
    match tail.len() {
        3 => {
            h = h.wrapping_add(get16(&tail[0..2]));
            h ^= h << 16;
            h ^= signed(tail[2]) << 18;
            h = h.wrapping_add(h >> 11);
        }
        2 => {
            h = h.wrapping_add(get16(&tail[0..2]));
            h ^= h << 11;
            h = h.wrapping_add(h >> 17);
        }
        1 => {
            h = h.wrapping_add(u32::from(tail[0]));
            h ^= h << 10;
            h = h.wrapping_add(h >> 1);
        }
        _ => {}
    }
    h ^= h << 3;
    h = h.wrapping_add(h >> 5);
    h ^= h << 4;
    h = h.wrapping_add(h >> 17);
    h ^= h << 25;
    h.wrapping_add(h >> 6)
}

/// twemproxy's `hash_murmur`: MurmurHash2 (32-bit, little-endian words) with the seed
/// `0xdeadbeef * len`.
///
/// ```
/// use shardis_ring::hash::twemproxy_murmur;
/// assert_ne!(twemproxy_murmur(b"a"), twemproxy_murmur(b"b"));
/// ```
pub fn twemproxy_murmur(key: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    // The length is truncated to 32 bits, as twemproxy's `(uint32_t)length`.
    let len = key.len() as u32;
    let mut h = 0xdead_beef_u32.wrapping_mul(len) ^ len;
    let mut blocks = key.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = blocks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// twemproxy's `hash_jenkins`: Bob Jenkins' lookup3 `hashlittle` with initval 13.
///
/// ```
/// use shardis_ring::hash::twemproxy_jenkins;
/// // An empty key returns the initial state, 0xdeadbeef + 0 + 13.
/// assert_eq!(twemproxy_jenkins(b""), 0xdeadbefc);
/// ```
pub fn twemproxy_jenkins(key: &[u8]) -> u32 {
    hashlittle(key, 13)
}

/// lookup3's `hashlittle(key, len, initval)` on a little-endian machine.
fn hashlittle(key: &[u8], initval: u32) -> u32 {
    // The length is truncated to 32 bits, as lookup3's `(uint32_t)length`.
    let init = 0xdead_beef_u32
        .wrapping_add(key.len() as u32)
        .wrapping_add(initval);
    let (mut a, mut b, mut c) = (init, init, init);
    if key.is_empty() {
        return c;
    }
    let word = |bytes: &[u8]| -> u32 {
        bytes
            .iter()
            .enumerate()
            .fold(0u32, |w, (i, &x)| w | u32::from(x) << (8 * i))
    };
    let mut rest = key;
    while rest.len() > 12 {
        a = a.wrapping_add(word(&rest[0..4]));
        b = b.wrapping_add(word(&rest[4..8]));
        c = c.wrapping_add(word(&rest[8..12]));
        (a, b, c) = mix(a, b, c);
        rest = &rest[12..];
    }
    // The last 1..=12 bytes, zero-padded.
    let lane = |from: usize| word(rest.get(from..rest.len().min(from + 4)).unwrap_or(&[]));
    a = a.wrapping_add(lane(0));
    b = b.wrapping_add(lane(4));
    c = c.wrapping_add(lane(8));
    final_mix(a, b, c)
}

fn mix(mut a: u32, mut b: u32, mut c: u32) -> (u32, u32, u32) {
    a = a.wrapping_sub(c);
    a ^= c.rotate_left(4);
    c = c.wrapping_add(b);
    b = b.wrapping_sub(a);
    b ^= a.rotate_left(6);
    a = a.wrapping_add(c);
    c = c.wrapping_sub(b);
    c ^= b.rotate_left(8);
    b = b.wrapping_add(a);
    a = a.wrapping_sub(c);
    a ^= c.rotate_left(16);
    c = c.wrapping_add(b);
    b = b.wrapping_sub(a);
    b ^= a.rotate_left(19);
    a = a.wrapping_add(c);
    c = c.wrapping_sub(b);
    c ^= b.rotate_left(4);
    b = b.wrapping_add(a);
    (a, b, c)
}

fn final_mix(mut a: u32, mut b: u32, mut c: u32) -> u32 {
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c.wrapping_sub(b.rotate_left(24))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_tables_match_the_published_ones() {
        // First and last entries of twemproxy's crc16tab (XMODEM) and crc32tab.
        assert_eq!(&CRC16_TABLE[..4], &[0x0000, 0x1021, 0x2042, 0x3063]);
        assert_eq!(CRC16_TABLE[255], 0x1ef0);
        assert_eq!(CRC32_TABLE[1], 0x7707_3096);
        assert_eq!(CRC32_TABLE[255], 0x2d02_ef8d);
    }

    #[test]
    fn lookup3_published_vectors() {
        // From lookup3.c's driver5.
        assert_eq!(hashlittle(b"", 0), 0xdead_beef);
        assert_eq!(hashlittle(b"", 0xdead_beef), 0xbd5b_7dde);
        assert_eq!(
            hashlittle(b"Four score and seven years ago", 0),
            0x1777_0551
        );
        assert_eq!(
            hashlittle(b"Four score and seven years ago", 1),
            0xcd62_8161
        );
    }

    #[test]
    fn signed_bytes_change_the_fnv_family() {
        let high = "é".as_bytes();
        // Unsigned widening would give the textbook FNV-1a 32 of these bytes.
        let textbook = high.iter().fold(FNV_32_INIT, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(FNV_32_PRIME)
        });
        assert_ne!(twemproxy_fnv1a_32(high), textbook);
        assert_eq!(twemproxy_fnv1a_32(b"ab"), {
            let t = |h: u32, b: u8| (h ^ u32::from(b)).wrapping_mul(FNV_32_PRIME);
            t(t(FNV_32_INIT, b'a'), b'b')
        });
    }
}
