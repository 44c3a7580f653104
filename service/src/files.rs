//! Files that hold secrets or must appear whole: private keys, tokens,
//! identity bundles, certificates; and the directories that hold them.
//!
//! # Design constraints
//! - A file is written to a fresh temporary file in the *same* directory,
//!   made with `O_CREAT | O_EXCL` under a random name (so nobody can
//!   pre-create or symlink it), with its final mode set at creation (0600
//!   for [`Visibility::Private`]: never readable by others, not even for
//!   an instant), written, fsynced, then renamed over the final name and
//!   the directory fsynced. A crash leaves the old file or the new one,
//!   never half of one; a failed write removes its temporary file.
//! - Without [`Replace::Overwrite`], an existing file is never replaced,
//!   atomically (`renameat2(RENAME_NOREPLACE)`, or a hard link), not by a
//!   check-then-rename that a race could defeat.
//! - Data directories are created mode 0700 ([`create_private_dir`]);
//!   one that already exists is narrowed to 0700.
//!
//! The temporary files come from the `tempfile` crate, which does exactly
//! the first two points (and cleans up on every error path).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Who may read a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// The owner only (0600): keys, tokens, identity bundles.
    Private,
    /// Anyone (0644, less the umask): certificates, lists.
    Public,
}

/// Whether an existing file may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Replace it atomically.
    Overwrite,
    /// Fail with [`FileError::Exists`].
    Never,
}

/// Why a file or directory could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file exists and was not to be replaced.
    #[error("{0} already exists; refusing to overwrite it")]
    Exists(PathBuf),
    /// An I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The directory `path` is in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `bytes` to `path` whole (see the module docs).
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    visibility: Visibility,
    replace: Replace,
) -> Result<(), FileError> {
    let dir = parent(path);
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tally-").suffix(".tmp").rand_bytes(12);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(match visibility {
            Visibility::Private => 0o600,
            Visibility::Public => 0o644,
        }));
    }
    #[cfg(not(unix))]
    let _ = visibility;
    let mut tmp = builder.tempfile_in(dir).map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    let persisted = match replace {
        Replace::Overwrite => tmp.persist(path),
        Replace::Never => tmp.persist_noclobber(path),
    };
    if let Err(e) = persisted {
        return Err(if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            FileError::Exists(path.to_path_buf())
        } else {
            io(path)(e.error)
        });
    }
    sync_dir(dir)
}

/// Fsyncs a directory, so a rename or a new entry in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), FileError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// Creates `dir` (and missing parents) with mode 0700 for the directory
/// itself; an existing `dir` is narrowed to 0700. Parents created on the
/// way get the default mode.
pub fn create_private_dir(dir: &Path) -> Result<(), FileError> {
    if let Some(p) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(p).map_err(io(p))?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Ok(()) => sync_dir(parent(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {
            set_mode(dir, 0o700)
        }
        Err(e) => Err(io(dir)(e)),
    }
}

/// Makes an existing file readable by its owner only (0600).
pub fn make_private(path: &Path) -> Result<(), FileError> {
    set_mode(path, 0o600)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), FileError> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::metadata(path).map_err(io(path))?;
    if current.permissions().mode() & 0o777 == mode {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), FileError> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_files_are_0600_and_never_clobbered() {
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("k.pem");
        write_atomic(&key, b"secret", Visibility::Private, Replace::Never).unwrap();
        assert_eq!(mode(&key), 0o600);
        assert_eq!(std::fs::read(&key).unwrap(), b"secret");
        let again = write_atomic(&key, b"other", Visibility::Private, Replace::Never);
        assert!(matches!(again, Err(FileError::Exists(_))), "{again:?}");
        assert_eq!(std::fs::read(&key).unwrap(), b"secret");
        write_atomic(&key, b"new", Visibility::Private, Replace::Overwrite).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"new");
        assert_eq!(mode(&key), 0o600);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("k.pem")]);
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let out = tmp.path().join("bundle.pem");
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        // Never: the link is an existing name.
        assert!(matches!(
            write_atomic(&out, b"x", Visibility::Private, Replace::Never),
            Err(FileError::Exists(_))
        ));
        // Overwrite replaces the link itself, not its target.
        write_atomic(&out, b"x", Visibility::Private, Replace::Overwrite).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(!std::fs::symlink_metadata(&out)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn data_directories_are_0700() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/data");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("db");
        std::fs::write(&file, b"").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        make_private(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
    }

    #[test]
    fn public_files_are_world_readable() {
        let tmp = tempfile::tempdir().unwrap();
        let cert = tmp.path().join("c.pem");
        write_atomic(&cert, b"c", Visibility::Public, Replace::Never).unwrap();
        assert_eq!(mode(&cert) & 0o600, 0o600);
        assert_eq!(mode(&cert) & 0o077 & !0o044, 0);
    }
}
