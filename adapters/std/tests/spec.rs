//! Connections opened from STAGE specs on the blocking adapter: the `crypto=` option reaches the
//! wire for more algorithm and padding spellings than the shared matrix (tests/matrix.rs, which
//! also covers Unix and UDP), and bad specs say which part was wrong.

use switchboard_proto::fault::{Blame, Fault};
use switchboard_proto::stage::{Command, Event};
use switchboard_std::{connect_spec, serve_spec, Control, Notice, SpecConnectError};

const CIPHERS: [&str; 6] = [
    "AES/CBC/PKCS5Padding=k1",
    "RIJNDAEL/CFB=k2",
    "SEED/CBC/PKCS1Padding=k3",
    "DES/CFB/NoPadding=k4",
    "plain-key-means-rijndael-cbc",
    "AES-256-GCM=k5",
];

/// A BSON document of a few fields, the kind of frame STAGE brokers exchange.
fn bson_frame(i: usize) -> Vec<u8> {
    let doc = bson::doc! { "seq": i as i64, "text": "한글 테스트", "blob": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![i as u8; i * 7] } };
    doc.to_vec().unwrap()
}

#[test]
fn encrypted_bson_echo_over_tcp_for_every_cipher() {
    for crypto in CIPHERS {
        let options = format!("packet=64k,64k&crypto={crypto}");
        let server = serve_spec(&format!("tcp://127.0.0.1:0?{options}"), |_| {
            |notice: Notice<Event, _>, control: &mut Control<Command>| {
                if let Notice::Event(Event::Frame(frame)) = notice {
                    // The server sees the plain document: decryption happened below it.
                    bson::Document::from_reader(&mut &frame[..]).expect("a decrypted BSON document");
                    control.send(Command::Send(frame));
                }
            }
        })
        .unwrap();
        let mut client =
            connect_spec(&format!("tcp://127.0.0.1:{}?{options}", server.local_addr().tcp().unwrap().port())).unwrap();
        for i in 0..20 {
            client.handle.send(Command::Send(bson_frame(i).into())).unwrap();
        }
        for i in 0..20 {
            let echo = client.events.by_ref().find_map(Notice::event).expect("an echo");
            assert_eq!(echo, Event::Frame(bson_frame(i).into()), "{crypto}: frame {i}");
        }
        client.close_and_join().unwrap();
        server.shutdown();
    }
}

#[cfg(unix)]
#[test]
fn encrypted_echo_over_a_unix_spec() {
    use switchboard_std::Addr;

    let path = std::env::temp_dir().join(format!("switchboard-std-spec-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let spec = format!("unix://{}?packet=64k,64k&crypto=SEED/CBC/PKCS5Padding=secret", path.display());
    let (peers_tx, peers) = std::sync::mpsc::channel();
    let server = serve_spec(&spec, move |peer: Addr| {
        peers_tx.send(peer).unwrap();
        |notice: Notice<Event, _>, control: &mut Control<Command>| {
            if let Notice::Event(Event::Frame(frame)) = notice {
                bson::Document::from_reader(&mut &frame[..]).expect("a decrypted BSON document");
                control.send(Command::Send(frame));
            }
        }
    })
    .unwrap();
    let local = server.local_addr();
    assert_eq!(local.tcp(), None);
    assert_eq!(local.unix().and_then(|a| a.as_pathname()), Some(path.as_path()));
    assert_eq!(local.to_string(), format!("unix://{}", path.display()));

    // The socket file is in use: a second server on the same path is refused, not given it.
    let err = serve_spec(&spec, |_| |_: Notice<Event, _>, _: &mut Control<Command>| {}).err().unwrap();
    assert!(matches!(&err, SpecConnectError::Io(e) if e.kind() == std::io::ErrorKind::AddrInUse), "{err}");

    let clients: Vec<_> = (0..2).map(|_| connect_spec(&spec).unwrap()).collect();
    for mut client in clients {
        for i in 0..20 {
            client.handle.send(Command::Send(bson_frame(i).into())).unwrap();
        }
        for i in 0..20 {
            let echo = client.events.by_ref().find_map(Notice::event).expect("an echo");
            assert_eq!(echo, Event::Frame(bson_frame(i).into()), "frame {i}");
        }
        client.close_and_join().unwrap();
        let peer = peers.recv().unwrap();
        assert!(peer.unix().is_some_and(|a| a.is_unnamed()), "{peer:?}");
    }
    assert_eq!(server.accepted(), 2);
    server.shutdown();
    let _ = std::fs::remove_file(&path);
}

#[test]
fn bad_specs_are_the_callers_fault_and_name_the_part() {
    let cases = [
        "tcp://127.0.0.1:1?packet=10q,1k",
        "tcp://127.0.0.1:1?packet&crypto=ROT13/CBC=key",
        "tcp://127.0.0.1:1?packet&crypto=AES/ECB=key",
        "ftp://127.0.0.1:1",
    ];
    for spec in cases {
        let err = connect_spec(spec).err().unwrap_or_else(|| panic!("{spec} was accepted"));
        assert!(matches!(err, SpecConnectError::Open(_)), "{spec}: {err}");
        assert_eq!(err.fault(), Fault::Caller, "{spec}");
    }
    let err = connect_spec("udp://127.0.0.1:9").err().unwrap();
    assert!(matches!(err, SpecConnectError::Unsupported(_)), "{err}");
}
