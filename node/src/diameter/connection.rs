//! Drives one Diameter connection: moves bytes between a TCP stream and the sans-IO
//! [`Peer`], runs its timers, and hands events to the owner through [`ConnectionHooks`].
//! The same driver serves the node (responder) and the simulator (initiator).

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use sae_diameter::codes::DisconnectCause;
use sae_diameter::peer::{RequestFailure, RequestId};
use sae_diameter::watchdog::WatchdogState;
use sae_diameter::{CloseReason, Event, Message, Peer, PeerInfo};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::Framed;

use super::codec::{CodecError, DiameterCodec};

/// What the owner of a connection decides and hears about.
pub trait ConnectionHooks: Send + 'static {
    /// Responder: a valid CER arrived. `Ok` accepts; `Err((result_code, message))` refuses.
    fn capabilities(&mut self, info: &PeerInfo) -> Result<(), (u32, String)>;
    /// The connection is open.
    fn up(&mut self, info: &PeerInfo);
    /// An application request; the returned answer is sent.
    fn request(&mut self, request: Message) -> Message;
    /// The watchdog changed state.
    fn watchdog(&mut self, _state: WatchdogState) {}
    /// The connection ended.
    fn closed(&mut self, reason: &CloseReason);
}

/// Commands another task can send to a running connection.
#[derive(Debug)]
pub enum Command {
    /// Send DPR with this cause and close on DPA.
    Disconnect(DisconnectCause),
    /// Another connection of the same peer took over: close now.
    Replace,
    /// Send a request; the answer (or why there is none) comes back on `reply`.
    Request {
        request: Message,
        timeout: Option<Duration>,
        reply: oneshot::Sender<Result<Message, RequestFailure>>,
    },
}

/// Sender side of a connection's command channel.
#[derive(Debug, Clone)]
pub struct ConnectionHandle {
    pub remote: SocketAddr,
    tx: mpsc::Sender<Command>,
}

impl ConnectionHandle {
    /// Sends a command; false if the connection has ended.
    pub async fn send(&self, cmd: Command) -> bool {
        self.tx.send(cmd).await.is_ok()
    }

    /// Sends a command without waiting; false if the connection has ended or is saturated.
    pub fn try_send(&self, cmd: Command) -> bool {
        self.tx.try_send(cmd).is_ok()
    }

    /// Sends a request and waits for its answer.
    pub async fn request(
        &self,
        request: Message,
        timeout: Option<Duration>,
    ) -> Result<Message, RequestFailure> {
        let (reply, rx) = oneshot::channel();
        if !self
            .send(Command::Request {
                request,
                timeout,
                reply,
            })
            .await
        {
            return Err(RequestFailure::ConnectionClosed);
        }
        rx.await.unwrap_or(Err(RequestFailure::ConnectionClosed))
    }
}

/// A command channel for a connection about to be driven.
pub fn channel(remote: SocketAddr) -> (ConnectionHandle, mpsc::Receiver<Command>) {
    let (tx, rx) = mpsc::channel(64);
    (ConnectionHandle { remote, tx }, rx)
}

/// Runs the connection until it closes; returns why.
pub async fn drive<H: ConnectionHooks>(
    stream: TcpStream,
    mut peer: Peer,
    mut hooks: H,
    mut commands: mpsc::Receiver<Command>,
) -> CloseReason {
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, DiameterCodec::new(peer.limits()));
    let mut waiting: std::collections::HashMap<
        RequestId,
        oneshot::Sender<Result<Message, RequestFailure>>,
    > = std::collections::HashMap::new();
    let mut commands_open = true;
    peer.connected(Instant::now().into_std());
    loop {
        let mut closed = None;
        while let Some(event) = peer.poll_event() {
            let now = Instant::now().into_std();
            match event {
                Event::CapabilitiesReceived(info) => match hooks.capabilities(&info) {
                    Ok(()) => peer.accept(now),
                    Err((code, message)) => peer.reject(now, code, &message),
                },
                Event::Up(info) => hooks.up(&info),
                Event::Request(request) => {
                    let answer = hooks.request(request);
                    if let Err(e) = peer.send_answer(answer) {
                        tracing::warn!(error = %e, "answer not sent");
                    }
                }
                Event::Answer { id, answer } => {
                    if let Some(reply) = waiting.remove(&id) {
                        let _ = reply.send(Ok(answer));
                    }
                }
                Event::RequestFailed { id, reason } => {
                    if let Some(reply) = waiting.remove(&id) {
                        let _ = reply.send(Err(reason));
                    }
                }
                Event::Watchdog(state) => hooks.watchdog(state),
                Event::Closed(reason) => closed = Some(reason),
            }
        }
        let mut write_failed = false;
        while let Some(bytes) = peer.poll_transmit() {
            if framed.feed(bytes).await.is_err() {
                write_failed = true;
                break;
            }
        }
        if !write_failed && framed.flush().await.is_err() {
            write_failed = true;
        }
        if let Some(reason) = closed {
            hooks.closed(&reason);
            return reason;
        }
        if write_failed {
            peer.transport_closed(Instant::now().into_std());
            continue;
        }
        let deadline = peer.poll_timeout().map(Instant::from_std);
        tokio::select! {
            frame = framed.next() => {
                let now = Instant::now().into_std();
                match frame {
                    Some(Ok(frame)) => peer.handle_frame(now, frame),
                    Some(Err(CodecError::Framing(e))) => peer.handle_framing_error(now, e),
                    Some(Err(CodecError::Io(e))) => {
                        tracing::debug!(error = %e, "read failed");
                        peer.transport_closed(now);
                    }
                    None => peer.transport_closed(now),
                }
            }
            () = sleep_until(deadline) => peer.handle_timeout(Instant::now().into_std()),
            cmd = commands.recv(), if commands_open => {
                let now = Instant::now().into_std();
                match cmd {
                    None => commands_open = false,
                    Some(Command::Disconnect(cause)) => peer.disconnect(now, cause),
                    Some(Command::Replace) => peer.replaced(now),
                    Some(Command::Request { request, timeout, reply }) => {
                        let sent = match timeout {
                            Some(t) => peer.send_request_with_timeout(now, request, t),
                            None => peer.send_request(now, request),
                        };
                        match sent {
                            Ok(id) => { waiting.insert(id, reply); }
                            Err(e) => { let _ = reply.send(Err(RequestFailure::NotSent(e.to_string()))); }
                        }
                    }
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
