//! What a node says it is (`ROLE`, or `INFO replication` where `ROLE` is refused), and which
//! node is the primary given what every known node said. Pure: the unit tests drive it from
//! raw RESP bytes.

use redis::Value;
use shardis_slots::Endpoint;

/// One node's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// A primary, with the replicas connected to it.
    Primary { replicas: Vec<Endpoint> },
    /// A replica of `primary` (its link to it may be down).
    Replica { primary: Endpoint },
    /// Something else (a sentinel).
    Other(String),
}

/// Text of a string-like reply.
pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A port given as a number or as text.
fn port(value: &Value) -> Option<u16> {
    text(value)?.parse().ok()
}

/// Parses a `ROLE` reply.
pub(crate) fn parse_role(reply: &Value) -> Result<Role, String> {
    let Value::Array(items) = reply else {
        return Err(format!("ROLE: not an array: {reply:?}"));
    };
    let kind = items.first().and_then(text).unwrap_or_default();
    match kind.as_str() {
        "master" => {
            let listed = match items.get(2) {
                Some(Value::Array(listed)) => listed.as_slice(),
                _ => &[],
            };
            let replicas = listed
                .iter()
                .filter_map(|r| match r {
                    Value::Array(fields) => {
                        let host = text(fields.first()?)?;
                        Some(Endpoint::new(host, port(fields.get(1)?)?))
                    }
                    _ => None,
                })
                .collect();
            Ok(Role::Primary { replicas })
        }
        "slave" | "replica" => {
            let host = items.get(1).and_then(text);
            let port = items.get(2).and_then(port);
            match (host, port) {
                (Some(host), Some(port)) => Ok(Role::Replica {
                    primary: Endpoint::new(host, port),
                }),
                _ => Err(format!("ROLE: a replica without its primary: {reply:?}")),
            }
        }
        "" => Err(format!("ROLE: no role in {reply:?}")),
        other => Ok(Role::Other(other.to_string())),
    }
}

/// Parses the text of `INFO replication` (for servers that refuse `ROLE`, such as some
/// managed services' renamed-command setups).
pub(crate) fn parse_info_replication(info: &str) -> Result<Role, String> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.trim_end().strip_prefix(name)?.strip_prefix(':'))
    };
    match field("role") {
        Some("master") => {
            // slave0:ip=10.0.0.2,port=6379,state=online,offset=1,lag=0
            let replicas = info
                .lines()
                .filter(|l| l.starts_with("slave") && l.contains(":ip="))
                .filter_map(|l| {
                    let (_, fields) = l.trim_end().split_once(':')?;
                    let get = |k: &str| {
                        fields
                            .split(',')
                            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                    };
                    Some(Endpoint::new(get("ip")?, get("port")?.parse().ok()?))
                })
                .collect();
            Ok(Role::Primary { replicas })
        }
        Some("slave") => {
            let host = field("master_host");
            let port = field("master_port").and_then(|p| p.parse().ok());
            match (host, port) {
                (Some(host), Some(port)) => Ok(Role::Replica {
                    primary: Endpoint::new(host, port),
                }),
                _ => Err("INFO replication: a replica without master_host/master_port".into()),
            }
        }
        Some(other) => Ok(Role::Other(other.to_string())),
        None => Err("INFO replication: no role line".into()),
    }
}

/// The primaries that replicas among `answers` name and that are not in `asked`, each once.
pub(crate) fn unasked_primaries(answers: &[(Endpoint, Role)], asked: &[Endpoint]) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = Vec::new();
    for (_, role) in answers {
        if let Role::Replica { primary } = role
            && !asked.contains(primary)
            && !out.contains(primary)
        {
            out.push(primary.clone());
        }
    }
    out
}

/// The primary and the replicas reads may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub primary: Endpoint,
    pub replicas: Vec<Endpoint>,
}

/// Chooses the primary among `answers` (what each node that answered said) and its replicas.
///
/// One node says it is a primary: that one. Several do (a promotion under way: the new
/// primary answers before the old one is demoted): the one most replicas name as their
/// primary, then the `current` one (no flapping while an operator finishes the switch), then
/// the first. The replicas are those the primary lists, the nodes that say they replicate
/// it, and the `configured` replicas that did not answer (a reader endpoint briefly down is
/// still a replica; its health decides whether reads go there) — never a node that answered as
/// another primary or as another primary's replica.
pub(crate) fn choose(
    answers: &[(Endpoint, Role)],
    current: Option<&Endpoint>,
    configured: &[Endpoint],
) -> Option<Found> {
    let primaries: Vec<&Endpoint> = answers
        .iter()
        .filter(|(_, role)| matches!(role, Role::Primary { .. }))
        .map(|(at, _)| at)
        .collect();
    let votes = |candidate: &Endpoint| {
        answers
            .iter()
            .filter(|(_, role)| matches!(role, Role::Replica { primary } if primary == candidate))
            .count()
    };
    let primary = primaries
        .iter()
        .enumerate()
        .max_by_key(|(i, at)| (votes(at), Some(**at) == current, usize::MAX - i))
        .map(|(_, at)| (*at).clone())?;
    let mut replicas: Vec<Endpoint> = Vec::new();
    let mut add = |e: &Endpoint| {
        if *e != primary && !replicas.contains(e) {
            replicas.push(e.clone());
        }
    };
    for (at, role) in answers {
        match role {
            Role::Primary { replicas: listed } if *at == primary => {
                listed.iter().for_each(&mut add)
            }
            Role::Replica { primary: of } if *of == primary => add(at),
            _ => {}
        }
    }
    for e in configured {
        if answers.iter().all(|(at, _)| at != e) {
            add(e);
        }
    }
    Some(Found { primary, replicas })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Value {
        redis::parse_redis_value(bytes).expect("valid RESP")
    }

    fn ep(port: u16) -> Endpoint {
        Endpoint::new("127.0.0.1", port)
    }

    #[test]
    fn role_replies_of_each_kind() {
        let primary = parse(
            b"*3\r\n$6\r\nmaster\r\n:3129659\r\n*2\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n9001\r\n$7\r\n3129242\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n9002\r\n$7\r\n3129543\r\n",
        );
        assert_eq!(
            parse_role(&primary),
            Ok(Role::Primary {
                replicas: vec![ep(9001), ep(9002)]
            })
        );
        let replica = parse(
            b"*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:9000\r\n$9\r\nconnected\r\n:3167038\r\n",
        );
        assert_eq!(
            parse_role(&replica),
            Ok(Role::Replica { primary: ep(9000) })
        );
        let sentinel = parse(b"*2\r\n$8\r\nsentinel\r\n*1\r\n$1\r\nm\r\n");
        assert_eq!(parse_role(&sentinel), Ok(Role::Other("sentinel".into())));
        let alone = parse(b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n");
        assert_eq!(parse_role(&alone), Ok(Role::Primary { replicas: vec![] }));
        assert!(parse_role(&parse(b"-ERR unknown command 'ROLE'\r\n")).is_err());
        assert!(parse_role(&parse(b"*2\r\n$5\r\nslave\r\n$1\r\nx\r\n")).is_err());
    }

    #[test]
    fn info_replication_of_each_kind() {
        let primary = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=10.0.0.2,port=6380,state=online,offset=14,lag=0\r\nmaster_replid:abc\r\n";
        assert_eq!(
            parse_info_replication(primary),
            Ok(Role::Primary {
                replicas: vec![Endpoint::new("10.0.0.2", 6380)]
            })
        );
        let replica = "# Replication\r\nrole:slave\r\nmaster_host:10.0.0.1\r\nmaster_port:6379\r\nmaster_link_status:down\r\n";
        assert_eq!(
            parse_info_replication(replica),
            Ok(Role::Replica {
                primary: Endpoint::new("10.0.0.1", 6379)
            })
        );
        assert!(parse_info_replication("# Replication\r\n").is_err());
    }

    #[test]
    fn one_primary_with_its_replicas_and_silent_configured_ones() {
        let answers = vec![
            (
                ep(1),
                Role::Primary {
                    replicas: vec![ep(2)],
                },
            ),
            (ep(3), Role::Replica { primary: ep(1) }),
        ];
        let found = choose(&answers, None, &[ep(3), ep(4)]).expect("a primary");
        assert_eq!(found.primary, ep(1));
        assert_eq!(found.replicas, vec![ep(2), ep(3), ep(4)]);
    }

    #[test]
    fn a_promotion_under_way_keeps_the_primary_replicas_follow() {
        // `REPLICAOF NO ONE` on 2; 1 not demoted yet, 3 still replicates 1.
        let mid = vec![
            (
                ep(1),
                Role::Primary {
                    replicas: vec![ep(3)],
                },
            ),
            (ep(2), Role::Primary { replicas: vec![] }),
            (ep(3), Role::Replica { primary: ep(1) }),
        ];
        let found = choose(&mid, Some(&ep(1)), &[ep(2), ep(3)]).expect("a primary");
        assert_eq!(found.primary, ep(1));
        assert_eq!(
            found.replicas,
            vec![ep(3)],
            "a second primary serves no reads"
        );
        // 1 now replicates 2: 2 is the only primary.
        let done = vec![
            (ep(1), Role::Replica { primary: ep(2) }),
            (
                ep(2),
                Role::Primary {
                    replicas: vec![ep(1)],
                },
            ),
            (ep(3), Role::Replica { primary: ep(1) }),
        ];
        let found = choose(&done, Some(&ep(1)), &[ep(2), ep(3)]).expect("a primary");
        assert_eq!(found.primary, ep(2));
        assert_eq!(found.replicas, vec![ep(1)], "3 replicates another node");
    }

    #[test]
    fn primaries_named_by_replicas_are_asked_once() {
        let answers = vec![
            (ep(1), Role::Replica { primary: ep(9) }),
            (ep(2), Role::Replica { primary: ep(9) }),
            (ep(3), Role::Replica { primary: ep(1) }),
            (ep(4), Role::Primary { replicas: vec![] }),
        ];
        assert_eq!(
            unasked_primaries(&answers, &[ep(1), ep(2), ep(3), ep(4)]),
            vec![ep(9)]
        );
        assert!(unasked_primaries(&answers, &[ep(1), ep(9)]).is_empty());
    }

    #[test]
    fn ties_keep_the_current_primary_and_no_primary_is_none() {
        let two = vec![
            (ep(1), Role::Primary { replicas: vec![] }),
            (ep(2), Role::Primary { replicas: vec![] }),
        ];
        assert_eq!(
            choose(&two, Some(&ep(2)), &[]).map(|f| f.primary),
            Some(ep(2))
        );
        assert_eq!(choose(&two, None, &[]).map(|f| f.primary), Some(ep(1)));
        let none = vec![(ep(1), Role::Replica { primary: ep(9) })];
        assert_eq!(choose(&none, None, &[]), None);
    }
}
