//! MQTT 5 and MQTT 3.1.1 clients on the same port of the embedded broker, with rumqttc's two
//! clients: a v5 publisher reaches a v5 and a 3.1.1 subscriber; properties reach the v5 one
//! and are left out for the 3.1.1 one, whose connection survives them (live and retained).

use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS as QoS5;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

fn broker() -> u16 {
    let port = dtwin_broker::free_port().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(addr)).unwrap();
    port
}

/// What a v5 client receives: (topic, payload, properties).
type Received5 = (String, Vec<u8>, Option<PublishProperties>);

/// Each publish a v5 client receives; the ConnAck's reason first, as topic "connack".
fn v5_client(
    id: &str,
    port: u16,
) -> (rumqttc::v5::AsyncClient, mpsc::UnboundedReceiver<Received5>) {
    let mut opts = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut events) = rumqttc::v5::AsyncClient::new(opts, 64);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(rumqttc::v5::Event::Incoming(Packet::ConnAck(ack))) => {
                    let _ = tx.send(("connack".to_owned(), format!("{:?}", ack.code).into(), None));
                }
                Ok(rumqttc::v5::Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic).into_owned();
                    let _ = tx.send((topic, p.payload.to_vec(), p.properties));
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(("error".to_owned(), e.to_string().into(), None));
                    return;
                }
            }
        }
    });
    (client, rx)
}

/// (topic, payload) of each publish a 3.1.1 client receives; "connack" and "error" as above.
fn v311_client(
    id: &str,
    port: u16,
) -> (
    rumqttc::AsyncClient,
    mpsc::UnboundedReceiver<(String, Vec<u8>)>,
) {
    let mut opts = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut events) = rumqttc::AsyncClient::new(opts, 64);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => {
                    let _ = tx.send(("connack".to_owned(), format!("{:?}", ack.code).into()));
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let _ = tx.send((p.topic, p.payload.to_vec()));
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(("error".to_owned(), e.to_string().into()));
                    return;
                }
            }
        }
    });
    (client, rx)
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("nothing within 10 s")
        .expect("client task ended")
}

fn props() -> PublishProperties {
    PublishProperties {
        content_type: Some("application/json".to_owned()),
        user_properties: vec![("gateway".to_owned(), "edge-7".to_owned())],
        message_expiry_interval: Some(600),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_and_311_clients_share_one_port_and_one_router() {
    let port = broker();
    let (sub5, mut in5) = v5_client("sub-v5", port);
    let (sub4, mut in4) = v311_client("sub-v311", port);
    let (publ, mut pub_events) = v5_client("pub-v5", port);
    for (who, ack) in [
        ("v5 subscriber", next(&mut in5).await.1),
        ("v5 publisher", next(&mut pub_events).await.1),
    ] {
        assert_eq!(String::from_utf8_lossy(&ack), "Success", "{who}");
    }
    assert_eq!(
        next(&mut in4).await,
        ("connack".to_owned(), b"Success".to_vec())
    );
    sub5.subscribe("plant/#", QoS5::AtLeastOnce).await.unwrap();
    sub4.subscribe("plant/#", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();

    // Subscriptions are asynchronous: publish until both have one, then a second message
    // with properties, which the 3.1.1 subscriber gets without them and survives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (mut got5, mut got4) = (None, None);
    while got5.is_none() || got4.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no delivery");
        publ.publish_with_properties("plant/m1", QoS5::AtLeastOnce, false, "r1", props())
            .await
            .unwrap();
        let until = tokio::time::Instant::now() + Duration::from_millis(200);
        loop {
            tokio::select! {
                Some(m) = in5.recv(), if got5.is_none() => got5 = Some(m),
                Some(m) = in4.recv(), if got4.is_none() => got4 = Some(m),
                () = tokio::time::sleep_until(until) => break,
            }
        }
    }
    let (topic, payload, p) = got5.unwrap();
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        ("plant/m1", &b"r1"[..])
    );
    let p = p.expect("the v5 subscriber gets the properties");
    assert_eq!(p.user_properties, props().user_properties);
    assert_eq!(p.content_type, props().content_type);
    assert_eq!(got4.unwrap(), ("plant/m1".to_owned(), b"r1".to_vec()));

    // Drain the repeats of r1, then one more: the 3.1.1 connection is still up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while in4.try_recv().is_ok() {}
    while in5.try_recv().is_ok() {}
    publ.publish_with_properties("plant/m2", QoS5::AtLeastOnce, false, "r2", props())
        .await
        .unwrap();
    assert_eq!(
        next(&mut in4).await,
        ("plant/m2".to_owned(), b"r2".to_vec())
    );
    assert_eq!(next(&mut in5).await.0, "plant/m2");

    // The 3.1.1 client publishes; the v5 one receives it, without properties.
    sub4.publish("plant/m3", rumqttc::QoS::AtLeastOnce, false, "r3")
        .await
        .unwrap();
    let (topic, payload, p) = next(&mut in5).await;
    assert_eq!(
        (topic.as_str(), payload.as_slice(), p),
        ("plant/m3", &b"r3"[..], None)
    );
    assert_eq!(
        next(&mut in4).await,
        ("plant/m3".to_owned(), b"r3".to_vec())
    );

    // A retained message with properties, read later by a new 3.1.1 client.
    publ.publish_with_properties("plant/status", QoS5::AtLeastOnce, true, "up", props())
        .await
        .unwrap();
    assert_eq!(next(&mut in4).await.0, "plant/status");
    let (late, mut in_late) = v311_client("late-v311", port);
    assert_eq!(next(&mut in_late).await.0, "connack");
    late.subscribe("plant/status", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(
        next(&mut in_late).await,
        ("plant/status".to_owned(), b"up".to_vec())
    );
    late.publish("plant/after", rumqttc::QoS::AtLeastOnce, false, "ok")
        .await
        .unwrap();
    assert_eq!(
        next(&mut in4).await,
        ("plant/after".to_owned(), b"ok".to_vec())
    );
}
