//! Comparing replies the way a parser test needs.

use redis::Value;

/// Structural equality of replies where a NaN double equals itself: `Value`'s own `==`
/// says a RESP3 `,nan` differs from the same bytes parsed again, which is wrong for
/// comparing parsers.
///
/// ```
/// use shardis_resp::same_reply;
/// let nan = redis::Value::Double(f64::NAN);
/// assert!(same_reply(&nan, &nan.clone()));
/// assert!(!same_reply(&nan, &redis::Value::Double(1.0)));
/// ```
pub fn same_reply(a: &Value, b: &Value) -> bool {
    fn all(a: &[Value], b: &[Value]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_reply(x, y))
    }
    fn pairs(a: &[(Value, Value)], b: &[(Value, Value)]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|((k1, v1), (k2, v2))| same_reply(k1, k2) && same_reply(v1, v2))
    }
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) | (Value::Set(x), Value::Set(y)) => all(x, y),
        (Value::Map(x), Value::Map(y)) => pairs(x, y),
        (
            Value::Attribute {
                data: d1,
                attributes: a1,
            },
            Value::Attribute {
                data: d2,
                attributes: a2,
            },
        ) => same_reply(d1, d2) && pairs(a1, a2),
        (Value::Push { kind: k1, data: d1 }, Value::Push { kind: k2, data: d2 }) => {
            k1 == k2 && all(d1, d2)
        }
        _ => a == b,
    }
}
