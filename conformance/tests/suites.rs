//! The wire suites: Switchboard's reference targets pass every case, and deliberately lax
//! servers fail exactly the cases whose rules they break (so a passing case means something).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use switchboard_conformance::{message, reference, stage, Report, Target};

fn assert_all_pass(report: &Report) {
    assert!(report.passed(), "{report}");
}

/// The names of the failed cases.
fn failed(report: &Report) -> Vec<&'static str> {
    report.failures().map(|o| o.case.name).collect()
}

#[test]
fn switchboard_passes_the_stage_suite() {
    for max_in in [8192, 300] {
        let server = reference::stage_echo(TcpListener::bind("127.0.0.1:0").unwrap(), max_in).unwrap();
        let report = stage::run(&Target::new(server.local_addr()).max_in(max_in), None);
        assert_eq!(report.outcomes.len(), stage::CASES.len());
        assert_all_pass(&report);
        server.shutdown();
    }
}

#[test]
fn switchboard_passes_the_message_suite() {
    let server = reference::message_echo(TcpListener::bind("127.0.0.1:0").unwrap(), 8192).unwrap();
    let report = message::run(&Target::new(server.local_addr()), None);
    assert_eq!(report.outcomes.len(), message::CASES.len());
    assert_all_pass(&report);
    server.shutdown();
}

#[test]
fn only_runs_the_named_case() {
    let server = reference::stage_echo(TcpListener::bind("127.0.0.1:0").unwrap(), 8192).unwrap();
    let report = stage::run(&Target::new(server.local_addr()), Some("over-the-limit"));
    assert_eq!(report.outcomes.iter().map(|o| o.case.name).collect::<Vec<_>>(), ["over-the-limit"]);
    assert!(report.passed());
    assert!(stage::run(&Target::new(server.local_addr()), Some("no-such-case")).outcomes.is_empty());
    server.shutdown();
}

/// Accept connections on a thread each, handled by `serve`.
fn lax_server(serve: fn(TcpStream)) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream));
        }
    });
    addr
}

/// A STAGE echo with none of the checks: any announced length is read in full (no IN), a
/// length under 4 counts as 4, and bit 31 is passed through.
fn lax_stage(mut stream: TcpStream) {
    let mut header = [0u8; 4];
    while stream.read_exact(&mut header).is_ok() {
        let len = (u32::from_le_bytes(header) & 0x7fff_ffff).max(4) as usize;
        let mut frame = header.to_vec();
        frame.resize(len, 0);
        if stream.read_exact(&mut frame[4..]).is_err() || stream.write_all(&frame).is_err() {
            return;
        }
    }
}

/// A message echo that answers every frame of 13 bytes or more, whatever its type, and skips
/// shorter ones.
fn lax_message(mut stream: TcpStream) {
    let mut header = [0u8; 4];
    while stream.read_exact(&mut header).is_ok() {
        let len = u32::from_le_bytes(header) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        if body.len() >= 9 {
            body[0] = 1; // response
            let mut reply = header.to_vec();
            reply.extend_from_slice(&body);
            if stream.write_all(&reply).is_err() {
                return;
            }
        }
    }
}

#[test]
fn a_stage_server_without_the_limit_checks_fails_exactly_those_cases() {
    let addr = lax_server(lax_stage);
    let report = stage::run(&Target::new(addr).timeout(Duration::from_millis(300)), None);
    // `bad-peer-spares-others` provokes its failure with a short header too.
    assert_eq!(
        failed(&report),
        ["over-the-limit", "length-under-four", "encrypted-without-cipher", "bad-peer-spares-others"],
        "{report}"
    );
    let text = report.to_string();
    assert!(text.contains("still open"), "over IN: the lax server waits for the body\n{text}");
    assert!(text.contains("4 bytes arrived after a header announcing length 0"), "the echoed header\n{text}");
    assert!(text.contains("WIRE.md §2"), "each failure names its rule\n{text}");
}

#[test]
fn a_message_server_answering_everything_fails_exactly_those_cases() {
    let addr = lax_server(lax_message);
    let report = message::run(&Target::new(addr).timeout(Duration::from_millis(300)), None);
    assert_eq!(
        failed(&report),
        ["notification-unanswered", "heartbeat-unanswered", "unknown-type", "shorter-than-prefix"],
        "{report}"
    );
}

#[test]
fn a_target_that_is_not_there_fails_every_case_with_an_io_error() {
    // A port just released: nothing listens on it.
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let report = stage::run(&Target::new(addr).timeout(Duration::from_millis(300)), None);
    assert_eq!(report.failures().count(), stage::CASES.len());
    assert!(report.failures().all(|o| matches!(o.result, Err(switchboard_conformance::Failure::Io(_)))));
}

#[test]
fn a_probe_tells_a_target_that_is_there_from_one_that_is_not() {
    let server = reference::stage_echo(TcpListener::bind("127.0.0.1:0").unwrap(), 8192).unwrap();
    Target::new(server.local_addr()).probe().unwrap();
    server.shutdown();
    let gone = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let err = Target::new(gone).timeout(Duration::from_millis(300)).probe().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

/// The STAGE echo on the tokio adapter, each connection on the `Direct` driver in its own task
/// (`direct`) or on the channel driver (`!direct`): the suite checks the drivers' handling of
/// errors and EOF, not only the machine's.
fn tokio_stage_echo(direct: bool) -> std::net::SocketAddr {
    use switchboard_conformance::reference::stage_config;
    use switchboard_tokio::proto::stage::{Command, Event, PacketConnection};
    use switchboard_tokio::{DriverConfig, RuntimeExt, SocketOptions, Tokio};
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let listener = runtime.block_on(async { Tokio.listen("127.0.0.1:0") }).unwrap();
    let addr = listener.local_addr().unwrap();
    let (options, config) = (SocketOptions::new(), DriverConfig::default());
    let make = move |_: &_| PacketConnection::new(stage_config(8192));
    thread::spawn(move || {
        runtime.block_on(async move {
            if direct {
                Tokio
                    .serve_direct(listener, options, config, make, |mut conn| async move {
                        while let Some(Ok(Event::Frame(frame))) = conn.recv().await {
                            if conn.send(Command::Send(frame)).await.is_err() {
                                break;
                            }
                        }
                        let _ = conn.close_and_join().await;
                    })
                    .await
            } else {
                Tokio
                    .serve_with(listener, options, config, make, |conn| async move {
                        while let Some(delivery) = conn.recv().await {
                            if let Ok(Event::Frame(frame)) = delivery {
                                if conn.send(Command::Send(frame)).await.is_err() {
                                    break;
                                }
                            }
                        }
                    })
                    .await
            }
        })
    });
    addr
}

#[test]
fn the_tokio_direct_driver_passes_the_stage_suite() {
    assert_all_pass(&stage::run(&Target::new(tokio_stage_echo(true)), None));
}

#[test]
fn the_tokio_channel_driver_passes_the_stage_suite() {
    assert_all_pass(&stage::run(&Target::new(tokio_stage_echo(false)), None));
}

#[test]
fn a_message_target_with_an_in_too_small_for_a_message_frame_is_refused() {
    let err = reference::message_echo(TcpListener::bind("127.0.0.1:0").unwrap(), 8).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}

#[test]
fn switchboard_passes_the_router_suite() {
    use switchboard_proto::router::UniquePolicy;
    let hub = reference::router_hub(TcpListener::bind("127.0.0.1:0").unwrap(), UniquePolicy::Replace).unwrap();
    let report = switchboard_conformance::router::run(&Target::new(hub.local_addr()), None);
    assert_eq!(report.outcomes.len(), switchboard_conformance::router::CASES.len());
    assert_all_pass(&report);
    hub.shutdown();
}

#[test]
fn a_hub_that_rejects_taken_uniques_fails_exactly_the_replace_case() {
    use switchboard_proto::router::UniquePolicy;
    let hub = reference::router_hub(TcpListener::bind("127.0.0.1:0").unwrap(), UniquePolicy::Reject).unwrap();
    let report =
        switchboard_conformance::router::run(&Target::new(hub.local_addr()).timeout(Duration::from_millis(500)), None);
    assert_eq!(failed(&report), ["replace"], "{report}");
    assert!(report.to_string().contains("unique_in_use"), "the failure shows what the hub answered\n{report}");
    hub.shutdown();
}
