//! The relay's blobs on a real S3 server (moto): stored after verification, resumed after a
//! cut, uploaded in parts when large, verified when read (a corrupt object is deleted), refused
//! past an office's quota, and served over `GET /media/{hash}` by a whole relay.

use atelier_core::media::BlobHash;
use atelier_relay::blobs::{BlobError, RelayBlobs, UPLOAD_PART_BYTES};

use crate::harness::{http, Moto, TestRelay};

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(29) ^ seed).collect()
}

fn key(hash: &BlobHash) -> String {
    let hex = hash.to_hex();
    format!("{}/{hex}", &hex[..2])
}

async fn send(blobs: &RelayBlobs, data: &[u8], office: &str) -> Result<BlobHash, BlobError> {
    blobs.put(data, office).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_on_s3_are_stored_resumed_verified_and_held_to_the_quota() {
    let moto = Moto::start("atelier-blobs").await;
    let dir = tempfile::tempdir().unwrap();
    let quota = 3 * UPLOAD_PART_BYTES as u64;
    let blobs = RelayBlobs::open_with(dir.path(), &moto.media_config(quota)).unwrap();
    blobs.check().await.unwrap();
    let mut elsewhere = moto.media_config(quota);
    elsewhere.s3_bucket = Some("no-such-bucket".into());
    let missing = RelayBlobs::open_with(dir.path(), &elsewhere).unwrap();
    assert!(
        missing.check().await.is_err(),
        "a missing bucket is reported"
    );

    // A receive cut half-way resumes from the bytes kept on the relay's disk.
    let photo = bytes(400_000, 1);
    let hash = BlobHash::of(&photo);
    let mut r = blobs.receive(&hash, 400_000, "caue-15").await.unwrap();
    r.write(&photo[..150_000]).unwrap();
    drop(r);
    assert_eq!(
        blobs.len(&hash).await.unwrap(),
        None,
        "nothing stored before it is whole"
    );
    let mut r = blobs.receive(&hash, 400_000, "caue-15").await.unwrap();
    assert_eq!(r.offset(), 150_000);
    r.write(&photo[150_000..]).unwrap();
    blobs.store(r, "caue-15").await.unwrap();
    assert!(moto.has(&key(&hash)).await, "the blob is in the bucket");
    assert_eq!(blobs.len(&hash).await.unwrap(), Some(400_000));
    assert_eq!(
        blobs.read_range(&hash, 1000..1100).await.unwrap().unwrap(),
        &photo[1000..1100]
    );

    // Larger than one part: a multipart upload, read back byte for byte.
    let plan = bytes(UPLOAD_PART_BYTES + 1_234_567, 2);
    let big = send(&blobs, &plan, "caue-15").await.unwrap();
    let back = blobs
        .read_range(&big, 0..plan.len() as u64)
        .await
        .unwrap()
        .unwrap();
    assert!(back == plan, "multipart blob differs");
    assert_eq!(blobs.usage("caue-15"), 400_000 + plan.len() as u64);

    // Past the quota: refused before any byte is sent, in French.
    let err = send(&blobs, &bytes(2 * UPLOAD_PART_BYTES, 3), "caue-15")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("quota de médias de l'office caue-15 atteint"),
        "{err}"
    );

    // Altered in the bucket: a fresh relay run verifies, deletes it, reports it absent.
    moto.overwrite(&key(&hash), bytes(400_000, 9)).await;
    let fresh = RelayBlobs::open_with(dir.path(), &moto.media_config(quota)).unwrap();
    assert_eq!(fresh.read_range(&hash, 0..10).await.unwrap(), None);
    assert!(
        !moto.has(&key(&hash)).await,
        "the corrupt object is deleted"
    );
    assert_eq!(fresh.len(&hash).await.unwrap(), None);
    // Usage is kept across runs.
    assert_eq!(fresh.usage("caue-15"), 400_000 + plan.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_on_s3_serves_media_over_http_with_its_tokens() {
    let moto = Moto::start("atelier-relay-media").await;
    let relay = TestRelay::start_with_media(moto.media_config(1_000_000_000)).await;
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    jpeg.extend(bytes(200_000, 4));
    let hash = send(relay.handle().blobs(), &jpeg, "caue-15")
        .await
        .unwrap();
    assert!(moto.has(&key(&hash)).await);

    let token = relay.ws_token("caue-63", true);
    let addr = relay.handle().ws_addr();
    let path = format!("/media/{}", hash.to_hex());
    let bearer = format!("Bearer {token}");
    let (status, headers, body) =
        http(addr, "GET", &path, &[("Authorization", &bearer)], b"").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(headers["etag"], format!("\"{}\"", hash.to_hex()));
    assert!(body == jpeg, "served bytes differ");

    let with_token = format!("{path}?token={token}");
    let (status, headers, body) =
        http(addr, "GET", &with_token, &[("Range", "bytes=10-19")], b"").await;
    assert_eq!(status, 206);
    assert_eq!(
        headers["content-range"],
        format!("bytes 10-19/{}", jpeg.len())
    );
    assert_eq!(body, &jpeg[10..20]);

    let (status, ..) = http(addr, "GET", &path, &[], b"").await;
    assert_eq!(status, 401);
    let (status, ..) = http(addr, "GET", &format!("{path}?token=faux"), &[], b"").await;
    assert_eq!(status, 401);
    let absent = format!("/media/{}?token={token}", BlobHash::of(b"absent").to_hex());
    assert_eq!(http(addr, "GET", &absent, &[], b"").await.0, 404);
    relay.shutdown().await;
}
