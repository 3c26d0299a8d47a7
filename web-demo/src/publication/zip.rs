//! A ZIP archive of an exported publication, written here rather than with a crate: the files
//! are stored as they are (JPEG images do not shrink, the page is small), every date is the
//! format's first day, so the same export gives the same bytes on every replica.

use super::ExportFile;

/// Most bytes an archive may hold: the classic ZIP format counts in 32 bits, and a publication
/// of a few dozen display-size photos is tens of megabytes.
pub const MAX_ZIP_BYTES: u64 = u32::MAX as u64;

/// Why an archive cannot be written.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ZipError {
    #[error("the export is too large for a zip archive ({0} bytes)")]
    TooLarge(u64),
}

/// 1980-01-01 00:00, the earliest MS-DOS date.
const DOS_DATE: u16 = (1 << 5) | 1;
const DOS_TIME: u16 = 0;

/// The archive of `files`, each under `folder/`.
pub fn write(folder: &str, files: &[ExportFile]) -> Result<Vec<u8>, ZipError> {
    let total: u64 = files
        .iter()
        .map(|f| f.bytes.len() as u64 + 2 * (f.path.len() + folder.len()) as u64 + 100)
        .sum();
    if total > MAX_ZIP_BYTES || files.len() > u16::MAX as usize {
        return Err(ZipError::TooLarge(total));
    }
    let mut out = Vec::with_capacity(total as usize);
    let mut central = Vec::new();
    for f in files {
        let name = format!("{folder}/{}", f.path);
        let mut crc = flate2::Crc::new();
        crc.update(&f.bytes);
        let crc = crc.sum();
        let size = f.bytes.len() as u32;
        let offset = out.len() as u32;
        // Local file header.
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        header(&mut out, crc, size, &name);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&f.bytes);
        // Central directory entry.
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // made by: 2.0
        header(&mut central, crc, size, &name);
        central.extend_from_slice(&0u16.to_le_bytes()); // comment length
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let start = out.len() as u32;
    let n = files.len() as u16;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // this disk, disk of the directory
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&start.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    Ok(out)
}

/// The fields local headers and directory entries share, from "version needed" to the
/// extra field's length.
fn header(out: &mut Vec<u8>, crc: u32, size: u32, name: &str) {
    out.extend_from_slice(&20u16.to_le_bytes()); // version needed: 2.0
    out.extend_from_slice(&(1u16 << 11).to_le_bytes()); // names are UTF-8
    out.extend_from_slice(&0u16.to_le_bytes()); // stored
    out.extend_from_slice(&DOS_TIME.to_le_bytes());
    out.extend_from_slice(&DOS_DATE.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // extra field length
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the archive back through its central directory, checking every CRC.
    fn entries(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
        let u16_at = |i: usize| u16::from_le_bytes([zip[i], zip[i + 1]]) as usize;
        let u32_at = |i: usize| u32::from_le_bytes(zip[i..i + 4].try_into().unwrap()) as usize;
        let end = zip.len() - 22;
        assert_eq!(u32_at(end), 0x0605_4b50);
        let (n, mut at) = (u16_at(end + 10), u32_at(end + 16));
        let mut out = Vec::new();
        for _ in 0..n {
            assert_eq!(u32_at(at), 0x0201_4b50);
            let (crc, size, name_len) = (u32_at(at + 16), u32_at(at + 24), u16_at(at + 28));
            let name = String::from_utf8(zip[at + 46..at + 46 + name_len].to_vec()).unwrap();
            let local = u32_at(at + 42);
            let data_at = local + 30 + u16_at(local + 26);
            let data = zip[data_at..data_at + size].to_vec();
            let mut c = flate2::Crc::new();
            c.update(&data);
            assert_eq!(c.sum() as usize, crc);
            out.push((name, data));
            at += 46 + name_len;
        }
        out
    }

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
        let zip = write("batir", &files).unwrap();
        assert_eq!(zip, write("batir", &files).unwrap());
        let back = entries(&zip);
        assert_eq!(back[0].0, "batir/index.html");
        assert_eq!(
            back[1],
            ("batir/images/ab.jpg".to_string(), files[1].bytes.clone())
        );
    }
}
