//! TCP_NODELAY for rumqttd's connections.
//!
//! rumqttd never sets TCP_NODELAY on the sockets it accepts and has no option for it, so with
//! Nagle's algorithm on, a small publish it forwards waits until the previous one is
//! acknowledged, and a client that delays its ACK (Linux: up to 40 ms) holds every hop of the
//! pipeline back: measured, a 25 ms median telemetry -> risk latency at only 1,000 msg/s.
//!
//! On Linux an accepted socket inherits TCP_NODELAY from its listening socket, so it suffices
//! to set the option on rumqttd's listeners once they are bound. rumqttd keeps them to itself;
//! they are found among this process's file descriptors (`/proc/self/fd`), duplicated with
//! `pidfd_getfd` (a safe, owned descriptor of the same socket) and recognised by their local
//! address and listening state. Elsewhere this is a no-op reporting zero listeners.
//!
//! # Layout
//! - [`set_on_listeners`]: the search and the `setsockopt`.

use std::net::SocketAddr;

/// Sets TCP_NODELAY on this process's listening TCP sockets bound to one of `addrs`, and
/// returns how many it found.
///
/// # Errors
/// The descriptor table or the process's pidfd cannot be read.
#[cfg(target_os = "linux")]
pub fn set_on_listeners(addrs: &[SocketAddr]) -> std::io::Result<usize> {
    use rustix::process::{getpid, pidfd_getfd, pidfd_open, PidfdFlags, PidfdGetfdFlags};
    let me = pidfd_open(getpid(), PidfdFlags::empty())?;
    let mut found = 0;
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Some(n) = entry?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // Descriptors closed since read_dir listed them, or not sockets, simply fail below.
        let Ok(fd) = pidfd_getfd(&me, n, PidfdGetfdFlags::empty()) else {
            continue;
        };
        let listening = rustix::net::sockopt::socket_acceptconn(&fd).unwrap_or(false);
        let local = rustix::net::getsockname(&fd)
            .ok()
            .and_then(|a| SocketAddr::try_from(a).ok());
        if listening && local.is_some_and(|a| addrs.contains(&a)) {
            rustix::net::sockopt::set_tcp_nodelay(&fd, true)?;
            found += 1;
        }
    }
    Ok(found)
}

/// TCP_NODELAY of this process's socket connected to `peer` (tests: the broker's side of a
/// client's connection).
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn nodelay_of_socket_to(peer: SocketAddr) -> Option<bool> {
    use rustix::process::{getpid, pidfd_getfd, pidfd_open, PidfdFlags, PidfdGetfdFlags};
    let me = pidfd_open(getpid(), PidfdFlags::empty()).ok()?;
    std::fs::read_dir("/proc/self/fd").ok()?.find_map(|e| {
        let n = e.ok()?.file_name().to_str()?.parse::<i32>().ok()?;
        let fd = pidfd_getfd(&me, n, PidfdGetfdFlags::empty()).ok()?;
        let p = SocketAddr::try_from(rustix::net::getpeername(&fd).ok()??).ok()?;
        (p == peer).then(|| rustix::net::sockopt::tcp_nodelay(&fd).ok())?
    })
}

/// Not Linux: accepted sockets keep rumqttd's defaults.
///
/// # Errors
/// Never.
#[cfg(not(target_os = "linux"))]
pub fn set_on_listeners(_addrs: &[SocketAddr]) -> std::io::Result<usize> {
    Ok(0)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn accepted_sockets_inherit_nodelay_from_a_listener_found_by_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(set_on_listeners(&[addr]).unwrap(), 1);
        let _client = TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
        // The other listener was left alone.
        let _c2 = TcpStream::connect(other.local_addr().unwrap()).unwrap();
        let (acc2, _) = other.accept().unwrap();
        assert!(!acc2.nodelay().unwrap());
    }
}
