//! Test support: the testkit's [`FakeNode`] scripted with a function of the command's text.

use shardis_slots::Endpoint;
use shardis_testkit::{FakeNode, FakeReply};

/// A fake node on loopback: `reply(command, own port)` answers each command, where `command` is
/// its arguments upper-cased and joined by spaces. Keep the handle: the node stops when it is
/// dropped.
pub(crate) async fn fake_node(reply: fn(&str, u16) -> String) -> (Endpoint, FakeNode) {
    let node = FakeNode::start(move |args, ctx| {
        let text = args
            .iter()
            .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(" ");
        FakeReply::Raw(reply(&text, ctx.port()).into_bytes())
    })
    .await
    .expect("fake node");
    (Endpoint::new("127.0.0.1", node.port()), node)
}
