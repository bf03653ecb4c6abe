//! MOVED/ASK parsing: checklist §7(c) parsing lines, plus Endpoint parsing.

use proptest::prelude::*;
use shardis_slots::{
    Endpoint, EndpointError, Redirect, RedirectError, RedirectKind, RedirectTarget, parse_redirect,
    parse_redirect_parts,
};

fn target(line: &str) -> RedirectTarget {
    parse_redirect(line)
        .unwrap_or_else(|e| panic!("{line}: {e}"))
        .target
}

fn ep(host: &str, port: u16) -> RedirectTarget {
    RedirectTarget::Endpoint(Endpoint::new(host, port))
}

#[test]
fn moved_host_port() {
    let r = parse_redirect("-MOVED 12182 127.0.0.1:32003").unwrap();
    assert_eq!(
        r,
        Redirect {
            kind: RedirectKind::Moved,
            slot: 12182,
            target: ep("127.0.0.1", 32003)
        }
    );
    assert_eq!(
        parse_redirect("MOVED 12182 127.0.0.1:32003").unwrap(),
        r,
        "leading '-' optional"
    );
}

#[test]
fn ipv6_without_and_with_brackets() {
    assert_eq!(target("-MOVED 12182 ::1:32013"), ep("::1", 32013));
    assert_eq!(target("MOVED 12182 [::1]:32013"), ep("::1", 32013));
    assert_eq!(
        target("MOVED 1 dead::cafe:beef:30001"),
        ep("dead::cafe:beef", 30001)
    );
    assert_eq!(
        target("MOVED 1 [fe80::cafe:beef%en1]:30001"),
        ep("fe80::cafe:beef%en1", 30001)
    );
}

#[test]
fn live_ipv6_moved_vector() {
    let raw = include_bytes!("vectors/ipv6_moved.bin");
    let line = std::str::from_utf8(raw).unwrap();
    assert_eq!(
        parse_redirect(line).unwrap().target,
        ep("::1", 32013),
        "with -, CRLF"
    );
    let redis::Value::ServerError(e) = redis::parse_redis_value(raw).unwrap() else {
        panic!()
    };
    let r = Redirect::from_server_error(&e).unwrap();
    assert_eq!((r.slot, r.target), (12182, ep("::1", 32013)));
}

#[test]
fn same_host_and_unknown() {
    let current = Endpoint::new("10.1.1.1", 32002);
    let r = parse_redirect("-MOVED 866 :32001").unwrap();
    assert_eq!(r.target, RedirectTarget::SameHost { port: 32001 });
    assert_eq!(r.resolve(&current), Some(Endpoint::new("10.1.1.1", 32001)));
    let r = parse_redirect("-MOVED 866 ?:32001").unwrap();
    assert_eq!(r.target, RedirectTarget::Unknown { port: 32001 });
    assert_eq!(r.resolve(&current), None, "never try to resolve `?`");
}

#[test]
fn hostname_target() {
    assert_eq!(
        target("-MOVED 15495 node3.test:32003"),
        ep("node3.test", 32003)
    );
}

#[test]
fn ask_and_parts() {
    let r = parse_redirect("-ASK 12182 127.0.0.1:32001").unwrap();
    assert_eq!((r.kind, r.slot), (RedirectKind::Ask, 12182));
    assert_eq!(
        parse_redirect_parts("ASK", "12182 127.0.0.1:32001").unwrap(),
        r
    );
    assert_eq!(
        parse_redirect_parts("MOVED", "866 :32001").unwrap().target,
        RedirectTarget::SameHost { port: 32001 }
    );
}

#[test]
fn boundaries() {
    assert_eq!(parse_redirect("MOVED 0 h:1").unwrap().slot, 0);
    assert_eq!(parse_redirect("MOVED 16383 h:65535").unwrap().slot, 16383);
}

#[test]
fn trailing_text_tolerated() {
    assert_eq!(target("MOVED 1 h:2 something"), ep("h", 2));
}

#[test]
fn malformed_lines_are_typed_errors() {
    use RedirectError::*;
    type Check = fn(&RedirectError) -> bool;
    let cases: &[(&str, Check)] = &[
        ("", |e| matches!(e, Malformed(_))),
        ("-", |e| matches!(e, Malformed(_))),
        ("MOVED", |e| matches!(e, Malformed(_))),
        ("MOVED 12182", |e| matches!(e, Malformed(_))),
        ("MOVED 127.0.0.1:1", |e| matches!(e, Malformed(_))),
        ("MOVED  12182 h:1", |e| matches!(e, Malformed(_))),
        ("MOVED 12182  h:1", |e| matches!(e, Malformed(_))),
        ("MOVED 12182 h:1 ", |e| matches!(e, Malformed(_))),
        (" MOVED 12182 h:1", |e| matches!(e, NotARedirect(_))),
        ("MOVED 16384 h:1", |e| matches!(e, BadSlot(_))),
        ("MOVED -1 h:1", |e| matches!(e, BadSlot(_))),
        ("MOVED +5 h:1", |e| matches!(e, BadSlot(_))),
        ("MOVED 99999999999 h:1", |e| matches!(e, BadSlot(_))),
        ("MOVED abc h:1", |e| matches!(e, BadSlot(_))),
        ("MOVED 1 h:65536", |e| {
            matches!(
                e,
                BadAddress {
                    reason: EndpointError::BadPort(_),
                    ..
                }
            )
        }),
        ("MOVED 1 h:0", |e| {
            matches!(
                e,
                BadAddress {
                    reason: EndpointError::BadPort(_),
                    ..
                }
            )
        }),
        ("MOVED 1 h:", |e| {
            matches!(
                e,
                BadAddress {
                    reason: EndpointError::BadPort(_),
                    ..
                }
            )
        }),
        ("MOVED 1 h:+80", |e| {
            matches!(
                e,
                BadAddress {
                    reason: EndpointError::BadPort(_),
                    ..
                }
            )
        }),
        ("MOVED 1 h", |e| {
            matches!(
                e,
                BadAddress {
                    reason: EndpointError::MissingPort,
                    ..
                }
            )
        }),
        ("MOVED 1 [::1]", |e| {
            matches!(
                e,
                BadAddress {
                    reason: EndpointError::MissingPort,
                    ..
                }
            )
        }),
        ("MOVED 1 []:5", |e| {
            matches!(
                e,
                BadAddress {
                    reason: EndpointError::EmptyHost,
                    ..
                }
            )
        }),
        ("MOVED 1 [::1:5", |e| matches!(e, BadAddress { .. })),
        ("MOVED 1 a]b:5", |e| {
            matches!(
                e,
                BadAddress {
                    reason: EndpointError::BadHost(_),
                    ..
                }
            )
        }),
        ("MOVED 1 a\tb:5", |e| {
            matches!(
                e,
                BadAddress {
                    reason: EndpointError::BadHost(_),
                    ..
                }
            )
        }),
        (
            "CLUSTERDOWN Hash slot not served",
            |e| matches!(e, NotARedirect(c) if c == "CLUSTERDOWN"),
        ),
        ("moved 1 h:1", |e| matches!(e, NotARedirect(_))),
        ("\u{0}\u{ff}garbage", |e| matches!(e, Malformed(_))),
    ];
    for (line, check) in cases {
        match parse_redirect(line) {
            Err(e) => assert!(check(&e), "{line:?}: unexpected {e:?}"),
            Ok(r) => panic!("{line:?} accepted as {r:?}"),
        }
    }
}

#[test]
fn endpoint_parse_and_display() {
    assert_eq!(
        Endpoint::parse("127.0.0.1:6379").unwrap(),
        Endpoint::new("127.0.0.1", 6379)
    );
    assert_eq!(
        Endpoint::parse("[::1]:6379").unwrap(),
        Endpoint::new("::1", 6379)
    );
    assert_eq!(
        Endpoint::parse("::1:6379").unwrap(),
        Endpoint::new("::1", 6379)
    );
    assert_eq!(
        "node3.test:6379".parse::<Endpoint>().unwrap().to_string(),
        "node3.test:6379"
    );
    assert_eq!(Endpoint::new("::1", 6379).to_string(), "[::1]:6379");
    assert_eq!(Endpoint::parse(":6379"), Err(EndpointError::EmptyHost));
    assert_eq!(
        Endpoint::parse("h:0"),
        Err(EndpointError::BadPort("0".into()))
    );
    assert_eq!(
        Endpoint::parse("[::1]x:5"),
        Err(EndpointError::BadHost("[::1]x:5".into()))
    );
}

proptest! {
    #[test]
    fn never_panics_and_ok_is_sane(line in "\\PC{0,40}") {
        if let Ok(r) = parse_redirect(&line) {
            prop_assert!(r.slot < 16384);
            match r.target {
                RedirectTarget::Endpoint(e) => prop_assert!(e.port > 0 && !e.host.is_empty()),
                RedirectTarget::SameHost { port } | RedirectTarget::Unknown { port } => prop_assert!(port > 0),
            }
        }
    }

    #[test]
    fn roundtrip_formatted_lines(slot in 0u16..16384, port in 1u16..=65535,
        host in prop::sample::select(vec!["127.0.0.1", "::1", "node3.test", "fe80::1"]), ask in any::<bool>()) {
        let code = if ask { "ASK" } else { "MOVED" };
        // The server's own format: `-%s %d %s:%d`, IPv6 unbracketed.
        let r = parse_redirect(&format!("-{code} {slot} {host}:{port}")).unwrap();
        prop_assert_eq!(r.slot, slot);
        prop_assert_eq!(r.target, RedirectTarget::Endpoint(Endpoint::new(host, port)));
        // Display output parses back to the same endpoint.
        let e = Endpoint::new(host, port);
        prop_assert_eq!(Endpoint::parse(&e.to_string()).unwrap(), e);
    }
}
