//! The Unix socket: binding, the accept loop, and one task per connection.
//!
//! A connection task owns its socket and both of its rings. It reads, decodes and pushes
//! commands; it collects replies and writes them back in request order. The order is kept by a
//! queue of pending answers: an entry per request, filled either by the engine's reply ring
//! (always in command order) or by the task itself (errors it found, `stats`).

mod conn;
mod decode;
mod gate;

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Ingress;
use super::Query;
use crate::config::AckMode;
use crate::ingress::link::{self, EngineRings};
use crate::telemetry::{mono_ns, wall_ns};
use crate::wire::binary::{self, HANDSHAKE_LEN, MAGIC, VERSION};
use crate::wire::{ErrorCode, Framing, SubscribeRequest, WireReply, json};

use conn::*;
use gate::*;

/// Bytes asked of the socket per read.
pub(super) const READ_CHUNK: usize = 64 * 1024;

/// Unsent output above which the task stops collecting replies (the client is not reading; the
/// engine then stops taking this connection's commands, and the task stops reading its socket).
pub(super) const WRITE_HIGH: usize = 256 * 1024;

/// Answers owed but not produced by the engine, beyond the command ring's capacity.
pub(super) const LOCAL_PENDING: usize = 256;

/// Binds the socket at `path` with permission bits `mode`. A stale socket file left by a
/// crashed daemon is replaced; a live one (something answers on it) is an error.
pub fn bind(path: &Path, mode: u32) -> io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("another process is serving on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// Accepts connections until `shutdown` turns true, then waits for every connection task to
/// finish its drain.
pub async fn serve(
    listener: UnixListener,
    ingress: Arc<Ingress>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if ingress.admit() {
                        ingress.counters.ingress.connections.fetch_add(1, Ordering::Relaxed);
                        let ingress = ingress.clone();
                        let shutdown = shutdown.clone();
                        tasks.spawn(async move {
                            connection(stream, &ingress, shutdown).await;
                            ingress.open.fetch_sub(1, Ordering::AcqRel);
                        });
                    } else {
                        ingress.counters.ingress.connections_refused.fetch_add(1, Ordering::Relaxed);
                        tasks.spawn(refuse(stream, ErrorCode::TooManyConnections, "the daemon serves max_connections connections already"));
                    }
                }
                Err(e) => {
                    // Out of file descriptors, for example: pause instead of spinning on it.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
}

pub(super) async fn refuse(stream: UnixStream, code: ErrorCode, reason: &str) {
    let mut out = Vec::new();
    json::write_reply(&WireReply::error(code, reason), &mut out);
    let _ = tokio::time::timeout(Duration::from_secs(1), write_all(&stream, &out)).await;
}

pub(super) async fn write_all(stream: &UnixStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        stream.writable().await?;
        match stream.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One answer owed to the client, in request order.
///
/// Small on purpose: a pipelining client has up to `max_pending` of these queued while its
/// replies wait for a commit, and every order pushes one. The rare answers with a body (an
/// error the task found, a query, a subscription) are boxed; inline, the largest of them made
/// every order's entry some hundreds of bytes, and copying those into a queue that outgrows
/// the cache took a fifth of the I/O thread's time under a pipelined durable stream.
pub(super) enum Pending {
    /// The next reply from the engine's ring; written once the command is as far as `ack`
    /// asks (processed, committed to the journal, or in the tables).
    Engine {
        /// The request's acknowledgement mode.
        ack: AckMode,
    },
    /// An answer the task already has (an error it found).
    Ready(Box<WireReply>),
    /// A question answered outside the engine's command path (stats, book, balances): asked
    /// only once every earlier request is answered, so that its answer includes them (`None`
    /// until then).
    Query(Box<Query>, Option<oneshot::Receiver<WireReply>>),
    /// A subscription (with its topic mask): once every earlier request is answered, the
    /// connection becomes a stream of events.
    Subscribe(Box<SubscribeRequest>, u32),
}

const _: () = assert!(
    std::mem::size_of::<Pending>() <= 24,
    "Pending grew: box the new variant's body"
);

/// Serves one connection from its first byte to its close.
pub(super) async fn connection(
    stream: UnixStream,
    ingress: &Arc<Ingress>,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Some((stream, framing, owed, request, mask)) =
        requests(stream, ingress, &mut shutdown).await
    {
        super::subscribe::serve(stream, framing, owed, request, mask, ingress, &mut shutdown).await;
    }
}

/// Serves requests until the connection closes; if it subscribes, returns the socket, its
/// framing, the output still owed, and the subscription.
pub(super) async fn requests(
    stream: UnixStream,
    ingress: &Arc<Ingress>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(UnixStream, Framing, Vec<u8>, SubscribeRequest, u32)> {
    let mut rbuf = Vec::with_capacity(READ_CHUNK);
    // The first byte decides the framing: `{` is JSON lines, anything else the binary magic.
    let need = |buf: &Vec<u8>| match buf.first() {
        None => 1,
        Some(b'{') => 1,
        Some(_) => HANDSHAKE_LEN,
    };
    while rbuf.len() < need(&rbuf) {
        tokio::select! {
            r = stream.readable() => {
                if r.is_err() { return None; }
                match stream.try_read_buf(&mut rbuf) {
                    Ok(0) => {
                        if !rbuf.is_empty() {
                            refuse(stream, ErrorCode::BadMagic, "the connection ended inside the binary handshake").await;
                        }
                        return None;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return None,
                }
            }
            _ = shutdown.changed() => return None,
        }
    }
    let framing = if rbuf[0] == b'{' {
        Framing::Json
    } else if rbuf[..4] != MAGIC {
        ingress
            .counters
            .ingress
            .bad_requests
            .fetch_add(1, Ordering::Relaxed);
        let reason = format!(
            "the first bytes are neither a JSON object nor the binary magic {MAGIC:?} (\"ORDP\")"
        );
        refuse(stream, ErrorCode::BadMagic, &reason).await;
        return None;
    } else if u16::from_le_bytes([rbuf[4], rbuf[5]]) != VERSION {
        let reason = format!(
            "binary protocol version {} is not supported; this daemon speaks version {VERSION}",
            u16::from_le_bytes([rbuf[4], rbuf[5]])
        );
        refuse(stream, ErrorCode::UnsupportedVersion, &reason).await;
        return None;
    } else {
        if write_all(&stream, &binary::handshake()).await.is_err() {
            return None;
        }
        Framing::Binary
    };
    let rpos = if framing == Framing::Binary {
        HANDSHAKE_LEN
    } else {
        0
    };

    // What the peer may do, from its uid (SO_PEERCRED); a peer whose uid cannot be read is
    // treated as an unknown uid.
    let uid = stream.peer_cred().map(|c| c.uid()).unwrap_or(u32::MAX);
    let grant = ingress
        .config
        .access
        .grant_for(uid, rustix::process::getuid().as_raw());
    let engine_cfg = &ingress.config.engine;
    let Ok(EngineRings {
        commands,
        replies,
        bell,
        cut,
    }) = link::register(ingress)
    else {
        refuse(
            stream,
            ErrorCode::Unavailable,
            "the engine is not taking connections",
        )
        .await;
        return None;
    };
    if *shutdown.borrow_and_update() {
        // Registered just as the daemon began to stop: dropping the rings ends it cleanly.
        refuse(
            stream,
            ErrorCode::ShuttingDown,
            "the daemon is shutting down",
        )
        .await;
        return None;
    }
    let mut conn = Conn {
        stream,
        ingress: ingress.clone(),
        framing,
        rbuf,
        rpos,
        wbuf: Vec::with_capacity(READ_CHUNK),
        wpos: 0,
        commands: Some(commands),
        replies,
        bell,
        cut,
        pending: VecDeque::new(),
        max_pending: engine_cfg.command_ring + LOCAL_PENDING,
        eof: false,
        closing: false,
        draining: false,
        skipping_line: false,
        blocked: false,
        paused: false,
        write_dead: false,
        ack: ingress.config.daemon.ack,
        session: 0,
        held: None,
        held_since: None,
        overdue: false,
        recv_ns: wall_ns(),
        recv_mono: mono_ns(),
        subscribing: false,
        grant,
    };
    let (request, mask) = conn.run(shutdown).await?;
    let Conn {
        stream,
        framing,
        mut wbuf,
        wpos,
        ..
    } = conn;
    wbuf.drain(..wpos);
    Some((stream, framing, wbuf, request, mask))
}

pub(super) async fn answer_at_front(pending: &mut VecDeque<Pending>) -> WireReply {
    match pending.front_mut() {
        Some(Pending::Query(_, Some(rx))) => rx.await.unwrap_or_else(|_| {
            WireReply::error(ErrorCode::Unavailable, "the answer could not be gathered")
        }),
        _ => std::future::pending().await,
    }
}

/// Sleeps until `at`, or forever if there is no `at`.
pub(super) async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
