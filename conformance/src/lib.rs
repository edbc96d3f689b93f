//! # switchboard-conformance
//!
//! Switchboard checked against implementations it did not write: the independent KCOM5 peer
//! (`shared/peers/kcom_peer.py`, the bytes of the Python and Go originals) and the cipher and
//! frame vectors computed by `openssl enc` (`shared/vectors/stage-crypto.json`). The tests live
//! in `tests/`; this library finds the shared material for them and for anyone running the
//! suite against another implementation.
//!
//! The shared directory is looked up beside the checkout (`../shared`), beside a worktree one
//! level further out, or at `$SWITCHBOARD_SHARED`.
//!
//! ```
//! use switchboard_conformance::{shared_dir, kcom_peer_script, stage_crypto_vectors};
//!
//! if let Some(dir) = shared_dir() {
//!     assert!(kcom_peer_script().unwrap().starts_with(&dir));
//!     let vectors = std::fs::read_to_string(stage_crypto_vectors().unwrap()).unwrap();
//!     assert!(vectors.contains("\"ciphers\""));
//! }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::path::PathBuf;

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
