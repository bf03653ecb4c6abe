//! Arbitrary string → `parse_redirect` / `parse_redirect_parts`; on success
//! the slot is < 16384, every port > 0, hosts are non-empty, and the two entry
//! points agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardis_slots::{Endpoint, Redirect, RedirectTarget, parse_redirect, parse_redirect_parts};

fn check(r: &Redirect) {
    assert!(r.slot < 16384, "{r:?}");
    match &r.target {
        RedirectTarget::Endpoint(e) => {
            assert!(e.port > 0 && !e.host.is_empty(), "{r:?}");
            // What we print, we can parse back.
            assert_eq!(Endpoint::parse(&e.to_string()).as_ref(), Ok(e));
        }
        RedirectTarget::SameHost { port } | RedirectTarget::Unknown { port } => assert!(*port > 0),
    }
    let current = Endpoint::new("10.0.0.1", 7000);
    if let Some(e) = r.resolve(&current) {
        assert!(e.port > 0 && !e.host.is_empty());
    }
}

fuzz_target!(|data: &str| {
    let line = parse_redirect(data);
    if let Ok(r) = &line {
        check(r);
    }
    let (code, detail) = data.split_once(' ').unwrap_or((data, ""));
    if let Ok(r) = parse_redirect_parts(code, detail) {
        check(&r);
    }
});
