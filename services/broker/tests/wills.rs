//! Last wills on the embedded broker, with raw MQTT 3.1.1 connections (so a test can drop a
//! socket without a DISCONNECT, as a gateway losing its link does) and a rumqttc subscriber:
//! a dead connection's will is published, a clean DISCONNECT's is not, and a reconnect with
//! the same client id (a takeover) does not publish the new connection's will, which stays
//! armed for when that connection dies (stock rumqttd publishes it at the takeover).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use tokio::sync::mpsc;

fn broker() -> u16 {
    let port = dtwin_broker::free_port().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(addr)).unwrap();
    port
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend(u16::try_from(s.len()).unwrap().to_be_bytes());
    out.extend(s.as_bytes());
}

/// A raw MQTT 3.1.1 connection with a QoS 1 will `payload` on `w/{client_id}`, accepted.
fn connect(port: u16, client_id: &str, payload: &str) -> TcpStream {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4];
    // Clean session, will flag, will QoS 1; keep alive 60 s.
    body.extend([0x02 | 0x04 | 0x08, 0, 60]);
    string(&mut body, client_id);
    string(&mut body, &format!("w/{client_id}"));
    string(&mut body, payload);
    let mut packet = vec![0x10, u8::try_from(body.len()).unwrap()];
    packet.extend(body);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&packet).unwrap();
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0], "{client_id}: CONNACK accepted");
    s
}

/// Every publish on `w/#` (topic, payload), once subscribed.
async fn watch(port: u16) -> mpsc::UnboundedReceiver<(String, String)> {
    let mut opts = rumqttc::MqttOptions::new("watcher", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut events) = rumqttc::AsyncClient::new(opts, 64);
    client
        .subscribe("w/#", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed_tx);
    tokio::spawn(async move {
        let _client = client;
        while let Ok(event) = events.poll().await {
            match event {
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => {
                    if let Some(s) = subscribed_tx.take() {
                        let _ = s.send(());
                    }
                }
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                    let payload = String::from_utf8_lossy(&p.payload).into_owned();
                    let _ = tx.send((p.topic, payload));
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .expect("subscribed")
        .unwrap();
    rx
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(String, String)>) -> (String, String) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a will within 10 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_connection_publishes_its_own_will_and_a_takeover_none() {
    let port = broker();
    let mut wills = watch(port).await;

    // A link lost without DISCONNECT: the will.
    let lost = connect(port, "lost", "lost is dead");
    drop(lost);
    assert_eq!(
        next(&mut wills).await,
        ("w/lost".to_owned(), "lost is dead".to_owned())
    );

    // A clean DISCONNECT: no will (the next will seen is another client's).
    let mut clean = connect(port, "clean", "clean is dead");
    clean.write_all(&[0xe0, 0]).unwrap();
    let mut rest = Vec::new();
    let _ = clean.read_to_end(&mut rest);
    drop(clean);

    // A gateway reconnects with the same client id before the broker saw its old link die.
    let old = connect(port, "gw", "bdSeq 0");
    let new = connect(port, "gw", "bdSeq 1");
    // The takeover ended the old connection: neither will is due (stock rumqttd publishes
    // "bdSeq 1" here, the will of the connection that is alive).
    let mut gone = Vec::new();
    let mut old = old;
    let _ = old.read_to_end(&mut gone);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(wills.try_recv().is_err(), "no will at the takeover");

    // The new connection dies: its own will.
    drop(new);
    assert_eq!(
        next(&mut wills).await,
        ("w/gw".to_owned(), "bdSeq 1".to_owned())
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        wills.try_recv().is_err(),
        "the clean client's will never came"
    );
}
