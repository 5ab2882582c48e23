//! A raw Diameter client for tests: writes any bytes, reads whole frames.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use sae_diameter::codes::{app, avp, command, vendor};
use sae_diameter::{Avp, Frame, FrameDecoder, Message, Value};
use sae_node::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Client {
    stream: TcpStream,
    buf: BytesMut,
    frames: FrameDecoder,
    next_id: u32,
}

/// What reading produced.
#[derive(Debug)]
pub enum Read {
    Message(Message),
    Closed,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Client {
            stream,
            buf: BytesMut::new(),
            frames: FrameDecoder::default(),
            next_id: 1,
        }
    }

    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Sends a request with fresh identifiers; returns its Hop-by-Hop.
    pub async fn send(&mut self, mut msg: Message) -> u32 {
        if msg.is_request() {
            msg.header.hop_by_hop = self.next_id;
            msg.header.end_to_end = self.next_id;
            self.next_id += 1;
        }
        let bytes = msg.encode().unwrap();
        self.write_raw(&bytes).await;
        msg.header.hop_by_hop
    }

    /// The next message, or Closed on EOF/reset. Fails the test after 60 s (virtual or real).
    pub async fn read(&mut self) -> Read {
        loop {
            match self.frames.decode(&mut self.buf) {
                Ok(Some(Frame::Message(m))) => return Read::Message(m),
                Ok(Some(Frame::Malformed { error, .. })) => {
                    panic!("node sent a malformed frame: {error}")
                }
                Err(e) => panic!("node sent unframeable bytes: {e}"),
                Ok(None) => {}
            }
            let n =
                tokio::time::timeout(Duration::from_secs(60), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("no answer from the node");
            match n {
                Ok(0) | Err(_) => return Read::Closed,
                Ok(_) => {}
            }
        }
    }

    pub async fn expect_message(&mut self) -> Message {
        match self.read().await {
            Read::Message(m) => m,
            Read::Closed => panic!("connection closed, expected a message"),
        }
    }

    pub async fn expect_closed(&mut self) {
        loop {
            match self.read().await {
                Read::Closed => return,
                Read::Message(m) => {
                    assert!(
                        m.header.command_code == command::DEVICE_WATCHDOG,
                        "expected close, got command {}",
                        m.header.command_code
                    )
                }
            }
        }
    }

    /// CER as router `host`, expecting CEA with `expected` Result-Code.
    pub async fn exchange_capabilities(&mut self, host: &str, apps: &[u32]) -> Message {
        self.send(cer(host, apps)).await;
        let cea = self.expect_message().await;
        assert_eq!(cea.header.command_code, command::CAPABILITIES_EXCHANGE);
        assert!(!cea.is_request());
        cea
    }
}

pub fn ident(code: u32, s: &str) -> Avp {
    Avp::mandatory(code, &Value::DiameterIdentity(s.into()))
}

pub fn cer(host: &str, apps: &[u32]) -> Message {
    let mut m = Message::request(command::CAPABILITIES_EXCHANGE, 0, false)
        .with(ident(avp::ORIGIN_HOST, host))
        .with(ident(avp::ORIGIN_REALM, "test.realm"))
        .with(Avp::mandatory(
            avp::HOST_IP_ADDRESS,
            &Value::Address("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into()),
        ))
        .with(Avp::mandatory(
            avp::VENDOR_ID,
            &Value::Unsigned32(vendor::JUNIPER),
        ))
        .with(Avp::new(
            avp::PRODUCT_NAME,
            0,
            sae_diameter::AvpFlags::none(),
            &Value::Utf8String("test-router".into()),
        ));
    for &a in apps {
        m.push(Avp::mandatory(
            avp::AUTH_APPLICATION_ID,
            &Value::Unsigned32(a),
        ));
    }
    m
}

pub fn aar(host: &str, application: u32) -> Message {
    Message::request(command::AA, application, true)
        .with(Avp::mandatory(
            avp::SESSION_ID,
            &Value::Utf8String(format!("{host};1;1")),
        ))
        .with(Avp::mandatory(
            avp::AUTH_APPLICATION_ID,
            &Value::Unsigned32(application),
        ))
        .with(ident(avp::ORIGIN_HOST, host))
        .with(ident(avp::ORIGIN_REALM, "test.realm"))
        .with(ident(avp::DESTINATION_REALM, "test.realm"))
        .with(Avp::mandatory(
            avp::USER_NAME,
            &Value::Utf8String("alice@isp".into()),
        ))
}

pub fn jsrc() -> u32 {
    app::JSRC
}

/// A node config on 127.0.0.1:0 with extra `[diameter]` lines.
pub fn config(extra: &str) -> Config {
    // Each node gets its own data directory, kept for the life of the test process.
    let data = tempfile::tempdir().expect("temp dir").keep();
    config_in(&data, extra)
}

/// A configuration keeping its data in `data`.
pub fn config_in(data: &std::path::Path, extra: &str) -> Config {
    config_text(data, extra, "")
}

/// A node config on 127.0.0.1:0 with extra `[diameter]` lines and extra `[cops]` lines.
pub fn config_cops(extra: &str, cops: &str) -> Config {
    let data = tempfile::tempdir().expect("temp dir").keep();
    config_text(&data, extra, cops)
}

/// Like [`config_cops`] with the data kept in `data`.
pub fn config_cops_in(data: &std::path::Path, extra: &str, cops: &str) -> Config {
    config_text(data, extra, cops)
}

fn config_text(data: &std::path::Path, extra: &str, cops: &str) -> Config {
    let text = format!(
        "[node]\ndata_dir = {data:?}\n[metrics]\nlisten = \"127.0.0.1:0\"\n[cops]\nlisten = \"127.0.0.1:0\"\n{cops}\n[grpc]\nlisten = \"127.0.0.1:0\"\n[diameter]\nlisten = \"127.0.0.1:0\"\norigin_host = \"sae.test.realm\"\norigin_realm = \"test.realm\"\nwatchdog_interval_secs = 6\n{extra}\n"
    );
    Config::from_toml(
        &text,
        std::path::Path::new("test.toml"),
        std::path::Path::new("."),
    )
    .unwrap()
}
