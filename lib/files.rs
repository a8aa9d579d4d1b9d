//! Writing files so that a failure never leaves a partial artifact behind.
//!
//! [`AtomicFile`] writes to `NAME.tmp` beside the destination and renames it
//! into place only on [`AtomicFile::commit`]; if the writer is dropped without
//! committing (an error, a panic) the temporary file is removed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file that appears at its destination only when committed.
pub struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    writer: BufWriter<File>,
    committed: bool,
}

impl AtomicFile {
    /// Starts writing `dest` (creating its parent directory if needed).
    pub fn create(dest: impl AsRef<Path>) -> Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut tmp = dest.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(AtomicFile {
            dest,
            tmp,
            writer: BufWriter::with_capacity(1 << 20, file),
            committed: false,
        })
    }

    /// Writes all of `bytes`.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer
            .write_all(bytes)
            .map_err(|e| Error::io(&self.tmp, e))
    }

    /// Flushes, syncs and renames the file into place; returns its size in bytes.
    pub fn commit(mut self) -> Result<u64> {
        self.writer.flush().map_err(|e| Error::io(&self.tmp, e))?;
        let file = self.writer.get_ref();
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        let size = file.metadata().map_err(|e| Error::io(&self.tmp, e))?.len();
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        self.committed = true;
        Ok(size)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `dest` atomically; returns the size.
pub fn write_atomic(dest: impl AsRef<Path>, bytes: &[u8]) -> Result<u64> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(bytes)?;
    f.commit()
}

/// Reads a whole file; a missing file is [`Error::MissingInput`] with `hint`.
pub fn read_input(path: impl AsRef<Path>, hint: &str) -> Result<Vec<u8>> {
    let path = path.as_ref();
    std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::MissingInput {
                path: path.to_path_buf(),
                hint: hint.to_string(),
            }
        } else {
            Error::io(path, e)
        }
    })
}

/// Size of a file in bytes.
pub fn file_size(path: impl AsRef<Path>) -> Result<u64> {
    let path = path.as_ref();
    Ok(std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/out.bin");
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert!(!dest.exists());
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            0
        );
    }

    #[test]
    fn committed_file_is_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        assert_eq!(write_atomic(&dest, b"hello").unwrap(), 5);
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
    }

    #[test]
    fn missing_input_carries_the_hint() {
        let err = read_input("/nonexistent/x", "run 00_generate first").unwrap_err();
        assert!(err.to_string().contains("run 00_generate first"), "{err}");
    }
}
