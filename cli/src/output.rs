//! An output file that appears only when it is complete.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file written under a hidden temporary name in its destination's directory (so the final
/// rename stays on one file system) and renamed to the destination by [`commit`](Self::commit).
/// Dropped uncommitted, it removes the temporary file: a failed transfer leaves neither an
/// empty nor a partial file, and an existing destination untouched.
#[derive(Debug)]
pub struct StagedFile {
    file: Option<File>,
    temp: PathBuf,
    destination: PathBuf,
}

impl StagedFile {
    /// Create the temporary file beside `destination`.
    pub fn create(destination: impl AsRef<Path>) -> io::Result<Self> {
        let destination = destination.as_ref().to_path_buf();
        let name = destination
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the output path names no file"))?;
        let dir = destination.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        // The process id keeps two concurrent runs apart; the counter, a leftover of a killed run.
        let mut attempt = 0u32;
        loop {
            let mut temp_name = std::ffi::OsString::from(".");
            temp_name.push(name);
            temp_name.push(format!(".{}-{attempt}.part", std::process::id()));
            let temp = dir.join(temp_name);
            match OpenOptions::new().write(true).create_new(true).open(&temp) {
                Ok(file) => return Ok(StagedFile { file: Some(file), temp, destination }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The temporary file's path.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Flush and close the file and give it its destination's name (replacing what was there).
    pub fn commit(mut self) -> io::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.flush()?;
        }
        fs::rename(&self.temp, &self.destination)?;
        // Renamed: nothing left for Drop to remove.
        self.temp = PathBuf::new();
        Ok(())
    }

    fn file(&mut self) -> io::Result<&mut File> {
        self.file.as_mut().ok_or_else(|| io::Error::other("the staged file is closed"))
    }
}

impl Write for StagedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file()?.flush()
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.temp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kcom-staged-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn commit_renames_the_complete_file() {
        let dir = scratch("commit");
        let mut staged = StagedFile::create(dir.join("out.bin")).unwrap();
        staged.write_all(b"all of it").unwrap();
        assert_eq!(entries(&dir).len(), 1);
        assert!(!dir.join("out.bin").exists(), "the destination appears only on commit");
        staged.commit().unwrap();
        assert_eq!(entries(&dir), ["out.bin"]);
        assert_eq!(fs::read(dir.join("out.bin")).unwrap(), b"all of it");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dropping_uncommitted_leaves_nothing_and_keeps_an_existing_file() {
        let dir = scratch("drop");
        fs::write(dir.join("out.bin"), b"before").unwrap();
        let mut staged = StagedFile::create(dir.join("out.bin")).unwrap();
        staged.write_all(b"partial").unwrap();
        let temp = staged.temp_path().to_path_buf();
        assert!(temp.exists());
        drop(staged);
        assert!(!temp.exists());
        assert_eq!(entries(&dir), ["out.bin"]);
        assert_eq!(fs::read(dir.join("out.bin")).unwrap(), b"before");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_leftover_temporary_name_is_skipped() {
        let dir = scratch("leftover");
        let first = StagedFile::create(dir.join("out.bin")).unwrap();
        let second = StagedFile::create(dir.join("out.bin")).unwrap();
        assert_ne!(first.temp_path(), second.temp_path());
        drop((first, second));
        assert!(entries(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
