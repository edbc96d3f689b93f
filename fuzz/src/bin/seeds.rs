//! Writes the committed seed corpora, `fuzz/seeds/<target>/`, from the conformance vectors
//! (`shared/vectors/stage-crypto.json`) and the frames the protocol tests use, each in the
//! script layout its target reads (see `switchboard_fuzz::Script`).
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --features seeds --bin seeds [-- VECTORS.json]
//! ```
//!
//! Runs on stable. Rewrites every seed directory it knows, so the corpora stay reproducible.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use switchboard_fuzz::{cipher_pair, reference_frame, ScriptWriter, StreamCase};
use switchboard_proto::crypto::CipherSpec;
use switchboard_proto::message::{Message, MessageKind};
use switchboard_proto::router::{ClientDoc, FromHub, Hello, RefuseCode, Refused, ToHub, Welcome};

/// One vector frame: the plain frame, its cipher spec (`None`: a bare key) and key, and the
/// encrypted frame.
struct VectorFrame {
    plain: Vec<u8>,
    spec: Option<String>,
    key: String,
    encrypted: Vec<u8>,
}

/// One cipher vector: spec, key, plaintext and ciphertext.
struct VectorCipher {
    spec: String,
    key: String,
    plaintext: Vec<u8>,
    ciphertext: Vec<u8>,
}

fn load_vectors(path: &Path) -> (Vec<VectorFrame>, Vec<VectorCipher>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("the vectors are JSON");
    let field = |v: &serde_json::Value, key: &str| v[key].as_str().unwrap_or_else(|| panic!("no {key}")).to_owned();
    let hex = |v: &serde_json::Value, key: &str| hex::decode(field(v, key)).expect("hex");
    let frames = json["frames"].as_array().expect("frames").iter().map(|f| VectorFrame {
        plain: hex(f, "plain_frame_hex"),
        spec: f["crypto"].as_str().map(str::to_owned),
        key: field(f, "key"),
        encrypted: hex(f, "encrypted_frame_hex"),
    });
    let ciphers = json["ciphers"].as_array().expect("ciphers").iter().map(|c| VectorCipher {
        spec: field(c, "spec"),
        key: field(c, "key"),
        plaintext: hex(c, "plaintext_hex"),
        ciphertext: hex(c, "ciphertext_hex"),
    });
    (frames.collect(), ciphers.collect())
}

/// The index of a spec in `CipherSpec::all()`, as the targets' spec byte reads it.
fn spec_index(spec: &str) -> u8 {
    let spec: CipherSpec = spec.parse().expect("a vector spec parses");
    CipherSpec::all().position(|s| s == spec).expect("every spec is listed") as u8
}

/// The seed directory of one target, emptied.
struct Seeds {
    dir: PathBuf,
    count: usize,
}

impl Seeds {
    fn new(root: &Path, target: &str) -> Self {
        let dir = root.join(target);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the seed directory");
        Seeds { dir, count: 0 }
    }

    fn add(&mut self, name: &str, bytes: &[u8]) {
        std::fs::write(self.dir.join(name), bytes).expect("write a seed");
        self.count += 1;
    }
}

fn message_frame(kind: MessageKind, id: u64, payload: &[u8]) -> Vec<u8> {
    Message::new(kind, id, Bytes::copy_from_slice(payload)).to_frame().expect("encodes").to_vec()
}

fn sample_client(unique: &str) -> ClientDoc {
    let mut client = ClientDoc {
        name: "bob".into(),
        game: "chess".into(),
        unique: unique.into(),
        ip: "192.0.2.7".into(),
        ..ClientDoc::default()
    };
    client.datastore.insert("color".into(), "white".into());
    client
}

fn main() {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let vectors = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| fuzz_dir.join("../../shared/vectors/stage-crypto.json"));
    let (frames, ciphers) = load_vectors(&vectors);
    let root = fuzz_dir.join("seeds");
    let bson_frames: Vec<u8> = frames.iter().flat_map(|f| f.plain.iter().copied()).collect();

    let mut s = Seeds::new(&root, "stage_packet");
    for (i, frame) in frames.iter().enumerate() {
        s.add(&format!("vector_frame_{i}"), &StreamCase::write(8192, true, &frame.plain));
    }
    s.add("vector_frames_all", &StreamCase::write(8192, true, &bson_frames));
    s.add("hello_then_short_header", &StreamCase::write(16, false, b"\x09\x00\x00\x00hello\x03\x00\x00\x00"));
    s.add("over_in", &StreamCase::write(16, false, b"\x05\x00\x00\x00a\x11\x00\x00\x00"));
    s.add("truncated", &StreamCase::write(64, true, b"\x09\x00\x00\x00hel"));
    s.add("encrypted_without_cipher", &StreamCase::write(64, false, &frames[0].encrypted));

    let mut s = Seeds::new(&root, "stage_text");
    s.add("lines", &StreamCase::write(64, true, b"hello\nworld\n\nlast"));
    s.add("long_line", &StreamCase::write(4, false, b"ab\nabcdef\n"));
    s.add("crlf", &StreamCase::write(1024, true, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"));

    let mut s = Seeds::new(&root, "stage_raw");
    s.add("chunks", &ScriptWriter::new().u16(0).byte(1).cuts(&[3, 3, 9]).raw(&bson_frames[..40]).finish());

    let mut s = Seeds::new(&root, "stage_connection");
    for (name, filter, cipher) in [("packet_plain", 0u8, 0u8), ("packet_stage_aes", 0, 1), ("packet_sealed", 0, 17)] {
        let body = &frames[0].plain[4..];
        let wire_len = match cipher_pair(cipher) {
            None => reference_frame(body).len(),
            Some((mut ours, _)) => {
                let mut sealed = BytesMut::new();
                ours.seal(body, &mut sealed).expect("seals");
                sealed.len()
            }
        };
        let mut w = ScriptWriter::new();
        w.byte(filter).u16(8192).u16(0).byte(0).byte(0).byte(cipher);
        w.byte(0).bytes(body); // SendBody
        w.byte(1).bytes(&frames[1].plain).byte(0); // Send a whole frame
        w.byte(4).u16(wire_len as u16); // deliver the first frame
        w.byte(4).u16(0xFFFF).byte(6).byte(0).byte(4).u16(0xFFFF).byte(7); // the rest, Close, EOF
        w.byte(8).byte(0).bytes(b"answer after EOF").byte(9).byte(1); // the receiver answers, closes twice
        s.add(name, &w.finish());
    }
    let mut w = ScriptWriter::new();
    w.byte(0).u16(64).u16(32).byte(10).byte(0).byte(0);
    w.byte(0).bytes(b"abc").byte(0).bytes(b"defgh").byte(3).u16(10).byte(4).u16(20).byte(0).bytes(&[7; 40]);
    s.add("coalescing_with_commit", &w.finish());
    let mut w = ScriptWriter::new();
    w.byte(1).u16(8).u16(0).byte(0).byte(200).byte(0);
    w.byte(0).bytes(b"one\ntwo\n").byte(4).u16(3).byte(4).u16(5).byte(0).bytes(b"toolongline\n").byte(4).u16(12);
    s.add("text", &w.finish());

    let mut s = Seeds::new(&root, "stage_datagram");
    let mut w = ScriptWriter::new();
    w.u16(8192).u16(0).byte(50).byte(1).byte(0);
    w.byte(0).byte(0).bytes(&frames[0].plain).byte(0).byte(1).bytes(b"\x07\x00\x00\x00ab");
    w.byte(1).byte(1).byte(0).bytes(b"hello").byte(2).byte(0).byte(1).bytes(&frames[1].plain);
    w.byte(3).u16(60).byte(4).byte(1); // Close, twice
    s.add("plain", &w.finish());
    let mut w = ScriptWriter::new();
    w.u16(8192).u16(512).byte(0).byte(1).byte(17);
    w.byte(1).byte(0).byte(1).bytes(b"sealed body").byte(0).byte(0).bytes(&frames[2].encrypted).byte(5);
    s.add("sealed", &w.finish());

    let mut s = Seeds::new(&root, "stage_spec");
    for (i, text) in [
        "tcp://0.0.0.0:8081?packet=10k,40k",
        "udp://224.0.0.1:8082",
        "unix:///tmp/switchboard.sock?text=1k",
        "quic://example.org:443?bson=1m:1m&expire=30000&commit=5&crypto=AES-256-GCM=k",
        "tcp://[fe80::1%3]:80?packet&expire=none",
        "[::1]:8081",
    ]
    .iter()
    .enumerate()
    {
        s.add(&format!("spec_{i}"), text.as_bytes());
    }

    let mut s = Seeds::new(&root, "crypto_spec");
    let mut texts: Vec<String> = ["AES-256-GCM=secret", "bare-key", "SEED/CBC/PKCS1Padding=k=v", " des / cfb =x"]
        .iter()
        .map(|t| t.to_string())
        .collect();
    texts.extend(frames.iter().map(|f| match &f.spec {
        Some(spec) => format!("{spec}={}", f.key),
        None => f.key.clone(),
    }));
    for (i, text) in texts.iter().enumerate() {
        s.add(&format!("option_{i}"), text.as_bytes());
    }

    let mut s = Seeds::new(&root, "crypto_stage");
    for (i, frame) in frames.iter().enumerate() {
        let spec = frame.spec.clone().unwrap_or_else(|| CipherSpec::DEFAULT.to_string());
        let seed = ScriptWriter::new()
            .byte(spec_index(&spec))
            .bytes(frame.key.as_bytes())
            .byte(0)
            .raw(&frame.encrypted)
            .finish();
        s.add(&format!("vector_frame_{i}"), &seed);
    }
    // One cipher vector per spec is enough to start from; the rest adds bytes, not coverage.
    let mut seen = std::collections::BTreeSet::new();
    for cipher in ciphers.iter().filter(|c| seen.insert(c.spec.clone())) {
        let mut frame = ((cipher.ciphertext.len() + 4) as u32 | 0x8000_0000).to_le_bytes().to_vec();
        frame.extend_from_slice(&cipher.ciphertext);
        let index = spec_index(&cipher.spec);
        let key = cipher.key.as_bytes();
        s.add(
            &format!("open_{}", cipher.spec.replace('/', "_")),
            &ScriptWriter::new().byte(index).bytes(key).byte(0).raw(&frame).finish(),
        );
        s.add(
            &format!("seal_{}", cipher.spec.replace('/', "_")),
            &ScriptWriter::new().byte(index).bytes(key).byte(1).raw(&cipher.plaintext).finish(),
        );
    }

    let mut s = Seeds::new(&root, "crypto_sealed");
    let mut w = ScriptWriter::new();
    w.byte(0).bytes(b"first").byte(0).bytes(b"second").byte(1).byte(0).byte(1).byte(1).byte(1).byte(0);
    w.byte(2).byte(1).u16(5).byte(0x40).byte(3).byte(0).u16(20).byte(4).byte(0).bytes(&[0; 40]);
    s.add("in_order_replay_tamper", &w.finish());

    let mut s = Seeds::new(&root, "message_frame");
    s.add("response_ok", &[&[0u8][..], &message_frame(MessageKind::Response, 0x0102, b"ok")].concat());
    s.add("request", &[&[0u8][..], &message_frame(MessageKind::Request, 1, b"ping")].concat());
    s.add("error_text", &[&[0u8][..], &message_frame(MessageKind::Error, 7, b"no such thing")].concat());
    s.add("bson_notification", &[&[0u8][..], &message_frame(MessageKind::Notification, 0, &frames[0].plain)].concat());
    s.add("encode", &ScriptWriter::new().byte(1).byte(3).u64(9).raw(b"beat").finish());

    let mut s = Seeds::new(&root, "message_connection");
    let mut w = ScriptWriter::new();
    w.u16(8192).u16(0).byte(0).byte(0).byte(100).byte(4).byte(0);
    w.byte(0).bytes(b"ping").byte(0); // Request 1
    w.byte(7).byte(1).byte(1).bytes(b"pong"); // the peer answers it
    w.byte(7).byte(0).byte(5).bytes(b"a request"); // and asks
    w.byte(9).u16(0xFFFF);
    w.byte(1).byte(5).bytes(b"answer").byte(2).bytes(&frames[0].plain).byte(3).byte(0).bytes(b"oops");
    w.byte(0).bytes(b"never answered").byte(0).byte(11).u16(200).byte(6);
    s.add("request_response_timeout", &w.finish());
    let mut w = ScriptWriter::new();
    w.u16(64).u16(32).byte(10).byte(30).byte(0).byte(1).byte(1);
    w.byte(11).u16(15).byte(7).byte(3).byte(1).bytes(b"").byte(9).u16(0xFFFF).byte(11).u16(40);
    s.add("heartbeats_and_dead_peer", &w.finish());

    let mut s = Seeds::new(&root, "kcom_receiver");
    let mut stream = b"KCOM5\x01\x02\x03".to_vec();
    stream.extend_from_slice(&2u32.to_le_bytes());
    stream.extend_from_slice(b"hi");
    stream.extend_from_slice(&7u64.to_le_bytes());
    stream.extend_from_slice(b"payload");
    s.add("transfer", &ScriptWriter::new().u16(1024).byte(1).cuts(&[5, 10, 14, 30]).raw(&stream).finish());
    s.add("truncated_data", &StreamCase::write(1024, true, &stream[..stream.len() - 3]));
    s.add("bad_echo", &StreamCase::write(1024, true, b"KCOM5\x01\x02\x04"));

    let mut s = Seeds::new(&root, "kcom_address");
    s.add("unpack", b"\x0013600.01.AB");
    s.add("pack", &ScriptWriter::new().byte(1).u16(13600).raw(&[0x01, 0xab, 0x02]).finish());

    let mut s = Seeds::new(&root, "kcom_sender");
    let mut w = ScriptWriter::new();
    w.byte(0).byte(0).u16(4096).bytes(b"hi").byte(0).bytes(b"payload").byte(0).bytes(b"KCOM5abc");
    s.add("whole", &w.finish());
    let mut w = ScriptWriter::new();
    w.byte(1).byte(50).u16(8).bytes(b"file.bin").byte(0).u16(12).byte(1).bytes(b"early").byte(1).bytes(b"too much!");
    w.byte(0).bytes(b"KCOM5").byte(0).bytes(b"xyz").byte(1).bytes(b"rest!!!").byte(2).byte(3).u16(60);
    s.add("streaming", &w.finish());
    let mut w = ScriptWriter::new();
    w.byte(0).byte(0).u16(0).bytes(b"a long message ").byte(1).bytes(b"data").byte(0).bytes(b"KCOM5xyz");
    s.add("long_message", &w.finish());

    let mut s = Seeds::new(&root, "router_doc");
    let hello = Hello::new("alice", "chess").with_unique("a1").with_token("t").with_header("v", "1");
    let welcome = Welcome { unique: "a1".into(), ip: "192.0.2.1".into(), clients: vec![sample_client("b2")] };
    let refused = Refused { code: RefuseCode::UniqueInUse, reason: "taken".into() };
    let at = ToHub::At { to: vec!["b2".into()], op: "move".into(), data: bson::doc! { "from": "e2", "to": [1, 2.5] } };
    let closing = FromHub::Closing { reason: "replaced".into() };
    let disconnected = FromHub::Disconnected { client: sample_client("b2"), reason: "bye".into() };
    let docs: [(&str, u8, Bytes); 6] = [
        ("hello", 0, hello.to_bytes().unwrap()),
        ("welcome", 1, welcome.to_bytes().unwrap()),
        ("refused", 2, refused.to_bytes().unwrap()),
        ("at", 3, at.to_bytes().unwrap()),
        ("closing", 4, closing.to_bytes().unwrap()),
        ("disconnected", 4, disconnected.to_bytes().unwrap()),
    ];
    for (name, which, bytes) in docs {
        s.add(name, &[&[which][..], &bytes].concat());
    }

    let mut s = Seeds::new(&root, "router_hub");
    let mut w = ScriptWriter::new();
    w.byte(2).byte(0).byte(0).byte(7);
    let hello_op = |w: &mut ScriptWriter, conn: u8, name: &[u8], unique: Option<u8>, id: u8| {
        w.byte(conn).byte(1).bytes(name).bytes(b"chess");
        match unique {
            Some(u) => w.byte(1).byte(u),
            None => w.byte(0),
        };
        w.byte(0).byte(id);
    };
    w.byte(0).byte(0).byte(1);
    hello_op(&mut w, 0, b"alice", Some(0), 1);
    w.byte(1).byte(0).byte(2);
    hello_op(&mut w, 1, b"bob", None, 1);
    w.byte(0).byte(3).byte(9).byte(1).byte(1).byte(1).bytes(b"move"); // 0: at [b] "move"
    w.byte(1).byte(3).byte(3).byte(0).byte(3).bytes(b"color").bytes(b"white"); // 1: datastore
    w.byte(2).byte(0).byte(3);
    hello_op(&mut w, 2, b"carol", Some(0), 4); // replaces alice
    w.byte(1).byte(3).byte(0).byte(0).byte(4).byte(0); // bob: bye
    w.byte(1).byte(6).bytes(b"bye").byte(0).byte(6).bytes(b"gone");
    s.add("join_route_replace_leave", &w.finish());

    let mut s = Seeds::new(&root, "router_client");
    let mut w = ScriptWriter::new();
    w.byte(100).byte(1);
    w.byte(0).byte(0).byte(1).bytes(b"bob").byte(1).byte(0).byte(0).byte(1); // welcome "me", id 1, listing b
    w.byte(1).u16(0xFFFF);
    w.byte(2).byte(5).byte(0).bytes(b"hello"); // broadcast
    w.byte(0).byte(1).byte(3).byte(1).bytes(b"k").bytes(b"v"); // datastore note from b
    w.byte(0).byte(1).byte(2).bytes(b"x").byte(2).byte(0).bytes(b"bye"); // b disconnected
    w.byte(1).u16(0xFFFF).byte(2).byte(0).byte(4).byte(1).byte(3);
    s.add("welcome_notes_bye", &w.finish());
    let mut w = ScriptWriter::new();
    w.byte(20).byte(0).byte(0).byte(2).bytes(b"full").byte(1).byte(1).u16(0xFFFF);
    s.add("refused", &w.finish());

    let mut s = Seeds::new(&root, "router_net");
    let mut w = ScriptWriter::new();
    w.byte(0).byte(0).byte(3);
    w.byte(0).byte(0).bytes(b"alice").byte(1); // slot 0 asks for "a"
    w.byte(1).byte(0).bytes(b"bob").byte(0); // slot 1 gets one assigned
    w.byte(0).byte(3);
    w.byte(0).byte(1).byte(1).byte(0).byte(0); // alice broadcasts
    w.byte(1).byte(1).byte(2).byte(0).byte(3).byte(0).bytes(b"white"); // bob: datastore k
    w.byte(0).byte(3);
    w.byte(2).byte(0).bytes(b"carol").byte(1); // carol takes "a" over
    w.byte(2).byte(3).byte(1).byte(1).byte(3).byte(1).byte(1).byte(4); // bob: at [b], then bye
    w.byte(0).byte(3).byte(2).byte(2).byte(0).byte(3);
    s.add("join_replace_bye_drop", &w.finish());

    let total: u64 = walk_size(&root);
    println!("wrote seeds under {} ({total} bytes)", root.display());
}

fn walk_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read the seed directory")
        .map(|entry| {
            let entry = entry.expect("an entry");
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                walk_size(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}
