//! Raw bytes → `shardis_slots::parse_reply`, checked against redis-rs: a
//! reply it accepts is exactly what `redis::parse_redis_value` builds from the
//! consumed bytes, the consumed length does not depend on what follows, a
//! prefix of it is incomplete, and nothing redis-rs completes is reported as
//! incomplete. It never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardis_slots::parse_reply;
use shardis_slots::resp::same_reply;


fuzz_target!(|data: &[u8]| {
    match parse_reply(data) {
        Ok(Some((value, n))) => {
            assert!(n <= data.len() && n > 0, "consumed {n} of {}", data.len());
            let frame = &data[..n];
            match redis::parse_redis_value(frame) {
                Ok(theirs) => assert!(same_reply(&value, &theirs), "{value:?} != {theirs:?}"),
                Err(e) => panic!("accepted {value:?}, redis-rs: {e}"),
            }
            match parse_reply(frame) {
                Ok(Some((alone, m))) => assert!(m == n && same_reply(&alone, &value)),
                other => panic!("frame alone: {other:?}"),
            }
            for cut in [0, 1, n / 2, n - 1] {
                if cut < n {
                    assert_eq!(parse_reply(&data[..cut]), Ok(None), "cut at {cut}");
                }
            }
        }
        Ok(None) => {
            if let Ok(theirs) = redis::parse_redis_value(data) {
                panic!("incomplete, but redis-rs parses {theirs:?}");
            }
        }
        // Stricter than redis-rs in documented places (lengths, depth): no check.
        Err(_) => {}
    }
});
