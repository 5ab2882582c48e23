//! Drives one Diameter connection: moves bytes between a TCP stream and the sans-IO
//! [`Peer`], runs its timers, and hands events to the owner through [`ConnectionHooks`].
//! It serves either end: the router simulator drives its connections (initiator) with it, and
//! the simulator's tests their scripted SAEs (responder).

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::Framed;

use super::codec::DiameterCodec;
use crate::codes::DisconnectCause;
use crate::error::CodecError;
use crate::message::Message;
use crate::peer::{CloseReason, Event, Peer, PeerInfo, RequestFailure, RequestId};
use crate::watchdog::WatchdogState;

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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::net::TcpListener;

    use super::*;
    use crate::avp::{Avp, Value};
    use crate::capabilities::{Capabilities, VendorApplication};
    use crate::codes::{app, avp, command, result, vendor};
    use crate::dictionary::Dictionary;
    use crate::peer::{PeerConfig, Role};

    /// Reports the hooks' calls as text.
    struct Hooks {
        host: &'static str,
        seen: mpsc::UnboundedSender<String>,
    }

    impl ConnectionHooks for Hooks {
        fn capabilities(&mut self, info: &PeerInfo) -> Result<(), (u32, String)> {
            let _ = self
                .seen
                .send(format!("cer {}", info.capabilities.origin_host));
            Ok(())
        }
        fn up(&mut self, info: &PeerInfo) {
            let _ = self
                .seen
                .send(format!("up {}", info.capabilities.origin_host));
        }
        fn request(&mut self, request: Message) -> Message {
            let _ = self.seen.send(format!(
                "request {}",
                request.session_id().unwrap_or_default()
            ));
            let mut answer = Message::answer_to(&request);
            answer.set_result_code(result::SUCCESS);
            answer.push_origin(self.host, "test.realm");
            answer
        }
        fn closed(&mut self, reason: &CloseReason) {
            let _ = self.seen.send(format!("closed {reason:?}"));
        }
    }

    fn peer(role: Role, host: &str, ip: std::net::IpAddr, seed: u64) -> Peer {
        let caps = Capabilities {
            origin_host: host.into(),
            origin_realm: "test.realm".into(),
            host_ip_addresses: vec![ip],
            vendor_id: vendor::JUNIPER,
            product_name: "connection-test".into(),
            supported_vendor_ids: vec![vendor::JUNIPER],
            vendor_specific_applications: vec![VendorApplication::auth(vendor::JUNIPER, app::JSRC)],
            ..Default::default()
        };
        let config = PeerConfig::new(role, caps, Arc::new(Dictionary::base()));
        Peer::new(Arc::new(config), seed, false)
    }

    fn str_request(session_id: &str) -> Message {
        let mut m = Message::request(command::SESSION_TERMINATION, app::JSRC, true);
        m.push(Avp::mandatory(
            avp::SESSION_ID,
            &Value::Utf8String(session_id.into()),
        ));
        m.push_origin("client.test.realm", "test.realm");
        m.push(Avp::mandatory(
            avp::DESTINATION_REALM,
            &Value::DiameterIdentity("test.realm".into()),
        ));
        m.push(Avp::mandatory(
            avp::AUTH_APPLICATION_ID,
            &Value::Unsigned32(app::JSRC),
        ));
        m.push(Avp::mandatory(
            avp::TERMINATION_CAUSE,
            &Value::Enumerated(1),
        ));
        m
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a hook call in time")
            .expect("hooks alive")
    }

    #[tokio::test]
    async fn both_ends_exchange_capabilities_a_request_and_a_disconnect() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (server_seen, mut server_rx) = mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            let (stream, remote) = listener.accept().await.unwrap();
            let peer = peer(Role::Responder, "server.test.realm", addr.ip(), 1);
            let hooks = Hooks {
                host: "server.test.realm",
                seen: server_seen,
            };
            let (_handle, commands) = channel(remote);
            drive(stream, peer, hooks, commands).await
        });

        let stream = TcpStream::connect(addr).await.unwrap();
        let (client_seen, mut client_rx) = mpsc::unbounded_channel();
        let peer = peer(Role::Initiator, "client.test.realm", addr.ip(), 2);
        let hooks = Hooks {
            host: "client.test.realm",
            seen: client_seen,
        };
        let (handle, commands) = channel(addr);
        let client = tokio::spawn(drive(stream, peer, hooks, commands));

        assert_eq!(next(&mut server_rx).await, "cer client.test.realm");
        assert_eq!(next(&mut server_rx).await, "up client.test.realm");
        assert_eq!(next(&mut client_rx).await, "up server.test.realm");

        let answer = handle
            .request(str_request("client.test.realm;1;1"), None)
            .await
            .expect("an answer");
        assert_eq!(next(&mut server_rx).await, "request client.test.realm;1;1");
        assert_eq!(answer.result_code(), Some(result::SUCCESS));
        assert_eq!(answer.session_id(), Some("client.test.realm;1;1"));
        assert_eq!(answer.origin_host(), Some("server.test.realm"));

        assert!(
            handle
                .send(Command::Disconnect(DisconnectCause::Rebooting))
                .await
        );
        assert_eq!(client.await.unwrap(), CloseReason::LocalDisconnect);
        assert_eq!(
            server.await.unwrap(),
            CloseReason::PeerDisconnected(Some(DisconnectCause::Rebooting))
        );
        assert_eq!(next(&mut client_rx).await, "closed LocalDisconnect");
        // The connection is gone: a request fails at once.
        assert_eq!(
            handle
                .request(str_request("client.test.realm;1;2"), None)
                .await,
            Err(RequestFailure::ConnectionClosed)
        );
    }
}
