//! What the `kcom` test binaries share: running the tool, reading its output, free ports and
//! scratch directories.
// Each test binary uses only some of these.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Run `kcom` with `args` to the end.
pub fn kcom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kcom")).args(args).output().unwrap()
}

/// Its stdout, without the trailing newline.
pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap().trim_end().to_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An empty directory of the test's own.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kcom-cli-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The names in `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}
