//! The datagram driver over real UDP sockets, unicast and multicast.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::thread;

use bytes::Bytes;
use common::{frame, numbered, GUARD};
use switchboard_proto::stage::{self, DatagramCommand, DatagramEvent, FramingConfig, PacketDatagram};
use switchboard_std::{
    net, run_datagram, spawn_datagram, Control, Multicast, MulticastInterface, Notice, Running, Settings, SocketOptions,
};

fn settings() -> Settings<DatagramCommand> {
    Settings::new()
}

/// A STAGE datagram endpoint taking frames up to `max_in` bytes; `Send` goes to `default_to`.
fn endpoint(max_in: usize, default_to: Option<SocketAddr>) -> PacketDatagram {
    PacketDatagram::new(FramingConfig::packet(max_in, 0), default_to)
}

/// The event for `frame` arriving from `from`.
fn arrived(from: SocketAddr, frame: Bytes) -> DatagramEvent {
    DatagramEvent::Frame { from, frame }
}

fn next_event(running: &Running<PacketDatagram>) -> DatagramEvent {
    match running.events.recv_timeout(GUARD).expect("a datagram in time").expect("driver running") {
        Notice::Event(e) => e,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn udp_packet_echo() {
    let server_socket = net::bind_udp("127.0.0.1:0".parse().unwrap(), &SocketOptions::new()).unwrap();
    let server_addr = server_socket.local_addr().unwrap();
    // The echo side in callback form: each frame goes back to its sender; "bye" closes.
    let server = thread::spawn(move || {
        let mut bad = Vec::new();
        run_datagram(server_socket, endpoint(64 * 1024, None), settings(), |notice, control: &mut Control<_>| {
            match notice {
                Notice::Event(DatagramEvent::Frame { frame, .. }) if &frame[4..] == b"bye" => control.close(),
                Notice::Event(DatagramEvent::Frame { from, frame }) => {
                    control.send(DatagramCommand::SendBodyTo(from, frame.slice(4..)))
                }
                Notice::Event(DatagramEvent::Dropped { from, error }) => bad.push((from, error)),
                other => panic!("unexpected {other:?}"),
            }
        })
        .map(|()| bad)
    });

    let client_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let client_addr = client_socket.local_addr().unwrap();
    let raw = client_socket.try_clone().unwrap();
    let client = spawn_datagram(client_socket, endpoint(64 * 1024, Some(server_addr)), settings()).unwrap();
    // One at a time, so no datagram can be dropped by a full receive buffer.
    for (i, len) in [4usize, 100, 1400, 9000, 60_000].into_iter().enumerate() {
        let body = numbered(i as u32, len);
        client.handle.send(DatagramCommand::SendBody(body.clone())).unwrap();
        assert_eq!(next_event(&client), arrived(server_addr, frame(&body)));
    }
    // A datagram that is not exactly one frame is reported and the socket goes on.
    raw.send_to(b"\x09\x00\x00\x00abc", server_addr).unwrap();
    client.handle.send(DatagramCommand::SendBody(Bytes::from_static(b"after"))).unwrap();
    assert_eq!(next_event(&client), arrived(server_addr, frame(b"after")));
    client.handle.send(DatagramCommand::SendBody(Bytes::from_static(b"bye"))).unwrap();

    let bad = server.join().unwrap().unwrap();
    assert_eq!(bad, [(client_addr, stage::Error::DatagramLengthMismatch { announced: 9, actual: 7 })]);
    assert!(client.handle.stats().bytes_written > 70_000);
    client.close_and_join().unwrap();
}

#[test]
fn ipv4_multicast_reaches_both_receivers_on_loopback() {
    let group = IpAddr::V4(Ipv4Addr::new(239, 255, 77, 1));
    let membership = Multicast::new(group).interface(MulticastInterface::V4(Ipv4Addr::LOCALHOST)).loopback(true);
    let first = match membership.bind(0, &SocketOptions::new()) {
        Ok(socket) => socket,
        Err(e) => return println!("skipped: the kernel refuses IPv4 multicast on lo: {e}"),
    };
    let port = first.local_addr().unwrap().port();
    let second = membership.bind(port, &SocketOptions::new()).unwrap();

    let sender_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    membership.configure_sender(&sender_socket).unwrap();
    let sender_addr = sender_socket.local_addr().unwrap();
    let sender = spawn_datagram(sender_socket, endpoint(1024, Some(SocketAddr::new(group, port))), settings()).unwrap();

    let receivers: Vec<_> = [first, second]
        .into_iter()
        .map(|socket| {
            let leave = socket.try_clone().unwrap();
            (spawn_datagram(socket, endpoint(1024, None), settings()).unwrap(), leave)
        })
        .collect();
    for i in 0..5 {
        let body = numbered(i, 32);
        sender.handle.send(DatagramCommand::SendBody(body.clone())).unwrap();
        for (receiver, _) in &receivers {
            assert_eq!(next_event(receiver), arrived(sender_addr, frame(&body)));
        }
    }
    for (receiver, socket) in receivers {
        membership.leave(&socket).unwrap();
        receiver.close_and_join().unwrap();
    }
    sender.close_and_join().unwrap();
}

#[test]
fn ipv6_multicast_join_and_leave() {
    let socket = match net::bind_udp("[::1]:0".parse().unwrap(), &SocketOptions::new()) {
        Ok(socket) => socket,
        Err(e) => return println!("skipped: no IPv6 loopback: {e}"),
    };
    // Interface-local scope on the loopback interface (index 1 on Linux).
    let membership = Multicast::new("ff01::1:2".parse().unwrap()).interface(MulticastInterface::Index(1)).ttl(1);
    if let Err(e) = membership.join(&socket) {
        return println!("skipped: the kernel refuses IPv6 multicast on lo: {e}");
    }
    membership.leave(&socket).unwrap();
    // Leaving twice is the system's error, passed on as it is.
    assert!(membership.leave(&socket).is_err());
}
