//! The read loop of a connection whose every frame is handled as it comes (a subscribed
//! connection, a tracking connection): no waiter queue, just frames until the connection ends.

use redis::Value;
use shardis_resp::{Decoder, Frame, RespError};
use tokio::sync::oneshot;

use super::ReadHalf;

/// Bytes read at a time.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// How a frame loop ended.
pub(crate) enum Ended {
    /// Its owner dropped the stop sender: nobody needs to hear why.
    Stopped,
    /// The connection ended (closed, failed, a malformed or unexpected frame): why.
    Lost(String),
}

/// One complete frame off the front of `buf` (replies and pushes alike: on these connections
/// both are frames of one kind).
pub(crate) fn parse_one(
    decoder: &mut Decoder,
    buf: &mut Vec<u8>,
) -> Result<Option<Value>, RespError> {
    let (frame, consumed) = decoder.decode_frame(buf)?;
    buf.drain(..consumed);
    Ok(frame.map(|frame| match frame {
        Frame::Reply(value) | Frame::Push(value) => value,
    }))
}

/// Hands every frame to `on_frame` — those already in `buf` first (some may have come with
/// the handshake's replies) — then reads more, until `stop` fires, the connection ends, or
/// `on_frame` says it must end (`Err(why)`). `label` names the node; `closed` is the sentence
/// for a connection the server closed.
pub(crate) async fn read_frames(
    reader: &mut ReadHalf,
    buf: &mut Vec<u8>,
    decoder: &mut Decoder,
    stop: &mut oneshot::Receiver<()>,
    label: &str,
    closed: &str,
    mut on_frame: impl FnMut(Value) -> Result<(), String>,
) -> Ended {
    loop {
        loop {
            match parse_one(decoder, buf) {
                Ok(Some(value)) => {
                    if let Err(why) = on_frame(value) {
                        return Ended::Lost(why);
                    }
                }
                Ok(None) => break,
                Err(e) => return Ended::Lost(format!("{label} sent a malformed frame: {e}")),
            }
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            biased;
            _ = &mut *stop => return Ended::Stopped,
            read = reader.read_buf(buf) => match read {
                Ok(0) => return Ended::Lost(format!("{label} {closed}")),
                Ok(_) => {}
                Err(e) => return Ended::Lost(format!("read from {label} failed: {e}")),
            },
        }
    }
}
