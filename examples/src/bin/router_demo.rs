//! The README's main job: the router hub (WIRE.md §5) on 127.0.0.1, served on tokio, with
//! players joining it, publishing datastore keys, and sending `broadcast`, `at` and `omit`
//! operations to each other; a late observer checks what the hub remembers; everyone says
//! `bye`. Every delivery is counted against what the protocol promises, and a report printed.
//!
//! Run: `cargo run --release -p switchboard-examples --bin router_demo [-- --players N --rounds N]`
//! (`-- --help` describes the options).

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::doc;
use clap::Parser;
use switchboard_proto::router::{
    ClientCommand, ClientConfig, ClientEvent, FromHub, Hello, Hub, HubConfig, RouterClient,
};
use switchboard_rt::OsEntropy;
use switchboard_tokio::router::{self, HubEvent, HubSettings};
use switchboard_tokio::{Connection, DriverConfig, RuntimeExt, SocketOptions, Tokio};
use tokio::sync::Barrier;

type BoxError = Box<dyn Error + Send + Sync>;

/// The router hub (WIRE.md §5) on 127.0.0.1 with players exchanging broadcast, at and omit
/// operations and datastore keys; every delivery is checked against what the protocol promises
#[derive(Parser)]
#[command(name = "router_demo")]
#[command(after_help = "Exit status: 0 when every delivery and the hub's account check out, 1 otherwise, \
2 bad arguments.")]
struct Args {
    /// Players joining the hub (at least 3: each whispers to its right neighbour with `at` and
    /// leaves it out of its news with `omit`)
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(3..))]
    players: u16,
    /// Rounds each player sends: one broadcast, one at and one omit per round
    #[arg(long, value_name = "N", default_value_t = 500)]
    rounds: u64,
}

/// What one player received, by kind.
#[derive(Default, Debug, Clone, Copy, PartialEq)]
struct Counts {
    broadcast: u64,
    at: u64,
    omit: u64,
    datastore: u64,
}

fn unique(i: usize) -> String {
    format!("p{i}")
}

async fn join(addr: SocketAddr, name: String, unique: Option<String>) -> Result<Connection<RouterClient>, BoxError> {
    let mut hello = Hello::new(name, "switchboard-demo");
    if let Some(unique) = unique {
        hello = hello.with_unique(unique);
    }
    let config = ClientConfig::new(router::message_config(), hello);
    let options = SocketOptions::new().nodelay(true);
    Ok(router::connect(Tokio, addr, config, options, DriverConfig::default()).await?)
}

async fn next(conn: &Connection<RouterClient>, who: &str) -> Result<ClientEvent, BoxError> {
    match conn.recv().await {
        Some(Ok(event)) => Ok(event),
        Some(Err(refused)) => Err(format!("{who}: command refused: {refused}").into()),
        None => Err(format!("{who}: the connection ended: {:?}", conn.stats()).into()),
    }
}

/// One player: join, wait for everyone, send `rounds` of each operation, receive exactly what
/// the others owe it, then wait for the observer and say bye.
async fn player(
    i: usize,
    players: usize,
    rounds: u64,
    addr: SocketAddr,
    barriers: Arc<[Barrier; 3]>,
) -> Result<Counts, BoxError> {
    let me = unique(i);
    let conn = join(addr, format!("player-{i}"), Some(me.clone())).await?;
    let ClientEvent::Welcome { clients, .. } = next(&conn, &me).await? else {
        return Err(format!("{me}: no welcome").into());
    };
    let mut present = clients.len();
    while present < players - 1 {
        match next(&conn, &me).await? {
            ClientEvent::Hub(FromHub::Connected(_)) => present += 1,
            other => return Err(format!("{me}: unexpected {other:?} while waiting for the others").into()),
        }
    }
    barriers[0].wait().await;

    let right = unique((i + 1) % players);
    conn.send(ClientCommand::datastore("level", i.to_string())).await?;
    for k in 0..rounds as i64 {
        let data = doc! { "from": i as i64, "k": k };
        conn.send(ClientCommand::broadcast("chat", data.clone())).await?;
        conn.send(ClientCommand::at(vec![right.clone()], "whisper", data.clone())).await?;
        conn.send(ClientCommand::omit(vec![right.clone()], "news", data)).await?;
    }

    // What the protocol promises this player: every other's broadcasts and datastore key, the
    // whispers of its left neighbour only, and the news of everyone but itself and its left
    // neighbour (who omits it).
    let others = players as u64 - 1;
    let expected = Counts { broadcast: others * rounds, at: rounds, omit: (others - 1) * rounds, datastore: others };
    let left = (i + players - 1) % players;
    let mut got = Counts::default();
    while got != expected {
        match next(&conn, &me).await? {
            ClientEvent::Hub(FromHub::Op { from, op, data }) => {
                let sender = data.get_i64("from").map_err(|e| format!("{me}: {e}"))?;
                if from != unique(sender as usize) {
                    return Err(format!("{me}: {op} from {from} says it is from {sender}").into());
                }
                match op.as_str() {
                    "chat" => got.broadcast += 1,
                    "whisper" if sender as usize == left => got.at += 1,
                    "news" if sender as usize != left => got.omit += 1,
                    _ => return Err(format!("{me}: {op} from {from} should not have reached it").into()),
                }
            }
            ClientEvent::Hub(FromHub::Datastore { .. }) => got.datastore += 1,
            other => return Err(format!("{me}: unexpected {other:?}").into()),
        }
        if got.broadcast > expected.broadcast || got.at > expected.at || got.omit > expected.omit {
            return Err(format!("{me}: more than promised: {got:?}").into());
        }
    }
    barriers[1].wait().await; // everyone has everything: the observer joins now
    barriers[2].wait().await; // the observer has checked
    conn.send(ClientCommand::bye(Some("game over"))).await?;
    // The hub closes after the bye; the events left (the observer's arrival) end with it.
    while conn.recv().await.is_some() {}
    conn.join().await?;
    Ok(got)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let Args { players, rounds } = Args::parse();
    let players = usize::from(players);

    let listener = Tokio.listen("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let hub = Hub::new(HubConfig::default(), Box::new(OsEntropy));
    let (hub, accept) = router::serve_hub(Tokio, listener, hub, HubSettings::default())?;
    tokio::spawn(accept);
    println!("router_demo: hub on {addr}; {players} players x {rounds} rounds of broadcast, at and omit");

    let start = Instant::now();
    let barriers = Arc::new([Barrier::new(players), Barrier::new(players + 1), Barrier::new(players + 1)]);
    let tasks: Vec<_> =
        (0..players).map(|i| tokio::spawn(player(i, players, rounds, addr, barriers.clone()))).collect();

    // The observer joins once every player has published and received everything: the hub's
    // welcome must list them all with their datastore.
    barriers[1].wait().await;
    let observer = join(addr, "observer".into(), None).await?;
    let ClientEvent::Welcome { unique: observer_unique, ip, clients } = next(&observer, "observer").await? else {
        return Err("observer: no welcome".into());
    };
    let levels_seen = clients
        .iter()
        .filter(|c| {
            c.datastore.get("level").map(String::as_str)
                == c.unique[1..].parse::<usize>().ok().map(|i| i.to_string()).as_deref()
        })
        .count();
    if clients.len() != players || levels_seen != players {
        return Err(format!("observer: welcome lists {} clients, {levels_seen} with their level", clients.len()).into());
    }
    println!("  observer {observer_unique} at {ip}: welcome lists all {players} players with their datastore");
    barriers[2].wait().await;

    let mut left = 0;
    while left < players {
        match next(&observer, "observer").await? {
            ClientEvent::Hub(FromHub::Disconnected { reason, .. }) if reason == "game over" => left += 1,
            other => return Err(format!("observer: unexpected {other:?}").into()),
        }
    }
    let mut total = Counts::default();
    for task in tasks {
        let got = task.await??;
        total.broadcast += got.broadcast;
        total.at += got.at;
        total.omit += got.omit;
        total.datastore += got.datastore;
    }
    observer.send(ClientCommand::bye(None)).await?;
    while observer.recv().await.is_some() {}
    observer.join().await?;
    let elapsed = start.elapsed();

    // The hub's own account: every join and every leave, with its reason.
    let (mut joined, mut byes) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while byes < players + 1 && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(100), hub.next_event()).await {
            Ok(Some(HubEvent::Joined(_))) => joined += 1,
            Ok(Some(HubEvent::Left { reason, .. })) if reason == "game over" || reason == "bye" => byes += 1,
            Ok(Some(HubEvent::Left { client, reason })) => {
                return Err(format!("hub: {} left with {reason:?}", client.fullname()).into())
            }
            Ok(None) | Err(_) => {}
        }
    }
    let ops = total.broadcast + total.at + total.omit;
    println!(
        "  {ops} operations delivered and verified (broadcast {}, at {}, omit {}), {} datastore updates relayed",
        total.broadcast, total.at, total.omit, total.datastore
    );
    println!(
        "  hub: {joined} joined, {byes} left with bye, {} still connected; {:.0} ms, {:.0} deliveries/s",
        hub.len(),
        elapsed.as_secs_f64() * 1e3,
        ops as f64 / elapsed.as_secs_f64()
    );
    if joined != players + 1 || byes != players + 1 || !hub.is_empty() {
        return Err("the hub's account does not match".into());
    }
    Ok(())
}
