//! Last wills kept per connection, not per client id.
//!
//! rumqttd 0.20 keeps a will in a map keyed by client id and publishes whatever that map holds
//! when a connection ends. When a client reconnects with the same client id before the broker
//! has seen the old connection die (a gateway whose link dropped, the usual case), the new
//! CONNECT replaces the map's entry, the router drops the old connection, and the old
//! connection's end publishes the *new* connection's will: a Sparkplug edge node's NDEATH
//! carrying the bdSeq of the NBIRTH it is about to send (the host then takes a live node
//! offline), a service's retained "offline" status while it is online. The new connection
//! then has no will left.
//!
//! So the codec ([`crate::protocol::AnyVersion`]) takes the will out of every CONNECT before
//! rumqttd sees it and keeps it with the connection ([`ConnectionWill`]); the will is armed
//! when the broker accepts the connection (a successful CONNACK goes out) and published by
//! [`Wills`] when the connection ends without a DISCONNECT (or with MQTT 5's "disconnect with
//! will message"), unless a newer connection with the same client id took over in the
//! meantime: the client is back, so it is not dead (MQTT 5 does the same for a session
//! resumed within the will delay). The will delay interval itself is not honoured: a will is
//! published when its connection ends.
//!
//! Publishing goes through a local link into the same router (a thread of its own), with the
//! will's QoS, retain flag and MQTT 5 properties.

use rumqttd::protocol::{LastWill, LastWillProperties};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Mutex;

/// A will to publish: the CONNECT's will and its MQTT 5 properties.
pub type Will = (LastWill, Option<LastWillProperties>);

/// Which connection of each client id is the newest accepted one, and where wills to publish
/// go. Shared by every connection of a broker.
#[derive(Debug)]
pub struct Wills {
    newest: Mutex<HashMap<String, u64>>,
    next: AtomicU64,
    publish: Mutex<Sender<Will>>,
}

impl Wills {
    /// A registry sending the wills to publish to the returned receiver.
    pub fn new() -> (Self, Receiver<Will>) {
        let (tx, rx) = std::sync::mpsc::channel();
        (
            Self {
                newest: Mutex::new(HashMap::new()),
                next: AtomicU64::new(1),
                publish: Mutex::new(tx),
            },
            rx,
        )
    }

    /// A connection of `client_id` was accepted: it is the newest; returns its generation.
    fn accept(&self, client_id: &str) -> u64 {
        let generation = self.next.fetch_add(1, Ordering::Relaxed);
        if !client_id.is_empty() {
            lock(&self.newest).insert(client_id.to_owned(), generation);
        }
        generation
    }

    /// The connection `generation` of `client_id` ended: whether it was still the newest (no
    /// other connection took its client id over). An empty client id (the broker assigns a
    /// unique one) is never taken over.
    fn end(&self, client_id: &str, generation: u64) -> bool {
        if client_id.is_empty() {
            return true;
        }
        let mut newest = lock(&self.newest);
        if newest.get(client_id) == Some(&generation) {
            newest.remove(client_id);
            true
        } else {
            false
        }
    }

    fn send(&self, will: Will) {
        // The receiver lives as long as the broker's router; after that nobody would read it.
        let _ = lock(&self.publish).send(will);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One connection's will, from its CONNECT to its end.
#[derive(Debug, Default)]
pub struct ConnectionWill {
    client_id: String,
    will: Option<Will>,
    /// Set when the broker accepted the connection.
    generation: Option<u64>,
    /// A DISCONNECT (without "with will message") was read: the will is discarded.
    clean: bool,
}

impl ConnectionWill {
    /// The CONNECT was read: its client id and will (taken out of the packet).
    pub fn connect(&mut self, client_id: &str, will: Option<Will>) {
        self.client_id = client_id.to_owned();
        self.will = will;
    }

    /// A DISCONNECT was read; `with_will`: MQTT 5's reason "disconnect with will message".
    pub fn disconnect(&mut self, with_will: bool) {
        self.clean = !with_will;
    }

    /// The broker accepted the connection (a successful CONNACK is written).
    pub fn accepted(&mut self, wills: &Wills) {
        if self.generation.is_none() {
            self.generation = Some(wills.accept(&self.client_id));
        }
    }

    /// The connection ended: its will is published when it was accepted, did not disconnect
    /// cleanly and was not taken over by a newer connection with its client id.
    pub fn ended(&mut self, wills: &Wills) {
        let Some(generation) = self.generation.take() else {
            return;
        };
        let newest = wills.end(&self.client_id, generation);
        if let Some(will) = self.will.take() {
            if newest && !self.clean {
                wills.send(will);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rumqttd::protocol::QoS;

    fn will(payload: &'static str) -> Option<Will> {
        Some((
            LastWill {
                topic: Bytes::from_static(b"w"),
                message: Bytes::from_static(payload.as_bytes()),
                qos: QoS::AtLeastOnce,
                retain: false,
            },
            None,
        ))
    }

    fn published(rx: &Receiver<Will>) -> Vec<Bytes> {
        rx.try_iter().map(|(w, _)| w.message).collect()
    }

    #[test]
    fn a_connection_that_dies_publishes_its_own_will_once() {
        let (wills, rx) = Wills::new();
        let mut c = ConnectionWill::default();
        c.connect("gw", will("A"));
        c.accepted(&wills);
        c.ended(&wills);
        c.ended(&wills);
        assert_eq!(published(&rx), ["A"]);
    }

    #[test]
    fn a_clean_disconnect_or_a_refused_connect_publishes_nothing() {
        let (wills, rx) = Wills::new();
        let mut clean = ConnectionWill::default();
        clean.connect("gw", will("A"));
        clean.accepted(&wills);
        clean.disconnect(false);
        clean.ended(&wills);
        let mut refused = ConnectionWill::default();
        refused.connect("gw", will("B"));
        refused.ended(&wills);
        assert!(published(&rx).is_empty());
        // MQTT 5's "disconnect with will message" does publish it.
        let mut asked = ConnectionWill::default();
        asked.connect("gw", will("C"));
        asked.accepted(&wills);
        asked.disconnect(true);
        asked.ended(&wills);
        assert_eq!(published(&rx), ["C"]);
    }

    #[test]
    fn a_takeover_publishes_neither_will_until_the_newest_connection_dies() {
        let (wills, rx) = Wills::new();
        let mut old = ConnectionWill::default();
        old.connect("gw", will("old"));
        old.accepted(&wills);
        let mut new = ConnectionWill::default();
        new.connect("gw", will("new"));
        new.accepted(&wills);
        // The router drops the old connection after accepting the new one.
        old.ended(&wills);
        assert!(published(&rx).is_empty());
        new.ended(&wills);
        assert_eq!(published(&rx), ["new"]);
    }

    #[test]
    fn an_old_connection_that_ends_before_the_new_one_is_accepted_publishes_its_will() {
        let (wills, rx) = Wills::new();
        let mut old = ConnectionWill::default();
        old.connect("gw", will("old"));
        old.accepted(&wills);
        old.ended(&wills);
        let mut new = ConnectionWill::default();
        new.connect("gw", will("new"));
        new.accepted(&wills);
        assert_eq!(published(&rx), ["old"]);
        // Other client ids, and anonymous ones, do not interfere.
        let mut other = ConnectionWill::default();
        other.connect("other", will("other"));
        other.accepted(&wills);
        let (mut a, mut b) = (ConnectionWill::default(), ConnectionWill::default());
        a.connect("", will("anon-a"));
        b.connect("", will("anon-b"));
        a.accepted(&wills);
        b.accepted(&wills);
        a.ended(&wills);
        b.ended(&wills);
        other.ended(&wills);
        assert_eq!(published(&rx), ["anon-a", "anon-b", "other"]);
    }
}
