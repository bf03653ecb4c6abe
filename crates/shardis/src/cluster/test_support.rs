//! Test support: a fake cluster node on loopback whose replies the test chooses.

use shardis_slots::Endpoint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A fake node on loopback: `reply(command text, own port)` answers each command.
pub(crate) async fn fake_node(reply: fn(&str, u16) -> String) -> Endpoint {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    // One reply per command in what arrived (each starts with `*`).
                    let text = String::from_utf8_lossy(&buf[..n]).to_ascii_uppercase();
                    for command in text.split('*').filter(|c| !c.is_empty()) {
                        if socket
                            .write_all(reply(command, port).as_bytes())
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    });
    Endpoint::new("127.0.0.1", port)
}
