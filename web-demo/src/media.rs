//! `GET /media/{hash}`: a blob of the replica's médiathèque for the pages (gallery images,
//! thumbnails of the cards, downloads), read from the `MediaStore` and verified on the way.
//!
//! Blobs never change (their name is their hash), so a browser may keep them for good:
//! `ETag` is the hash, `Cache-Control: private, max-age=31536000, immutable`, and a request
//! carrying that `ETag` in `If-None-Match` gets `304` without the disk being read. A blob not
//! received yet is a `404` that is never cached, so the image shows as soon as it arrives.
//! `?download=NAME` serves it as an attachment named `NAME` (a document's original).

use atelier_core::media::store::IO_CHUNK;
use atelier_core::media::{rendition, BlobHash};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::{ErrorMessage, WebError};
use crate::AppState;

/// What browsers are told to keep a blob: for a year, without asking again (it cannot change).
pub const BLOB_CACHE_CONTROL: &str = "private, max-age=31536000, immutable";
/// Chunks of a streamed blob waiting for the connection: with [`IO_CHUNK`], what one download
/// holds in memory.
const STREAM_CHUNKS_IN_FLIGHT: usize = 4;
/// Longest file name kept in `Content-Disposition` (in characters); the rest is cut.
const MAX_DOWNLOAD_NAME_CHARS: usize = 200;

/// `?download=NAME`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct BlobQuery {
    download: Option<String>,
}

/// The address of a blob for the pages.
pub fn blob_path(hash: &BlobHash) -> String {
    format!("/media/{hash}")
}

/// The address that downloads a blob under its original file name.
pub fn download_path(hash: &BlobHash, name: &str) -> String {
    format!(
        "/media/{hash}?download={}",
        crate::pages::encode_query(name)
    )
}

pub async fn serve(
    State(state): State<AppState>,
    Path(hash): Path<String>,
    Query(q): Query<BlobQuery>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let hash: BlobHash = hash
        .parse()
        .map_err(|e: atelier_core::media::BadHash| WebError::BadRequest(e.to_string()))?;
    let etag = format!("\"{hash}\"");
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if cached {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, BLOB_CACHE_CONTROL.to_string()),
            ],
        )
            .into_response());
    }
    let opened = state
        .blocking(move |r| match r.media_store().open_verified(&hash) {
            Ok(Some((mut file, len))) => {
                use std::io::Read as _;
                // The first bytes say the type; the stream then starts from the beginning.
                let mut head = vec![0u8; 64.min(len as usize)];
                file.read_exact(&mut head).map_err(WebError::internal)?;
                Ok(Some((file, len, head)))
            }
            Ok(None) => Ok(None),
            // Discarded by the store: media sync fetches it again; until then it is missing.
            Err(atelier_core::media::store::MediaError::Corrupt { .. }) => Ok(None),
            Err(e) => Err(WebError::internal(e)),
        })
        .await?;
    let Some((file, len, head)) = opened else {
        return Ok(not_here());
    };
    let mime = rendition::sniff(&head).unwrap_or("application/octet-stream");
    let mut response = Response::new(stream(file, head));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(BLOB_CACHE_CONTROL),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Some(name) = q.download.as_deref() {
        if let Ok(v) = HeaderValue::from_str(&content_disposition(name)) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(response)
}

/// The 404 of a blob not received yet, never kept by a cache.
fn not_here() -> Response {
    let message = ErrorMessage {
        message: "Ce fichier n'est pas encore arrivé sur cet ordinateur : il sera affiché dès sa réception.".into(),
        fields: Vec::new(),
    };
    let mut response = (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, "no-store")],
        message.message.clone(),
    )
        .into_response();
    response.extensions_mut().insert(message);
    response
}

/// The file from its first bytes (already read) to its end, read off the async threads.
fn stream(mut file: std::fs::File, head: Vec<u8>) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(STREAM_CHUNKS_IN_FLIGHT);
    // The reader ends when the file does or when the response is dropped (the send fails).
    tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        if tx.blocking_send(Ok(head)).is_err() {
            return;
        }
        loop {
            let mut buf = vec![0u8; IO_CHUNK];
            match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(buf)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }))
}

/// `attachment` with the name as typed (RFC 6266: an ASCII fallback, then UTF-8 percent-encoded).
fn content_disposition(name: &str) -> String {
    let name: String = name
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '/' | '\\'))
        .take(MAX_DOWNLOAD_NAME_CHARS)
        .collect();
    let name = if name.trim().is_empty() {
        "fichier".to_string()
    } else {
        name
    };
    let ascii: String = name
        .chars()
        .map(|c| if c.is_ascii() && c != '"' { c } else { '_' })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_are_safe_in_a_header_and_keep_their_accents() {
        let d = content_disposition("Fiche été \"2024\".pdf");
        assert_eq!(
            d,
            "attachment; filename=\"Fiche _t_ _2024_.pdf\"; filename*=UTF-8''Fiche%20%C3%A9t%C3%A9%20%222024%22.pdf"
        );
        assert!(HeaderValue::from_str(&content_disposition("a\r\nSet-Cookie: x")).is_ok());
        assert!(content_disposition("../../etc/passwd").contains("filename=\"....etcpasswd\""));
        assert!(content_disposition(" ").contains("fichier"));
    }
}
