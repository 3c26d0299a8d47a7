//! Atomic file writes: a reader sees the old file or the new one, never half of either, even
//! after a crash.
//!
//! The relay's identity and registry, the CLI's relay pin and the web app's `server.json` all
//! write through [`write_atomic`]. It lives in core because every crate reaches core and it
//! needs nothing but the standard library and `tempfile`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory (so the rename
/// never crosses file systems), the bytes written and flushed to disk, the file renamed over
/// `path`, then the directory flushed so that the rename itself survives a crash.
///
/// On Unix, `mode` sets the file's permissions from its creation, so a private file is never
/// readable by others, not even while being written (the process umask still applies). `None`
/// keeps the temporary file's own mode, 0600. Elsewhere `mode` is ignored.
///
/// A failed write leaves `path` as it was and removes the temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    write_atomic_with(path, mode, |file| file.write_all(bytes))
}

/// [`write_atomic`] for contents produced as they are written (an export of the whole corpus):
/// `write` fills the temporary file, and what it returns is returned once the file is in place.
/// An error from `write` leaves `path` as it was.
pub fn write_atomic_with<R, E: From<io::Error>>(
    path: &Path,
    mode: Option<u32>,
    write: impl FnOnce(&mut File) -> Result<R, E>,
) -> Result<R, E> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or(path.as_os_str());
    // A name of its own for each write, so that two writers never share a temporary file; a
    // leading dot keeps it out of plain listings.
    let prefix = format!(".{}.", name.to_string_lossy());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    set_mode(&mut builder, mode);
    let mut tmp = builder.tempfile_in(dir)?;
    let written = write(tmp.as_file_mut())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)?;
    Ok(written)
}

#[cfg(unix)]
fn set_mode(builder: &mut tempfile::Builder<'_, '_>, mode: Option<u32>) {
    use std::os::unix::fs::PermissionsExt;
    if let Some(mode) = mode {
        builder.permissions(fs::Permissions::from_mode(mode));
    }
}

#[cfg(not(unix))]
fn set_mode(_builder: &mut tempfile::Builder<'_, '_>, _mode: Option<u32>) {}

/// Flushes a directory's entries (files created, renamed or removed in it) to disk. Unix only:
/// Windows cannot open a directory as a file, and its renames are journaled by NTFS.
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_the_file_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.json");
        write_atomic(&path, b"first", None).unwrap();
        write_atomic(&path, b"second", None).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["server.json"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        write_atomic(&path, b"old", None).unwrap();
        // A directory cannot be renamed over by a file: the rename fails after the write.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), b"x").unwrap();
        assert!(write_atomic(&blocked, b"new", None).is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(blocked.is_dir());
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["blocked", "relay.toml"]);
    }

    #[test]
    fn contents_written_as_they_come_replace_the_file_only_when_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.jsonl");
        write_atomic(&path, b"old\n", None).unwrap();
        let failed: io::Result<()> = write_atomic_with(&path, None, |file| {
            file.write_all(b"half")?;
            Err(io::Error::other("the source failed"))
        });
        assert!(failed.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old\n");
        let lines = write_atomic_with(&path, None, |file| -> io::Result<usize> {
            file.write_all(b"a\nb\n")?;
            Ok(2)
        })
        .unwrap();
        assert_eq!(lines, 2);
        assert_eq!(fs::read(&path).unwrap(), b"a\nb\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent").join("file");
        assert!(write_atomic(&path, b"x", None).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn the_mode_is_set_from_creation() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let private = dir.path().join("key.der");
        write_atomic(&private, b"secret", Some(0o600)).unwrap();
        assert_eq!(mode(&private), 0o600);
        let default = dir.path().join("state.json");
        write_atomic(&default, b"{}", None).unwrap();
        assert_eq!(mode(&default), 0o600);
        // A wider mode may be narrowed by the umask, never widened.
        let public = dir.path().join("cert.der");
        write_atomic(&public, b"cert", Some(0o644)).unwrap();
        assert_eq!(mode(&public) & 0o600, 0o600);
        assert_eq!(mode(&public) & !0o644, 0);
    }
}
