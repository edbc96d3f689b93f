//! # switchboard-conformance
//!
//! Switchboard checked against implementations it did not write, and a suite other
//! implementations can check themselves against.
//!
//! * **Suites over the wire.** [`stage`] (STAGE packet framing, `WIRE.md` §2), [`message`]
//!   (typed message frames, §4) and [`router`] (the hub, §5) run their cases against any TCP server that follows the suite's
//!   contract (an echo for the first two, a hub for the third), with a hand-written client (plain sockets, its own header code, no
//!   Switchboard machine), and report each case with what the spec asks and what the target
//!   did. [`reference`] has Switchboard's own targets, so another implementation's *client* can
//!   be tested against them too. The `switchboard-conformance` binary runs both directions
//!   (`--help` on any of its commands describes the options; addresses are `HOST:PORT`, names
//!   included; `check` connects once first, and a target that is not there is one error line,
//!   [`Target::probe`]):
//!
//!   ```text
//!   switchboard-conformance stage check 127.0.0.1:8081 --in 8k   # test a server
//!   switchboard-conformance message check localhost:8082
//!   switchboard-conformance router check 127.0.0.1:8083          # a router hub
//!   switchboard-conformance stage echo 127.0.0.1:8081 --in 8k    # serve Switchboard's target
//!   switchboard-conformance list                                 # every case and its rule
//!   ```
//!
//! * **Shared material.** The independent KCOM5 peer (`shared/peers/kcom_peer.py`, the bytes of
//!   the Python and Go originals) and the cipher and frame vectors computed by `openssl enc`
//!   (`shared/vectors/stage-crypto.json`); the tests in `tests/` use them, and this library
//!   finds them for anyone else. The shared directory is looked up beside the checkout
//!   (`../shared`), beside a worktree one level further out, or at `$SWITCHBOARD_SHARED`.
//!
//! ```
//! use std::net::TcpListener;
//! use switchboard_conformance::{reference, stage, Target};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Switchboard's STAGE echo target, checked by the suite.
//! let server = reference::stage_echo(TcpListener::bind("127.0.0.1:0")?, 8192)?;
//! let report = stage::run(&Target::new(server.local_addr()).max_in(8192), None);
//! assert!(report.passed(), "{report}");
//! server.shutdown();
//!
//! // The shared reference material, when the checkout has it beside it.
//! use switchboard_conformance::{kcom_peer_script, shared_dir, stage_crypto_vectors};
//! if let Some(dir) = shared_dir() {
//!     assert!(kcom_peer_script().unwrap().starts_with(&dir));
//!     let vectors = std::fs::read_to_string(stage_crypto_vectors().unwrap())?;
//!     assert!(vectors.contains("\"ciphers\""));
//! }
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::path::PathBuf;

pub mod message;
pub mod reference;
pub mod router;
pub mod stage;
mod suite;

pub use suite::{Case, Failure, Outcome, Report, Target};

/// The shared reference directory (spec, seeds, vectors, peers), if it can be found.
pub fn shared_dir() -> Option<PathBuf> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [here.join("../../shared"), here.join("../../../shared")]
        .into_iter()
        .chain(std::env::var_os("SWITCHBOARD_SHARED").map(PathBuf::from))
        .find(|dir| dir.join("peers/kcom_peer.py").is_file())
}

/// The shared directory, or a panic that says how to point at it (for tests that need it).
pub fn require_shared_dir() -> PathBuf {
    shared_dir().expect("shared dir with peers/kcom_peer.py not found beside the checkout; set SWITCHBOARD_SHARED")
}

/// The independent KCOM5 peer script.
pub fn kcom_peer_script() -> Option<PathBuf> {
    Some(shared_dir()?.join("peers/kcom_peer.py"))
}

/// The openssl-computed cipher and frame vectors.
pub fn stage_crypto_vectors() -> Option<PathBuf> {
    Some(shared_dir()?.join("vectors/stage-crypto.json"))
}
