//! `GET /media/{hash}` (and `HEAD`) on the relay's HTTP/WebSocket listener: the relay's blobs for
//! automerge-repo clients that see media entries in documents.
//!
//! The bearer token is the WebSocket one (`atelier-relay token`), in `Authorization: Bearer …`
//! or `?token=…` (an `<img src>` cannot set headers); read-only tokens may read. Blobs never
//! change (their name is their BLAKE3 hash), so the answer carries `ETag: "<hash>"`, answers
//! `If-None-Match` with 304 and is cacheable for a year; one byte range (`Range: bytes=…`) gets
//! 206 with `Content-Range`, an unsatisfiable one 416. The blob is verified before it is served
//! (once per relay run) and streamed in chunks.

use std::sync::Arc;

use atelier_core::media::BlobHash;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::TryStreamExt;

use crate::blobs::{BlobInfo, RelayBlobs};
use crate::ws::{bearer, TokenQuery, WsAuth};

/// Blobs are immutable: caches may keep them for a year without asking again; `private`
/// because the token that fetched one is an office's.
pub const CACHE_CONTROL: &str = "private, max-age=31536000, immutable";

#[derive(Clone)]
struct MediaState {
    blobs: RelayBlobs,
    auth: Arc<dyn WsAuth>,
}

/// The `/media/{hash}` route over `blobs`, checking tokens with `auth`.
pub fn router(blobs: RelayBlobs, auth: Arc<dyn WsAuth>) -> Router {
    Router::new()
        .route("/media/{hash}", get(serve))
        .with_state(MediaState { blobs, auth })
}

async fn serve(
    State(state): State<MediaState>,
    Path(hash): Path<String>,
    Query(query): Query<TokenQuery>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Some(token) = query.token.or_else(|| bearer(&headers)) else {
        return (StatusCode::UNAUTHORIZED, "jeton manquant").into_response();
    };
    // Answered from memory (see `WsAuth`): no file read, no blocking-pool task per request.
    if state.auth.authorize(&token).is_none() {
        return (StatusCode::UNAUTHORIZED, "jeton inconnu").into_response();
    }
    let Ok(hash) = hash.parse::<BlobHash>() else {
        return (StatusCode::BAD_REQUEST, "empreinte de fichier invalide").into_response();
    };
    let info = match state.blobs.verified(&hash).await {
        Ok(Some(info)) => info,
        Ok(None) => return (StatusCode::NOT_FOUND, "fichier absent du relais").into_response(),
        Err(e) => {
            tracing::error!(blob = %hash.to_hex(), error = %e, "reading a blob");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let etag = format!("\"{}\"", hash.to_hex());
    let mut response = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, CACHE_CONTROL)
        .header(header::ACCEPT_RANGES, "bytes");
    if none_match(&headers, &etag) {
        return response
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let range = match requested_range(&headers, &etag, info.len) {
        Requested::Whole => None,
        Requested::Part(range) => Some(range),
        Requested::Unsatisfiable => {
            return response
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{}", info.len))
                .body(Body::empty())
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
    };
    let bytes = range.clone().unwrap_or(0..info.len);
    response = response
        .header(header::CONTENT_TYPE, info.content_type)
        .header(header::CONTENT_LENGTH, bytes.end - bytes.start)
        .header(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    response = match &range {
        Some(r) => response.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{}", r.start, r.end - 1, info.len),
        ),
        None => response.status(StatusCode::OK),
    };
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        match body(&state.blobs, &hash, &info, bytes).await {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(blob = %hash.to_hex(), error = %e, "streaming a blob");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        }
    };
    response
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn body(
    blobs: &RelayBlobs,
    hash: &BlobHash,
    info: &BlobInfo,
    range: std::ops::Range<u64>,
) -> Result<Body, crate::blobs::BlobError> {
    let chunks = blobs.stream_range(hash, info, range).await?;
    Ok(Body::from_stream(chunks.inspect_err(|e| {
        tracing::warn!(error = %e, "blob stream cut");
    })))
}

/// Whether `If-None-Match` names this blob (or `*`).
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

enum Requested {
    Whole,
    Part(std::ops::Range<u64>),
    Unsatisfiable,
}

/// The one byte range asked for. A malformed `Range`, several ranges, or an `If-Range` that is
/// not this blob's tag get the whole blob, as RFC 9110 allows.
fn requested_range(headers: &HeaderMap, etag: &str, len: u64) -> Requested {
    match parse_range(headers, etag, len) {
        // Nothing of an empty blob can be sent as a range.
        Requested::Part(r) if r.is_empty() => Requested::Unsatisfiable,
        requested => requested,
    }
}

fn parse_range(headers: &HeaderMap, etag: &str, len: u64) -> Requested {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Requested::Whole;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        if if_range.to_str().ok().map(str::trim) != Some(etag) {
            return Requested::Whole;
        }
    }
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Requested::Whole;
    };
    if spec.contains(',') {
        return Requested::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Requested::Whole;
    };
    let parse = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // `bytes=-N`: the last N bytes.
        (true, false) => match parse(last) {
            Some(0) => Requested::Unsatisfiable,
            Some(n) => Requested::Part(len.saturating_sub(n)..len),
            None => Requested::Whole,
        },
        // `bytes=A-` or `bytes=A-B`.
        (false, open) => {
            let Some(start) = parse(first) else {
                return Requested::Whole;
            };
            let end = if open {
                len
            } else {
                match parse(last) {
                    Some(last) if last >= start => last.saturating_add(1).min(len),
                    _ => return Requested::Whole,
                }
            };
            if start >= len {
                Requested::Unsatisfiable
            } else {
                Requested::Part(start..end)
            }
        }
        (true, true) => Requested::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::WsPeer;
    use axum::http::Request;
    use tower::ServiceExt;

    struct Tokens;

    impl WsAuth for Tokens {
        fn authorize(&self, token: &str) -> Option<WsPeer> {
            (token == "bon").then(|| WsPeer {
                office: "caue-15".into(),
                read_only: true,
            })
        }
    }

    /// A relay's blob store holding one small PNG-looking blob.
    async fn fixture() -> (tempfile::TempDir, Router, BlobHash, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let blobs = RelayBlobs::open(dir.path()).unwrap();
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend((0..5000u32).map(|i| (i % 251) as u8));
        let hash = BlobHash::of(&png);
        let mut r = blobs
            .receive(&hash, png.len() as u64, "caue-15")
            .await
            .unwrap();
        r.write(&png).unwrap();
        blobs.store(r, "caue-15").await.unwrap();
        (dir, router(blobs, Arc::new(Tokens)), hash, png)
    }

    async fn call(app: &Router, method: Method, uri: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        app.clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn body(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    fn header(response: &Response, name: header::HeaderName) -> &str {
        response.headers()[name].to_str().unwrap()
    }

    #[tokio::test]
    async fn a_blob_is_served_whole_with_its_tag_type_and_cache_headers() {
        let (_dir, app, hash, png) = fixture().await;
        let uri = format!("/media/{}", hash.to_hex());
        let auth = [("authorization", "Bearer bon")];
        let r = call(&app, Method::GET, &uri, &auth).await;
        assert_eq!(r.status(), StatusCode::OK);
        let etag = format!("\"{}\"", hash.to_hex());
        assert_eq!(header(&r, header::ETAG), etag);
        assert_eq!(header(&r, header::CONTENT_TYPE), "image/png");
        assert_eq!(header(&r, header::ACCEPT_RANGES), "bytes");
        assert_eq!(header(&r, header::CACHE_CONTROL), CACHE_CONTROL);
        assert_eq!(header(&r, header::CONTENT_LENGTH), png.len().to_string());
        assert_eq!(body(r).await, png);

        // The token may come in the query (an <img src>), and HEAD sends no body.
        let r = call(&app, Method::HEAD, &format!("{uri}?token=bon"), &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, header::CONTENT_LENGTH), png.len().to_string());
        assert!(body(r).await.is_empty());

        let r = call(
            &app,
            Method::GET,
            &uri,
            &[auth[0], ("if-none-match", &etag)],
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&r, header::ETAG), etag);
        assert!(body(r).await.is_empty());
        let other = format!("\"{}\", {etag}", "0".repeat(64));
        let r = call(
            &app,
            Method::GET,
            &uri,
            &[auth[0], ("if-none-match", &other)],
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn ranges_get_206_and_impossible_ones_416() {
        let (_dir, app, hash, png) = fixture().await;
        let uri = format!("/media/{}?token=bon", hash.to_hex());
        let len = png.len();
        for (range, want) in [
            ("bytes=0-9", 0..10),
            ("bytes=100-", 100..len),
            ("bytes=-8", len - 8..len),
            ("bytes=5000-999999", 5000..len),
        ] {
            let r = call(&app, Method::GET, &uri, &[("range", range)]).await;
            assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
            assert_eq!(
                header(&r, header::CONTENT_RANGE),
                format!("bytes {}-{}/{len}", want.start, want.end - 1)
            );
            assert_eq!(header(&r, header::CONTENT_LENGTH), want.len().to_string());
            assert_eq!(body(r).await, &png[want], "{range}");
        }
        for range in [format!("bytes={len}-"), "bytes=-0".to_string()] {
            let r = call(&app, Method::GET, &uri, &[("range", &range)]).await;
            assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
            assert_eq!(header(&r, header::CONTENT_RANGE), format!("bytes */{len}"));
        }
        // Malformed, multiple, or for another version: the whole blob.
        for headers in [
            vec![("range", "bytes=9-2")],
            vec![("range", "lines=1-2")],
            vec![("range", "bytes=0-1,4-5")],
            vec![("range", "bytes=0-1"), ("if-range", "\"autre\"")],
        ] {
            let r = call(&app, Method::GET, &uri, &headers).await;
            assert_eq!(r.status(), StatusCode::OK, "{headers:?}");
            assert_eq!(body(r).await, png);
        }
    }

    #[tokio::test]
    async fn tokens_hashes_and_absent_blobs_are_refused_plainly() {
        let (dir, app, hash, _) = fixture().await;
        let uri = format!("/media/{}", hash.to_hex());
        let r = call(&app, Method::GET, &uri, &[]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = call(&app, Method::GET, &format!("{uri}?token=mauvais"), &[]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = call(&app, Method::GET, &uri, &[("authorization", "Bearer faux")]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = call(&app, Method::GET, "/media/pas-une-empreinte?token=bon", &[]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let absent = BlobHash::of(b"absent");
        let r = call(
            &app,
            Method::GET,
            &format!("/media/{}?token=bon", absent.to_hex()),
            &[],
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);

        // A blob altered on the relay's disk is not served, and is gone.
        let hex = hash.to_hex();
        let path = dir.path().join("media").join(&hex[..2]).join(&hex);
        std::fs::write(&path, b"not the png").unwrap();
        let fresh = router(RelayBlobs::open(dir.path()).unwrap(), Arc::new(Tokens));
        let r = call(&fresh, Method::GET, &format!("{uri}?token=bon"), &[]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert!(!path.exists());
    }
}
