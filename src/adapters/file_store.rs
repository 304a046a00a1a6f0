//! Accepted attachments on disk, content-addressed: a file lives at
//! `storage_dir/ab/cd/<sha256>`, named by its hash and nothing else, so no
//! name a customer chose can reach a path. The original (sanitised) name
//! stays in the database. Writes are atomic: a temporary file in the same
//! directory, fsync, rename, fsync of the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// `ab/cd/<sha256>`, relative to the storage directory.
    pub relative_path: PathBuf,
}

/// Write `bytes` under `dir` unless the same content is already there.
pub fn store(dir: &Path, bytes: &[u8]) -> io::Result<StoredFile> {
    let sha256 = hex::encode(Sha256::digest(bytes));
    let relative_path = relative_path(&sha256);
    let target = dir.join(&relative_path);
    let stored = StoredFile {
        sha256,
        relative_path,
    };
    // Same hash, same length: the same content, already safely written
    // (a rename never leaves a partial file under the final name).
    if fs::metadata(&target).is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64) {
        return Ok(stored);
    }
    let parent = target.parent().expect("ab/cd/<hash> has a parent");
    fs::create_dir_all(parent)?;
    let temp = parent.join(format!(
        ".tmp-{}-{:016x}",
        stored.sha256,
        rand::random::<u64>()
    ));
    let written = (|| {
        let mut f = open_new(&temp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&temp, &target)?;
        // Make the rename itself durable.
        File::open(parent)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written.map(|()| stored)
}

/// Delete a stored file; `Ok(false)` when it was not there.
pub fn remove(dir: &Path, sha256: &str) -> io::Result<bool> {
    match fs::remove_file(path_of(dir, sha256)?) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Where the file with this hash lives. Refuses anything but 64 hex
/// digits, so a bad database row cannot name a path outside `dir`.
pub fn path_of(dir: &Path, sha256: &str) -> io::Result<PathBuf> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a SHA-256 hex digest",
        ));
    }
    Ok(dir.join(relative_path(&sha256.to_ascii_lowercase())))
}

fn relative_path(sha256: &str) -> PathBuf {
    PathBuf::from(&sha256[0..2])
        .join(&sha256[2..4])
        .join(sha256)
}

fn open_new(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o640);
    }
    options.open(path)
}
