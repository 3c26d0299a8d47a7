//! A ZIP archive of an exported publication (the `zip` crate): files stored as they are (JPEG
//! images do not shrink, the page is small) and every date the format's first day, so the same
//! export gives the same bytes on every replica.

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::ExportFile;

/// Most bytes an archive may hold: a publication of a few dozen display-size photos is tens of
/// megabytes, and the whole archive is built in memory before it is sent.
pub const MAX_ZIP_BYTES: u64 = 1024 * 1024 * 1024;

/// Why an archive cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    #[error("the export is too large for a zip archive ({0} bytes)")]
    TooLarge(u64),
    #[error("zip archive: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("zip archive: {0}")]
    Io(#[from] std::io::Error),
}

/// The archive of `files`, each under `folder/`.
pub fn write(folder: &str, files: &[ExportFile]) -> Result<Vec<u8>, ZipError> {
    let total: u64 = files.iter().map(|f| f.bytes.len() as u64).sum();
    if total > MAX_ZIP_BYTES {
        return Err(ZipError::TooLarge(total));
    }
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644);
    let mut zip = ZipWriter::new(Cursor::new(Vec::with_capacity(total as usize + 4096)));
    for f in files {
        zip.start_file(format!("{folder}/{}", f.path), options)?;
        zip.write_all(&f.bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn an_archive_reads_back_and_is_the_same_every_time() {
        let files = vec![
            ExportFile {
                path: "index.html".into(),
                bytes: b"<!DOCTYPE html><p>B\xc3\xa2tir</p>".to_vec(),
            },
            ExportFile {
                path: "images/ab.jpg".into(),
                bytes: vec![0xff, 0xd8, 0, 1, 2],
            },
        ];
        let bytes = write("batir", &files).unwrap();
        assert_eq!(bytes, write("batir", &files).unwrap());
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut back = Vec::new();
        for i in 0..archive.len() {
            let mut f = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            back.push((f.name().unwrap().to_string(), data));
        }
        assert_eq!(back[0].0, "batir/index.html");
        assert_eq!(
            back[1],
            ("batir/images/ab.jpg".to_string(), files[1].bytes.clone())
        );
    }
}
