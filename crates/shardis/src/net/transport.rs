//! The byte stream under a connection: plain TCP, or TLS over TCP.
//!
//! TLS is done with rustls' own sans-I/O connection state rather than an async stream
//! wrapper, so the write path stays what it is for plain TCP: a caller seals its batch into
//! TLS records under a short lock and writes them with `try_write` from its own task, no
//! writer task in between; the reader decrypts what it reads. Only the handshake goes through
//! `tokio-rustls`. A plain connection pays one branch per read and per write.
//!
//! Record order on the wire is the order batches are sealed in: a connection seals only from
//! the task that holds its writer role (one at a time, see `conn_state.rs`), and a subscribed
//! connection writes from one task.

use std::future::Future;
use std::io::{self, BufRead, Write};
use std::sync::Arc;

use futures::future::Either;
use rustls::ClientConnection;
use shardis_slots::Endpoint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::conn::connect;
use crate::error::Error;
use crate::settings::Settings;

/// What a TLS connection's two halves share: rustls' state, and the first failure rustls
/// reported (a fatal alert from the server, a bad record), kept so the handshake that
/// follows can say it was TLS.
struct TlsShared {
    state: parking_lot::Mutex<ClientConnection>,
    failure: parking_lot::Mutex<Option<String>>,
}

impl TlsShared {
    fn failed(&self, e: rustls::Error) -> io::Error {
        let why = format!("TLS: {e}");
        self.failure.lock().get_or_insert_with(|| why.clone());
        io::Error::new(io::ErrorKind::InvalidData, why)
    }
}

/// An open stream, before it is split.
pub(crate) struct Transport {
    tcp: TcpStream,
    tls: Option<Arc<TlsShared>>,
}

/// Connects to `endpoint` and, when the settings ask for TLS, runs the TLS handshake, all
/// within the connect timeout. A failed handshake is [`Error::Tls`] with rustls' reason.
pub(crate) async fn open(endpoint: &Endpoint, settings: &Settings) -> Result<Transport, Error> {
    let tcp = connect(endpoint, settings).await?;
    let Some(tls) = &settings.tls else {
        return Ok(Transport { tcp, tls: None });
    };
    let label = endpoint.to_string();
    let name = tls
        .names
        .name_for(&endpoint.host)
        .map_err(|message| Error::Tls {
            node: label.clone(),
            message,
        })?;
    let shown_name = name.to_str().into_owned();
    let fail = |message: String| Error::Tls {
        node: format!("{label} (as {shown_name})"),
        message,
    };
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    let stream =
        match tokio::time::timeout(settings.connect_timeout, connector.connect(name, tcp)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(fail(handshake_error(&e))),
            Err(_) => {
                return Err(fail(format!(
                    "no TLS handshake within {:?} (is the port a TLS port?)",
                    settings.connect_timeout
                )));
            }
        };
    let (tcp, mut state) = stream.into_inner();
    // Sealed records are taken out at once (`seal`), so rustls' buffer needs no bound of its
    // own; the connection bounds what callers may queue.
    state.set_buffer_limit(None);
    Ok(Transport {
        tcp,
        tls: Some(Arc::new(TlsShared {
            state: parking_lot::Mutex::new(state),
            failure: parking_lot::Mutex::new(None),
        })),
    })
}

/// rustls' reason for a failed handshake, without the `io::Error` wrapping.
fn handshake_error(e: &io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls) => rustls.to_string(),
        None if e.kind() == io::ErrorKind::UnexpectedEof => {
            "the server closed the connection during the TLS handshake".into()
        }
        None => e.to_string(),
    }
}

impl Transport {
    /// Splits into a reader (one task) and a writer.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        let (read, write) = self.tcp.into_split();
        (
            ReadHalf {
                tcp: read,
                tls: self.tls.clone().map(|tls| (tls, Vec::new())),
            },
            WriteHalf {
                tcp: write,
                tls: self.tls,
            },
        )
    }
}

/// The reading half: plaintext out, whatever the stream.
pub(crate) struct ReadHalf {
    tcp: OwnedReadHalf,
    /// TLS state and the ciphertext read but not yet given to rustls.
    tls: Option<(Arc<TlsShared>, Vec<u8>)>,
}

impl ReadHalf {
    /// Reads plaintext into `buf`'s spare room (appending); `Ok(0)` is the end of the stream.
    /// Cancel-safe: the only await is the socket read, and what was read is kept.
    pub fn read_buf<'a>(
        &'a mut self,
        buf: &'a mut Vec<u8>,
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        // Over plain TCP the socket's own read, not wrapped in a future of ours: it is made
        // and polled on every read of every connection.
        match self.tls {
            None => Either::Left(self.tcp.read_buf(buf)),
            Some(_) => Either::Right(self.read_tls(buf)),
        }
    }

    async fn read_tls(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let Some((tls, cipher)) = &mut self.tls else {
            return self.tcp.read_buf(buf).await;
        };
        loop {
            if let Some(n) = take_plaintext(tls, buf)? {
                return Ok(n);
            }
            cipher.clear();
            if cipher.capacity() == 0 {
                cipher.reserve(64 * 1024);
            }
            if self.tcp.read_buf(cipher).await? == 0 {
                return Ok(0);
            }
            let mut state = tls.state.lock();
            let mut rest = cipher.as_slice();
            let (mut got, mut closed) = (0, false);
            while !rest.is_empty() {
                state.read_tls(&mut rest)?;
                if let Err(e) = state.process_new_packets() {
                    drop(state);
                    return Err(tls.failed(e));
                }
                // rustls holds a bounded amount of plaintext: move it out before feeding more.
                let (n, end) = drain_plaintext(&mut state, buf)?;
                got += n;
                closed |= end;
            }
            if got > 0 || closed {
                return Ok(got);
            }
        }
    }
}

/// Plaintext rustls already holds: `Some(n)` with `n > 0` bytes appended, `Some(0)` once the
/// server closed the TLS session, `None` when nothing is there yet.
fn take_plaintext(tls: &TlsShared, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    let (n, closed) = drain_plaintext(&mut tls.state.lock(), buf)?;
    Ok((n > 0 || closed).then_some(n))
}

/// Moves every plaintext byte rustls holds into `buf` (copied from rustls' own chunks, no
/// scratch buffer): how many, and whether the server then closed the session (`close_notify`).
fn drain_plaintext(state: &mut ClientConnection, buf: &mut Vec<u8>) -> io::Result<(usize, bool)> {
    let mut total = 0;
    let mut reader = state.reader();
    loop {
        let n = match reader.fill_buf() {
            // Nothing left and no error: the session was closed cleanly.
            Ok([]) => return Ok((total, true)),
            Ok(chunk) => {
                buf.extend_from_slice(chunk);
                chunk.len()
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((total, false)),
            Err(e) => return Err(e),
        };
        reader.consume(n);
        total += n;
    }
}

/// The writing half: plaintext in, records out.
pub(crate) struct WriteHalf {
    tcp: OwnedWriteHalf,
    tls: Option<Arc<TlsShared>>,
}

impl WriteHalf {
    /// The bytes to put on the wire for `batch`: the batch itself on plain TCP, its TLS
    /// records (and any record rustls has pending) on TLS. Call in wire order only.
    pub fn seal(&self, batch: Vec<u8>) -> io::Result<Vec<u8>> {
        let Some(tls) = &self.tls else {
            return Ok(batch);
        };
        let mut state = tls.state.lock();
        state.writer().write_all(&batch)?;
        // rustls copied the plaintext: its buffer takes the records.
        let mut records = batch;
        records.clear();
        while state.wants_write() {
            state.write_tls(&mut records)?;
        }
        Ok(records)
    }

    /// Writes what the socket takes now, without waiting.
    pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        self.tcp.try_write(bytes)
    }

    /// Waits until the socket may take more.
    pub async fn writable(&self) -> io::Result<()> {
        self.tcp.writable().await
    }

    /// Seals and writes `plaintext` in full (a subscribed connection's commands).
    pub async fn write_all(&mut self, plaintext: &[u8]) -> io::Result<()> {
        if self.tls.is_none() {
            return self.tcp.write_all(plaintext).await;
        }
        let records = self.seal(plaintext.to_vec())?;
        self.tcp.write_all(&records).await
    }

    /// What rustls reported when the server ended the TLS session with an error (a refused
    /// client certificate arrives as an alert after the client's side of the handshake
    /// finished), if it did.
    pub fn tls_failure(&self) -> Option<String> {
        self.tls.as_ref().and_then(|tls| tls.failure.lock().clone())
    }
}
