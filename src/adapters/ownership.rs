//! Files Guichet makes while running as root, in a folder another user
//! owns, are given to that user.
//!
//! Why: the service runs as its own user (`guichet`, owner of
//! `/var/lib/guichet`), and admins run the commands as root. A root
//! `tickets list` on a stopped service left `guichet.db.migrate-lock` (or,
//! before the first start, `guichet.db` itself) owned by root and private,
//! and the service could no longer open its own database. So what a root
//! process creates beside the database, or in the file store, takes the
//! owner of the folder it is in, as if the service had made it.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A file's or folder's owner: user and group ids.
pub type Owner = (u32, u32);

/// The owner to give a file made by a process running as `euid`, in a
/// folder owned by `folder`: `None` when nothing is to change (not root,
/// a folder of root's, or the file already the folder owner's).
pub fn owner_to_give(euid: u32, folder: Owner, file: Owner) -> Option<Owner> {
    (euid == 0 && folder.0 != 0 && file != folder).then_some(folder)
}

/// Gives each of `paths` that exists to the owner of `folder`, when this
/// process runs as root and that owner is another user (see
/// [`owner_to_give`]). Paths that are not there are skipped.
pub fn give_to_owner_of(folder: &Path, paths: &[&Path]) -> io::Result<()> {
    // SAFETY: geteuid only reads this process's effective user id.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Ok(());
    }
    let meta = std::fs::metadata(folder)?;
    let folder_owner = (meta.uid(), meta.gid());
    for path in paths {
        let Ok(file) = std::fs::symlink_metadata(path) else {
            continue;
        };
        if let Some((uid, gid)) = owner_to_give(euid, folder_owner, (file.uid(), file.gid())) {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot give {} to user {uid}: {e}", path.display()),
                )
            })?;
        }
    }
    Ok(())
}

/// `fs::create_dir_all`, the folders it makes given to the owner of the
/// nearest folder that was already there (see [`give_to_owner_of`]): a
/// root `import` or `doctor` made the attachment folder itself root's,
/// and the service could store no file any more.
pub fn create_dir_all_as_owner(path: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut existing = path;
    while !existing.as_os_str().is_empty() && !existing.exists() {
        missing.push(existing);
        match existing.parent() {
            Some(p) => existing = p,
            None => break,
        }
    }
    std::fs::create_dir_all(path)?;
    if missing.is_empty() {
        return Ok(());
    }
    let folder = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    };
    give_to_owner_of(folder, &missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_roots_files_in_another_users_folder_change_owner() {
        let service = (998, 997);
        // root in the service's folder: the file becomes the service's
        assert_eq!(owner_to_give(0, service, (0, 0)), Some(service));
        // already the service's
        assert_eq!(owner_to_give(0, service, service), None);
        // the folder is root's (a demo, the tests): left as it is
        assert_eq!(owner_to_give(0, (0, 0), (0, 0)), None);
        // not root: a process cannot give files away, and needs not
        assert_eq!(owner_to_give(998, service, (998, 997)), None);
        assert_eq!(owner_to_give(1000, service, (1000, 1000)), None);
        // the group too
        assert_eq!(owner_to_give(0, service, (998, 0)), Some(service));
    }
}
