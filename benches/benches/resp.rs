//! shardis-resp: decoding large array replies that arrive in 1 KB reads, the
//! way a connection receives a multi-megabyte MGET/HGETALL/LRANGE reply.
//!
//! - `decoder`: one `Decoder` kept across reads (append, decode, drain): each
//!   byte is looked at once, so time per byte stays flat from 10 KB to 10 MB
//!   (see the allocator note below).
//! - `reparse`: the previous approach, a stateless parse of the whole
//!   buffer from its start after every read: quadratic, so only run up to 1 MB.
//! - `whole`: the complete reply in one buffer, parsed once (the floor).
//!
//! Run: `nice cargo bench -p shardis-benches --bench resp -- --quick`
//!
//! Allocator note: each iteration allocates the reply's values (~16 MB at 10 MB) and frees
//! them. With glibc's default dynamic thresholds, the decoder's growing element vector makes
//! the freed heap large enough to be returned to the OS at the end of every iteration, so the
//! 10 MB cell then measures the kernel faulting those pages back in (42% of its time in a
//! profile), not the decoder (2026-11-28: 713 MiB/s at 10 MB vs 2.6 GiB/s at 1 MB). Pinning the
//! thresholds shows the decoder itself, flat from 10 KB to 10 MB (2.39 / 2.46 / 2.72 / 2.38
//! GiB/s):
//!
//! ```text
//! GLIBC_TUNABLES=glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_threshold=1073741824 \
//!     cargo bench -p shardis-benches --bench resp -- decoder --quick
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use shardis_resp::{Decoder, Frame, parse_frame};

/// Bytes per socket read.
const READ: usize = 1024;
/// Payload of each bulk string element.
const ELEMENT: usize = 100;

/// An array reply of about `size` bytes: bulk strings of `ELEMENT` bytes.
fn array_reply(size: usize) -> Vec<u8> {
    let element = {
        let mut e = format!("${ELEMENT}\r\n").into_bytes();
        e.extend((0..ELEMENT).map(|i| b'a' + (i % 26) as u8));
        e.extend_from_slice(b"\r\n");
        e
    };
    let count = size / element.len();
    let mut reply = format!("*{count}\r\n").into_bytes();
    for _ in 0..count {
        reply.extend_from_slice(&element);
    }
    reply
}

/// The connection's loop: append each read, decode, drop what was consumed.
fn decode_in_reads(reply: &[u8]) -> Frame {
    let mut decoder = Decoder::new();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut frames = Vec::new();
    for read in reply.chunks(READ) {
        buf.extend_from_slice(read);
        let consumed = decoder.decode(&buf, &mut frames).expect("valid reply");
        buf.drain(..consumed);
    }
    frames.pop().expect("one frame")
}

/// Before: parse the whole buffer from its start after every read.
fn reparse_in_reads(reply: &[u8]) -> Frame {
    let mut buf = Vec::with_capacity(64 * 1024);
    for read in reply.chunks(READ) {
        buf.extend_from_slice(read);
        if let Some((frame, _)) = parse_frame(&buf).expect("valid reply") {
            return frame;
        }
    }
    panic!("incomplete reply")
}

fn label(size: usize) -> String {
    if size >= 1 << 20 {
        format!("{}MB", size >> 20)
    } else {
        format!("{}KB", size >> 10)
    }
}

fn bench_resp(c: &mut Criterion) {
    let mut group = c.benchmark_group("resp_array_1k_reads");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for size in [10 << 10, 100 << 10, 1 << 20, 10 << 20] {
        let reply = array_reply(size);
        let id = label(size);
        group.throughput(Throughput::Bytes(reply.len() as u64));
        group.bench_with_input(BenchmarkId::new("decoder", &id), &reply, |b, r| {
            b.iter(|| decode_in_reads(black_box(r)))
        });
        group.bench_with_input(BenchmarkId::new("whole", &id), &reply, |b, r| {
            b.iter(|| parse_frame(black_box(r)).expect("valid reply"))
        });
        // Quadratic: 10 MB would take minutes per iteration.
        if size <= 1 << 20 {
            group.bench_with_input(BenchmarkId::new("reparse", &id), &reply, |b, r| {
                b.iter(|| reparse_in_reads(black_box(r)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_resp);
criterion_main!(benches);
