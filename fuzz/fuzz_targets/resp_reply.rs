//! Raw bytes → `shardis_resp`, checked against redis-rs: a frame it accepts
//! is exactly what `redis::parse_redis_value` builds from the consumed bytes,
//! the consumed length does not depend on what follows, a prefix of it is
//! incomplete, nothing redis-rs completes is reported as incomplete, and the
//! incremental `Decoder` fed the same bytes in small reads gives the same
//! frames, the same error, and the same leftover as parsing the whole buffer.
//! It never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardis_resp::{Decoder, Frame, RespError, parse_frame, same_reply};

/// Every frame of `data` by repeated whole-buffer parsing, the bytes they
/// span, and the error that stopped it, if any.
fn whole(data: &[u8]) -> (Vec<Frame>, usize, Option<RespError>) {
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        match parse_frame(&data[at..]) {
            Ok(Some((frame, n))) => {
                frames.push(frame);
                at += n;
            }
            Ok(None) => return (frames, at, None),
            Err(e) => return (frames, at, Some(e)),
        }
    }
}

/// The same through one `Decoder`, `read` bytes at a time, the way a
/// connection drives it.
fn in_reads(data: &[u8], read: usize) -> (Vec<Frame>, usize, Option<RespError>) {
    let mut decoder = Decoder::new();
    let mut frames = Vec::new();
    let mut buf = Vec::new();
    let mut drained = 0;
    for chunk in data.chunks(read) {
        buf.extend_from_slice(chunk);
        match decoder.decode(&buf, &mut frames) {
            Ok(n) => {
                buf.drain(..n);
                drained += n;
            }
            Err(e) => return (frames, drained, Some(e)),
        }
    }
    (frames, drained, None)
}

fn same_frames(a: &[Frame], b: &[Frame]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.is_push() == y.is_push() && same_reply(x.value(), y.value()))
}

fuzz_target!(|data: &[u8]| {
    match parse_frame(data) {
        Ok(Some((frame, n))) => {
            assert!(n <= data.len() && n > 0, "consumed {n} of {}", data.len());
            let value = frame.value();
            let bytes = &data[..n];
            match redis::parse_redis_value(bytes) {
                Ok(theirs) => assert!(same_reply(value, &theirs), "{value:?} != {theirs:?}"),
                Err(e) => panic!("accepted {value:?}, redis-rs: {e}"),
            }
            match parse_frame(bytes) {
                Ok(Some((alone, m))) => assert!(m == n && same_reply(alone.value(), value)),
                other => panic!("frame alone: {other:?}"),
            }
            for cut in [0, 1, n / 2, n - 1] {
                if cut < n {
                    assert_eq!(parse_frame(&data[..cut]), Ok(None), "cut at {cut}");
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

    // Incremental == whole, for a read size that varies with the input. The
    // decoder consumes the complete elements of an unfinished frame, so on
    // success it may have drained past the last whole frame, never short of it.
    let (frames, spanned, error) = whole(data);
    let read = 1 + data.len() % 13;
    let (got, drained, got_error) = in_reads(data, read);
    assert!(
        same_frames(&frames, &got),
        "{frames:?} vs {got:?} (reads of {read})"
    );
    assert_eq!(error, got_error, "reads of {read}");
    if error.is_none() {
        assert!(
            drained >= spanned && drained <= data.len(),
            "{drained} vs {spanned}"
        );
    }
});
