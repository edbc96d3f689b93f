//! The hub's join/leave events are bounded: an application that never takes them keeps at most
//! `HubSettings::events` (the newest), so join → leave churn does not grow the hub's memory
//! (the leak: 6,000 cycles took an unwatched hub from 3.4 to 11 MB).

use switchboard_proto::router::{ClientConfig, ClientEvent, Hello, Hub, HubConfig};
use switchboard_proto::SplitMix64;
use switchboard_rt::router::{self, HubEvent, HubSettings};
use switchboard_rt::{DriverConfig, RuntimeExt, SocketOptions};
use switchboard_tokio::Tokio;

#[tokio::test]
async fn unwatched_join_and_leave_events_keep_only_the_newest() {
    const KEPT: usize = 4;
    const CYCLES: usize = 10;
    let listener = Tokio.listen("127.0.0.1:0").unwrap();
    let addr = switchboard_rt::Listener::local_addr(&listener).unwrap();
    let hub = Hub::new(HubConfig::default(), Box::new(SplitMix64::new(3)));
    let settings = HubSettings { events: KEPT, ..HubSettings::default() };
    let (hub, accept) = router::serve_hub(Tokio, listener, hub, settings).unwrap();
    tokio::spawn(accept);
    for i in 0..CYCLES {
        let hello = Hello::new(format!("player{i}"), "demo").with_unique(format!("u{i}"));
        let config = ClientConfig::new(router::message_config(), hello);
        let client = router::connect(Tokio, addr, config, SocketOptions::new(), DriverConfig::default()).await.unwrap();
        assert!(matches!(client.recv().await, Some(Ok(ClientEvent::Welcome { .. }))));
        // Closing a welcomed client says bye; wait until the hub has seen it leave.
        client.join().await.unwrap();
        while !hub.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
    let mut kept = Vec::new();
    while let Some(event) = hub.try_event() {
        kept.push(match event {
            HubEvent::Joined(c) => format!("+{}", c.unique),
            HubEvent::Left { client, reason } => format!("-{} {reason}", client.unique),
        });
    }
    assert_eq!(kept, ["+u8", "-u8 bye", "+u9", "-u9 bye"], "the newest {KEPT} of {} events", 2 * CYCLES);
    assert_eq!(hub.events_dropped(), (2 * CYCLES - KEPT) as u64);
}

/// Past `HubSettings::max_connections` a connection is closed at once, unread, while the ones
/// already open stay; a place that frees up is taken again.
#[tokio::test]
async fn connections_past_the_hubs_limit_are_closed_at_once() {
    use std::io::Read;
    use std::time::Duration;
    let listener = Tokio.listen("127.0.0.1:0").unwrap();
    let addr = switchboard_rt::Listener::local_addr(&listener).unwrap();
    let hub = Hub::new(HubConfig::default(), Box::new(SplitMix64::new(3)));
    let settings = HubSettings { max_connections: 2, ..HubSettings::default() };
    let (hub, accept) = router::serve_hub(Tokio, listener, hub, settings).unwrap();
    tokio::spawn(accept);
    let open: Vec<std::net::TcpStream> = (0..2).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    while hub.connections().len() < 2 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let over = tokio::task::spawn_blocking(move || {
        let mut over = std::net::TcpStream::connect(addr).unwrap();
        over.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        // EOF long before the 10 s hello timeout: closed at once, nothing said.
        over.read_to_end(&mut got).map(|_| got)
    });
    let got = over.await.unwrap().expect("closed at once, not timed out");
    assert!(got.is_empty());
    assert_eq!(hub.refused_connections(), 1);
    assert_eq!(hub.connections().len(), 2, "the open ones stay");
    drop(open);
    while !hub.connections().is_empty() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _again = std::net::TcpStream::connect(addr).unwrap();
    while hub.connections().is_empty() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(hub.refused_connections(), 1, "a freed place is taken again");
}
