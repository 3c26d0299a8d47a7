//! What happens to a file when it is added: its format is recognised, an image is checked and
//! decoded (refusing decompression bombs before decoding), turned upright by its EXIF
//! orientation, and rendered as a thumbnail and a display size without any metadata; the EXIF
//! date and position are read out to be offered, never copied into the renditions.
//!
//! HEIC is refused: no maintained pure-Rust HEIF decoder exists, and `libheif-rs` would tie every
//! office build to a C library; the message says which formats to convert to.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use super::store::MediaError;
use super::{MediaKind, MAX_BLOB_BYTES};

/// Longest side of a thumbnail, in pixels (list cards, search results, the gallery's strip).
pub const THUMB_SIDE: u32 = 320;
/// Longest side of a display-size image (the resource page and full-size view).
pub const DISPLAY_SIDE: u32 = 1600;
/// JPEG quality of renditions.
pub const RENDITION_QUALITY: u8 = 82;
/// Most pixels an added image may have: a 100-megapixel camera fits; a "decompression bomb"
/// (a small file announcing huge dimensions) is refused from its header, before decoding.
pub const MAX_PIXELS: u64 = 120_000_000;
/// Longest side an added image may have.
pub const MAX_SIDE: u32 = 30_000;
/// Most memory the decoder may allocate for one image.
pub const MAX_DECODE_ALLOC: u64 = 1024 * 1024 * 1024;

/// The formats accepted, as said to staff.
pub const ACCEPTED: &str = "JPEG, PNG, WebP (photos et plans) et PDF (documents)";

/// One rendition's JPEG bytes and size.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// A file checked and prepared for the médiathèque.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub mime: &'static str,
    /// `Document` for a PDF; an image is a `Photo` unless the caller says `Plan`.
    pub kind: MediaKind,
    /// The upright size of an image.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// EXIF `DateTimeOriginal` as `2024-05-01T10:12:00`.
    pub taken_at: Option<String>,
    /// EXIF GPS position (latitude, longitude): offered, not published by itself.
    pub gps: Option<(f64, f64)>,
    pub thumb: Option<Rendered>,
    pub display: Option<Rendered>,
}

/// Recognises a file by its first bytes.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.len() >= 12
        && &bytes[4..8] == b"ftyp"
        && matches!(
            &bytes[8..12],
            b"heic" | b"heix" | b"mif1" | b"msf1" | b"heim" | b"heis" | b"hevc"
        )
    {
        Some("image/heic")
    } else {
        None
    }
}

/// Checks `bytes` (a file named `name`) and makes its renditions. `plan` marks an image as a
/// plan rather than a photo.
pub fn prepare(bytes: &[u8], name: &str, plan: bool) -> Result<Prepared, MediaError> {
    if bytes.len() as u64 > MAX_BLOB_BYTES {
        return Err(MediaError::TooLarge {
            bytes: bytes.len() as u64,
        });
    }
    let unsupported = |why: String| MediaError::Unsupported(format!("« {name} » : {why}"));
    match sniff(bytes) {
        Some("application/pdf") => {
            // A PDF ends with `%%EOF` (possibly followed by a line end): a cut download does not.
            let tail = &bytes[bytes.len().saturating_sub(1024)..];
            if !tail.windows(5).any(|w| w == b"%%EOF") {
                return Err(unsupported(
                    "PDF incomplet (fin de fichier absente) : le fichier a sans doute été coupé"
                        .into(),
                ));
            }
            Ok(Prepared {
                mime: "application/pdf",
                kind: MediaKind::Document,
                width: None,
                height: None,
                taken_at: None,
                gps: None,
                thumb: None,
                display: None,
            })
        }
        Some("image/heic") => Err(unsupported(format!(
            "le format HEIC (photos d'iPhone) n'est pas pris en charge ; exportez la photo en JPEG. Formats acceptés : {ACCEPTED}"
        ))),
        Some(mime) => image(bytes, mime, plan).map_err(&unsupported),
        None => Err(unsupported(format!(
            "format non reconnu. Formats acceptés : {ACCEPTED}"
        ))),
    }
}

/// Whether an image file is whole: decoders fill a cut image with grey rather than fail, so a
/// photo copied halfway would otherwise be accepted.
fn check_complete(bytes: &[u8], mime: &str) -> Result<(), String> {
    let cut = || Err("image tronquée (le fichier s'arrête avant la fin de l'image)".to_string());
    match mime {
        // The main image's last scan (SOS, FF DA) must be followed by the end marker (EOI,
        // FF D9); an embedded EXIF thumbnail's scan comes earlier, inside APP1.
        "image/jpeg" => {
            let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
            match last_scan {
                Some(i) if bytes[i..].windows(2).any(|w| w == [0xFF, 0xD9]) => Ok(()),
                _ => cut(),
            }
        }
        // The IEND chunk closes every PNG.
        "image/png" => {
            let tail = &bytes[bytes.len().saturating_sub(64)..];
            if tail.windows(4).any(|w| w == b"IEND") {
                Ok(())
            } else {
                cut()
            }
        }
        // RIFF announces the file's length.
        _ => {
            let announced = bytes
                .get(4..8)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize + 8);
            match announced {
                Some(n) if n <= bytes.len() => Ok(()),
                _ => cut(),
            }
        }
    }
}

fn image(bytes: &[u8], mime: &'static str, plan: bool) -> Result<Prepared, String> {
    check_complete(bytes, mime)?;
    let format = match mime {
        "image/jpeg" => image::ImageFormat::Jpeg,
        "image/png" => image::ImageFormat::Png,
        _ => image::ImageFormat::WebP,
    };
    let reader = || ImageReader::with_format(Cursor::new(bytes), format);
    let (w, h) = reader()
        .into_dimensions()
        .map_err(|e| format!("image tronquée ou abîmée ({e})"))?;
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE || w as u64 * h as u64 > MAX_PIXELS {
        return Err(format!(
            "dimensions refusées ({w} × {h} pixels ; {} mégapixels et {MAX_SIDE} pixels de côté au plus)",
            MAX_PIXELS / 1_000_000
        ));
    }
    let mut r = reader();
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    r.limits(limits);
    let mut decoder = r
        .into_decoder()
        .map_err(|e| format!("image tronquée ou abîmée ({e})"))?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder)
        .map_err(|e| format!("image tronquée ou abîmée ({e})"))?;
    img.apply_orientation(orientation);
    let (taken_at, gps) = exif(bytes);
    Ok(Prepared {
        mime,
        kind: if plan {
            MediaKind::Plan
        } else {
            MediaKind::Photo
        },
        width: Some(img.width()),
        height: Some(img.height()),
        taken_at,
        gps,
        thumb: Some(render(&img, THUMB_SIDE)?),
        display: Some(render(&img, DISPLAY_SIDE)?),
    })
}

/// A JPEG of `img` whose longest side is at most `side`: new pixels, so no metadata survives.
fn render(img: &DynamicImage, side: u32) -> Result<Rendered, String> {
    let small = if img.width() > side || img.height() > side {
        img.thumbnail(side, side)
    } else {
        img.clone()
    };
    let rgb = small.to_rgb8();
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, RENDITION_QUALITY)
        .encode_image(&rgb)
        .map_err(|e| format!("rendu impossible ({e})"))?;
    Ok(Rendered {
        bytes,
        width: rgb.width(),
        height: rgb.height(),
    })
}

/// EXIF date taken and GPS position, when the file has them.
fn exif(bytes: &[u8]) -> (Option<String>, Option<(f64, f64)>) {
    use exif::{In, Tag, Value};
    let Ok(data) = exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) else {
        return (None, None);
    };
    let ascii = |tag| match data.get_field(tag, In::PRIMARY).map(|f| &f.value) {
        Some(Value::Ascii(v)) => v.first().map(|s| String::from_utf8_lossy(s).into_owned()),
        _ => None,
    };
    let taken_at = ascii(Tag::DateTimeOriginal)
        .or_else(|| ascii(Tag::DateTime))
        .and_then(|s| {
            // "2024:05:01 10:12:00" → "2024-05-01T10:12:00"
            let s = s.trim();
            let ok = s.len() == 19 && s.as_bytes()[4] == b':' && s.as_bytes()[10] == b' ';
            ok.then(|| format!("{}-{}-{}T{}", &s[..4], &s[5..7], &s[8..10], &s[11..]))
        });
    let degrees = |tag, reference, negative: &str| -> Option<f64> {
        let Some(Value::Rational(v)) = data.get_field(tag, In::PRIMARY).map(|f| &f.value) else {
            return None;
        };
        if v.len() < 3 || v.iter().any(|r| r.denom == 0) {
            return None;
        }
        let x = v[0].to_f64() + v[1].to_f64() / 60.0 + v[2].to_f64() / 3600.0;
        let sign = if ascii(reference).is_some_and(|r| r.trim() == negative) {
            -1.0
        } else {
            1.0
        };
        Some(sign * x)
    };
    let gps = match (
        degrees(Tag::GPSLatitude, Tag::GPSLatitudeRef, "S"),
        degrees(Tag::GPSLongitude, Tag::GPSLongitudeRef, "W"),
    ) {
        (Some(lat), Some(lon))
            if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
        {
            Some((lat, lon))
        }
        _ => None,
    };
    (taken_at, gps)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use image::{ImageEncoder, Rgb, RgbImage};

    /// A JPEG drawn here: a gradient of `w` × `h` pixels.
    pub(crate) fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
            .encode_image(&img)
            .unwrap();
        out
    }

    /// `jpeg` with an EXIF block (orientation 6 = rotate 90°, a date and a GPS position),
    /// written as an APP1 segment right after the SOI marker.
    fn jpeg_with_exif(w: u32, h: u32) -> Vec<u8> {
        use exif::{experimental::Writer, Field, In, Rational, Tag, Value};
        let fields = [
            Field {
                tag: Tag::Orientation,
                ifd_num: In::PRIMARY,
                value: Value::Short(vec![6]),
            },
            Field {
                tag: Tag::DateTimeOriginal,
                ifd_num: In::PRIMARY,
                value: Value::Ascii(vec![b"2024:05:01 10:12:00".to_vec()]),
            },
            Field {
                tag: Tag::GPSLatitudeRef,
                ifd_num: In::PRIMARY,
                value: Value::Ascii(vec![b"N".to_vec()]),
            },
            Field {
                tag: Tag::GPSLatitude,
                ifd_num: In::PRIMARY,
                value: Value::Rational(vec![
                    Rational::from((45, 1)),
                    Rational::from((46, 1)),
                    Rational::from((48, 1)),
                ]),
            },
            Field {
                tag: Tag::GPSLongitudeRef,
                ifd_num: In::PRIMARY,
                value: Value::Ascii(vec![b"E".to_vec()]),
            },
            Field {
                tag: Tag::GPSLongitude,
                ifd_num: In::PRIMARY,
                value: Value::Rational(vec![
                    Rational::from((3, 1)),
                    Rational::from((5, 1)),
                    Rational::from((24, 1)),
                ]),
            },
        ];
        let mut w_ = Writer::new();
        for f in &fields {
            w_.push_field(f);
        }
        let mut tiff = Cursor::new(Vec::new());
        w_.write(&mut tiff, false).unwrap();
        let tiff = tiff.into_inner();
        let plain = jpeg(w, h);
        let mut out = plain[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
        out.extend_from_slice(b"Exif\0\0");
        out.extend_from_slice(&tiff);
        out.extend_from_slice(&plain[2..]);
        out
    }

    #[test]
    fn a_photo_gets_upright_renditions_without_metadata_and_offers_its_exif() {
        let p = prepare(&jpeg_with_exif(2000, 1000), "chantier.jpg", false).unwrap();
        assert_eq!((p.kind, p.mime), (MediaKind::Photo, "image/jpeg"));
        // Orientation 6: the 2000 × 1000 sensor image is shown 1000 × 2000.
        assert_eq!((p.width, p.height), (Some(1000), Some(2000)));
        let t = p.thumb.unwrap();
        assert_eq!((t.width, t.height), (160, 320));
        let d = p.display.unwrap();
        assert_eq!((d.width, d.height), (800, 1600));
        assert_eq!(p.taken_at.as_deref(), Some("2024-05-01T10:12:00"));
        let (lat, lon) = p.gps.unwrap();
        assert!(
            (lat - 45.78).abs() < 1e-9 && (lon - 3.09).abs() < 1e-9,
            "{lat} {lon}"
        );
        for r in [&t.bytes, &d.bytes] {
            assert!(
                exif::Reader::new()
                    .read_from_container(&mut Cursor::new(r))
                    .is_err(),
                "renditions carry no EXIF"
            );
        }
    }

    #[test]
    fn bad_files_are_refused_with_their_reason() {
        let good = jpeg(64, 48);
        let cut = &good[..good.len() / 2];
        let e = prepare(cut, "coupee.jpg", false).unwrap_err().to_string();
        assert!(e.contains("coupee.jpg") && e.contains("tronquée"), "{e}");
        let e = prepare(b"GIF89a....", "x.gif", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Formats acceptés : JPEG, PNG, WebP"), "{e}");
        let mut heic = vec![0, 0, 0, 24];
        heic.extend_from_slice(b"ftypheic");
        heic.extend_from_slice(&[0; 12]);
        let e = prepare(&heic, "IMG_0001.HEIC", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("HEIC"), "{e}");
        let e = prepare(b"%PDF-1.7\n1 0 obj", "fiche.pdf", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("PDF incomplet"), "{e}");
        let pdf = prepare(b"%PDF-1.7\n1 0 obj\n%%EOF\n", "fiche.pdf", false).unwrap();
        assert_eq!(pdf.kind, MediaKind::Document);
    }

    #[test]
    fn a_decompression_bomb_is_refused_from_its_header() {
        // A PNG whose header announces 60,000 × 60,000 pixels, in a few hundred bytes.
        let mut png = Vec::new();
        let img = image::GrayImage::new(1, 1);
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(img.as_raw(), 1, 1, image::ExtendedColorType::L8)
            .unwrap();
        // IHDR width and height sit at bytes 16..24; fix the chunk's CRC after changing them.
        png[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&60_000u32.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let e = prepare(&png, "bombe.png", false).unwrap_err().to_string();
        assert!(e.contains("dimensions refusées"), "{e}");
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
