//! Accepted attachments on disk, content-addressed: a file lives at
//! `storage_dir/ab/cd/<sha256>`, named by its hash and nothing else, so no
//! name a customer chose can reach a path. The original (sanitised) name
//! stays in the database. Writes are atomic: a temporary file in the same
//! directory, fsync, rename, fsync of the directory. A write killed midway
//! leaves its temporary file behind; [`remove_stale_temps`] clears those.

/// Temporary files' names and staleness: a detail of this store.
pub mod temp_files;
pub use temp_files::STALE_AFTER;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

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
    super::ownership::create_dir_all_as_owner(parent)?;
    let temp = parent.join(temp_files::temp_name(&stored.sha256, rand::random::<u64>()));
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
    written?;
    // written by root (an admin's `import`): the service's, as `dir` is
    super::ownership::give_to_owner_of(parent, &[&target])?;
    Ok(stored)
}

/// Delete a stored file; `Ok(false)` when it was not there.
pub fn remove(dir: &Path, sha256: &str) -> io::Result<bool> {
    match fs::remove_file(path_of(dir, sha256)?) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Remove (or with `dry_run` only list) the temporary files under `dir`
/// that [`temp_files::is_stale_temp`] finds abandoned at `now`; returns
/// their paths. Only the `ab/cd/` directories where writes happen are
/// read, symbolic links are never followed, and a file gone meanwhile (another
/// daemon's sweep) is not an error. A missing `dir` has nothing to clear.
pub fn remove_stale_temps(dir: &Path, now: SystemTime, dry_run: bool) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for first in subdirs(dir)? {
        for second in subdirs(&first)? {
            for entry in read_dir_if_any(&second)? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if !temp_files::is_temp_name(name) {
                    continue;
                }
                let meta = match entry.metadata() {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                if !meta.is_file() || !temp_files::is_stale_temp(name, meta.modified()?, now) {
                    continue;
                }
                let path = entry.path();
                if !dry_run {
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    }
                }
                removed.push(path);
            }
        }
    }
    Ok(removed)
}

fn read_dir_if_any(dir: &Path) -> io::Result<Vec<io::Result<fs::DirEntry>>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries.collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The real directories (not links to one) directly under `dir`.
fn subdirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in read_dir_if_any(dir)? {
        let entry = entry?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(entry.path());
        }
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn set_mtime(path: &Path, t: SystemTime) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    /// Root's `import` into the service's store: the file and the two
    /// folders it made are the service's, as the store's folder is.
    #[test]
    fn a_file_root_stores_belongs_to_the_stores_owner() {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid only reads this process's effective user id.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root (CI runs as root)");
            return;
        }
        let state = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(state.path(), Some(65534), Some(65534)).unwrap();
        // the store's own folder is not there yet (a fresh install)
        let dir = state.path().join("attachments");
        let stored = store(&dir, b"a file").unwrap();
        let file = dir.join(&stored.relative_path);
        let cd = file.parent().unwrap();
        for path in [&file, cd, cd.parent().unwrap(), dir.as_path()] {
            let meta = fs::metadata(path).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "{path:?}");
        }
    }

    #[test]
    fn stale_temp_files_go_fresh_ones_and_content_stay() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let now = SystemTime::now();
        let old = now - Duration::from_secs(2 * 3600);

        // real content, old: kept whatever its age
        let content = store(root, b"customer file").unwrap();
        let content_path = root.join(&content.relative_path);
        set_mtime(&content_path, old);
        let parent = content_path.parent().unwrap().to_path_buf();
        // a write killed two hours ago, and one in progress
        let stale = parent.join(temp_files::temp_name(&content.sha256, 1));
        let fresh = parent.join(temp_files::temp_name(&content.sha256, 2));
        // old, but not named like a temporary file of ours
        let foreign = parent.join(".tmp-notours");
        for p in [&stale, &fresh, &foreign] {
            fs::write(p, b"partial").unwrap();
        }
        set_mtime(&stale, old);
        set_mtime(&foreign, old);
        set_mtime(&fresh, now - Duration::from_secs(59 * 60));
        // a stale one in another ab/cd directory
        let other = store(root, b"another file").unwrap();
        let other_parent = root
            .join(&other.relative_path)
            .parent()
            .unwrap()
            .to_path_buf();
        let stale_other = other_parent.join(temp_files::temp_name(&other.sha256, 3));
        fs::write(&stale_other, b"x").unwrap();
        set_mtime(&stale_other, old);

        // a link out of the store is not followed
        let outside = tempfile::tempdir().unwrap();
        let outside_dir = outside.path().join("cd");
        fs::create_dir(&outside_dir).unwrap();
        let outside_temp = outside_dir.join(temp_files::temp_name(&other.sha256, 4));
        fs::write(&outside_temp, b"x").unwrap();
        set_mtime(&outside_temp, old);
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.path(), root.join("zz")).unwrap();

        let mut listed = remove_stale_temps(root, now, true).unwrap();
        listed.sort();
        let mut want = vec![stale.clone(), stale_other.clone()];
        want.sort();
        assert_eq!(listed, want);
        assert!(
            stale.exists() && stale_other.exists(),
            "a dry run removes nothing"
        );

        let mut removed = remove_stale_temps(root, now, false).unwrap();
        removed.sort();
        assert_eq!(removed, want);
        assert!(!stale.exists() && !stale_other.exists());
        for kept in [
            &fresh,
            &foreign,
            &content_path,
            &root.join(&other.relative_path),
        ] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
        assert_eq!(fs::read(&content_path).unwrap(), b"customer file");
        assert!(outside_temp.exists(), "followed a link out of the store");

        // nothing left to remove; a store that was never written is empty
        assert!(remove_stale_temps(root, now, false).unwrap().is_empty());
        assert!(
            remove_stale_temps(&root.join("missing"), now, false)
                .unwrap()
                .is_empty()
        );
    }
}
