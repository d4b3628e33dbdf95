//! MQTT 3.1.1 and MQTT 5 on one listener.
//!
//! rumqttd runs one protocol per listener (`[v4.x]` or `[v5.x]` servers), and a 3.1.1 listener
//! drops a v5 client's CONNECT (protocol level 5) without a CONNACK: `mosquitto_pub -V mqttv5`
//! reports "The connection was lost". Its `Server` takes any [`Protocol`] and keeps one copy of
//! it per connection (`Network` owns it, `read_mut` takes `&mut self`), so [`AnyVersion`] picks
//! the codec from the protocol level of the connection's CONNECT and keeps it for the rest of
//! the connection. Every connection goes to the same router, so a v5 gateway's publishes reach
//! the services' 3.1.1 subscriptions and the other way round.
//!
//! A 3.1.1 connection never gets MQTT 5 properties: a message published over v5 with
//! properties (user properties, content type, expiry, ...) reaches a 3.1.1 subscriber without
//! them. rumqttd's own v4 codec hits `unreachable!` on such a packet, which would end the
//! subscriber's connection; [`AnyVersion`] strips them first.
//!
//! The codec also keeps each connection's last will ([`crate::wills`]): rumqttd keeps wills
//! by client id and, on a reconnect with the same client id, publishes the new connection's
//! will when the old one is dropped.
//!
//! # Layout
//! - [`AnyVersion`]: the per-connection codec.
//! - [`connect_level`]: the protocol level of a CONNECT at the start of a buffer.

use crate::wills::{ConnectionWill, Wills};
use bytes::BytesMut;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::v5::V5;
use rumqttd::protocol::{ConnectReturnCode, DisconnectReasonCode, Error, Packet, Protocol};
use std::sync::{Arc, Mutex};

/// The MQTT version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5 (protocol level 5).
    V5,
}

/// A codec that speaks the version of the connection's CONNECT: MQTT 5 for protocol level 5,
/// MQTT 3.1.1 otherwise (rumqttd's v4 codec then refuses levels other than 4, as before).
///
/// With [`AnyVersion::with_wills`] it also keeps the connection's will and hands it to the
/// registry when the connection ends (see [`crate::wills`]). rumqttd clones the codec for
/// every connection: a clone starts a fresh connection and shares the registry.
#[derive(Debug, Default)]
pub struct AnyVersion {
    version: Option<Version>,
    wills: Option<Arc<Wills>>,
    will: Mutex<ConnectionWill>,
}

impl Clone for AnyVersion {
    fn clone(&self) -> Self {
        Self {
            version: self.version,
            wills: self.wills.clone(),
            will: Mutex::default(),
        }
    }
}

impl Drop for AnyVersion {
    /// The connection ended (rumqttd drops its codec with it).
    fn drop(&mut self) {
        if let Some(wills) = &self.wills {
            lock(&self.will).ended(wills);
        }
    }
}

fn lock(m: &Mutex<ConnectionWill>) -> std::sync::MutexGuard<'_, ConnectionWill> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AnyVersion {
    /// A codec whose connections keep their wills and publish them through `wills`.
    pub fn with_wills(wills: Arc<Wills>) -> Self {
        Self {
            version: None,
            wills: Some(wills),
            will: Mutex::default(),
        }
    }

    /// The version chosen, once the CONNECT has been read.
    pub fn version(&self) -> Option<Version> {
        self.version
    }
}

impl Protocol for AnyVersion {
    fn read_mut(&mut self, stream: &mut BytesMut, max_size: usize) -> Result<Packet, Error> {
        let version = match self.version {
            Some(v) => v,
            None => {
                let v = match connect_level(stream)? {
                    Some(5) => Version::V5,
                    _ => Version::V311,
                };
                self.version = Some(v);
                v
            }
        };
        let packet = match version {
            Version::V5 => V5.read_mut(stream, max_size),
            Version::V311 => V4.read_mut(stream, max_size),
        }?;
        if self.wills.is_none() {
            return Ok(packet);
        }
        Ok(match packet {
            Packet::Connect(connect, props, will, will_props, login) => {
                let will = will.map(|w| (w, will_props));
                lock(&self.will).connect(&connect.client_id, will);
                Packet::Connect(connect, props, None, None, login)
            }
            Packet::Disconnect(d, props) => {
                let with_will = d.reason_code == DisconnectReasonCode::DisconnectWithWillMessage;
                lock(&self.will).disconnect(with_will);
                Packet::Disconnect(d, props)
            }
            other => other,
        })
    }

    fn write(&self, packet: Packet, write: &mut BytesMut) -> Result<usize, Error> {
        if let (Some(wills), Packet::ConnAck(ack, _)) = (&self.wills, &packet) {
            if ack.code == ConnectReturnCode::Success {
                lock(&self.will).accepted(wills);
            }
        }
        match self.version {
            Some(Version::V5) => V5.write(packet, write),
            _ => V4.write(without_properties(packet), write),
        }
    }
}

/// The protocol level of the CONNECT packet at the start of `stream`, without consuming it.
///
/// `Ok(None)` when the first packet is not a CONNECT or is malformed: the v4 codec then reads
/// it and reports the error (and rumqttd closes a connection whose first packet is not a
/// CONNECT).
///
/// # Errors
/// [`Error::InsufficientBytes`] until the level byte has arrived.
pub fn connect_level(stream: &[u8]) -> Result<Option<u8>, Error> {
    let Some(&first) = stream.first() else {
        return Err(Error::InsufficientBytes(2));
    };
    if first >> 4 != 1 {
        return Ok(None);
    }
    // Remaining length: 1 to 4 bytes, 7 bits each, high bit = more.
    let mut remaining: usize = 0;
    let mut pos = 1;
    loop {
        let Some(&b) = stream.get(pos) else {
            return Err(Error::InsufficientBytes(1));
        };
        remaining |= usize::from(b & 0x7f) << (7 * (pos - 1));
        pos += 1;
        if b & 0x80 == 0 {
            break;
        }
        if pos > 4 {
            return Ok(None);
        }
    }
    // Variable header: protocol name (u16 length + bytes), then the level.
    let need = |n: usize| match stream.len() {
        have if have >= n => Ok(()),
        have => Err(Error::InsufficientBytes(n - have)),
    };
    need(pos + 2)?;
    let name_len = usize::from(u16::from_be_bytes([stream[pos], stream[pos + 1]]));
    if name_len + 3 > remaining {
        return Ok(None);
    }
    let level_at = pos + 2 + name_len;
    need(level_at + 1)?;
    Ok(Some(stream[level_at]))
}

/// The packet with its MQTT 5 properties dropped, for a 3.1.1 connection.
fn without_properties(packet: Packet) -> Packet {
    match packet {
        Packet::Connect(connect, _, will, _, login) => {
            Packet::Connect(connect, None, will, None, login)
        }
        Packet::ConnAck(p, _) => Packet::ConnAck(p, None),
        Packet::Publish(p, _) => Packet::Publish(p, None),
        Packet::PubAck(p, _) => Packet::PubAck(p, None),
        Packet::Subscribe(p, _) => Packet::Subscribe(p, None),
        Packet::SubAck(p, _) => Packet::SubAck(p, None),
        Packet::PubRec(p, _) => Packet::PubRec(p, None),
        Packet::PubRel(p, _) => Packet::PubRel(p, None),
        Packet::PubComp(p, _) => Packet::PubComp(p, None),
        Packet::Unsubscribe(p, _) => Packet::Unsubscribe(p, None),
        Packet::UnsubAck(p, _) => Packet::UnsubAck(p, None),
        Packet::Disconnect(p, _) => Packet::Disconnect(p, None),
        p @ (Packet::PingReq(_) | Packet::PingResp(_)) => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rumqttd::protocol::{Publish, PublishProperties};

    /// A CONNECT as mosquitto_pub sends it (client id "c", keep alive 60).
    fn connect(level: u8) -> Vec<u8> {
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', level, 0x02, 0, 60];
        if level == 5 {
            body.push(0); // no properties
        }
        body.extend([0, 1, b'c']);
        let mut out = vec![0x10, body.len() as u8];
        out.extend(body);
        out
    }

    #[test]
    fn reads_the_level_of_a_connect_and_waits_for_it() {
        assert_eq!(connect_level(&connect(4)), Ok(Some(4)));
        assert_eq!(connect_level(&connect(5)), Ok(Some(5)));
        for cut in 0..9 {
            assert!(
                matches!(
                    connect_level(&connect(5)[..cut]),
                    Err(Error::InsufficientBytes(_))
                ),
                "{cut} bytes"
            );
        }
        // A PUBLISH first, or a protocol name longer than the packet: left to the v4 codec.
        assert_eq!(connect_level(&[0x30, 2, 0, 0]), Ok(None));
        assert_eq!(connect_level(&[0x10, 3, 0, 9, b'M']), Ok(None));
        // A remaining length of more than 4 bytes is malformed.
        assert_eq!(
            connect_level(&[0x10, 0x80, 0x80, 0x80, 0x80, 0x01]),
            Ok(None)
        );
    }

    #[test]
    fn picks_the_codec_from_the_connect_and_keeps_it() {
        for (level, version) in [(4, Version::V311), (5, Version::V5)] {
            let mut codec = AnyVersion::default();
            // The CONNECT arrives in two pieces.
            let bytes = connect(level);
            let mut stream = BytesMut::from(&bytes[..5]);
            assert!(matches!(
                codec.read_mut(&mut stream, 1024),
                Err(Error::InsufficientBytes(_))
            ));
            stream.extend_from_slice(&bytes[5..]);
            let packet = codec.read_mut(&mut stream, 1024).unwrap();
            assert!(matches!(packet, Packet::Connect(ref c, ..) if c.client_id == "c"));
            assert_eq!(codec.version(), Some(version));
            assert!(stream.is_empty());
        }
        // Level 3 (MQTT 3.1) is refused as before.
        let mut codec = AnyVersion::default();
        let mut stream = BytesMut::from(&connect(3)[..]);
        assert_eq!(
            codec.read_mut(&mut stream, 1024).unwrap_err(),
            Error::InvalidProtocolLevel(3)
        );
    }

    #[test]
    fn a_311_connection_gets_publishes_without_properties() {
        let publish = Publish::new(Bytes::from_static(b"t"), Bytes::from_static(b"x"), false);
        let props = PublishProperties {
            content_type: Some("application/json".to_owned()),
            user_properties: vec![("k".to_owned(), "v".to_owned())],
            ..Default::default()
        };
        let mut v4 = AnyVersion::default();
        v4.read_mut(&mut BytesMut::from(&connect(4)[..]), 1024)
            .unwrap();
        let mut out = BytesMut::new();
        v4.write(
            Packet::Publish(publish.clone(), Some(props.clone())),
            &mut out,
        )
        .unwrap();
        let mut plain = BytesMut::new();
        V4.write(Packet::Publish(publish.clone(), None), &mut plain)
            .unwrap();
        assert_eq!(out, plain);

        let mut v5 = AnyVersion::default();
        v5.read_mut(&mut BytesMut::from(&connect(5)[..]), 1024)
            .unwrap();
        let mut out = BytesMut::new();
        v5.write(Packet::Publish(publish, Some(props.clone())), &mut out)
            .unwrap();
        let Packet::Publish(_, Some(back)) = V5.read_mut(&mut out, 1024).unwrap() else {
            panic!("no properties");
        };
        assert_eq!(back, props);
    }
}
