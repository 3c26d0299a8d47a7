//! A real S3 server for the blob tests: moto's server mode on `127.0.0.1` with a port of its
//! choosing, one bucket made for the test, stopped when dropped. Plus a bare HTTP/1.1 client
//! for the S3 and relay requests the tests make by hand.
//!
//! moto is found at `$ATELIER_MOTO_SERVER`, else in the virtualenv `scripts/test` makes
//! (`target/moto`), else on `PATH`. A machine without it fails the test with that advice:
//! the S3 backend is never left untested silently.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use atelier_relay::config::MediaConfig;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::WAIT;

/// Region moto creates buckets in without a location constraint.
const REGION: &str = "us-east-1";

/// A running moto S3 server with one empty bucket.
pub(crate) struct Moto {
    child: Child,
    pub addr: SocketAddr,
    pub bucket: String,
}

impl Moto {
    /// Starts moto and creates `bucket`. Panics, saying how to install moto, if it is missing.
    pub async fn start(bucket: &str) -> Self {
        let program = moto_server();
        let mut child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}\n{MISSING}", program.display()));
        // moto logs every request to stderr: keep reading it so it never blocks, and pass on
        // the line that says where it listens.
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("Running on http://").nth(1) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.trim().to_string());
                    }
                }
            }
        });
        let addr = match tokio::task::spawn_blocking(move || rx.recv_timeout(WAIT))
            .await
            .unwrap()
        {
            Ok(addr) => addr.parse().expect("moto prints host:port"),
            Err(_) => {
                let _ = child.kill();
                panic!("moto did not start within {WAIT:?} ({})", program.display());
            }
        };
        let moto = Self {
            child,
            addr,
            bucket: bucket.to_string(),
        };
        let (status, _, body) = http(addr, "PUT", &format!("/{bucket}"), &[], b"").await;
        assert_eq!(
            status,
            200,
            "creating bucket {bucket}: {}",
            String::from_utf8_lossy(&body)
        );
        moto
    }

    /// A relay's `[media]` table for this bucket.
    pub fn media_config(&self, quota_per_office: u64) -> MediaConfig {
        MediaConfig {
            s3_bucket: Some(self.bucket.clone()),
            s3_endpoint: Some(format!("http://{}", self.addr)),
            s3_region: Some(REGION.into()),
            s3_access_key_id: Some("atelier-test".into()),
            s3_secret_access_key: Some("atelier-test-secret".into()),
            s3_allow_http: true,
            quota_per_office,
        }
    }

    /// The bucket as the test's own S3 client: objects altered or looked at behind the
    /// relay's back (moto refuses unsigned requests on objects).
    pub fn client(&self) -> AmazonS3 {
        let c = self.media_config(1);
        AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_endpoint(c.s3_endpoint.unwrap())
            .with_region(REGION)
            .with_access_key_id(c.s3_access_key_id.unwrap())
            .with_secret_access_key(c.s3_secret_access_key.unwrap())
            .with_allow_http(true)
            .build()
            .unwrap()
    }

    /// Overwrites an object (a disk or a person altering it).
    pub async fn overwrite(&self, key: &str, bytes: Vec<u8>) {
        let path = ObjectPath::from(key);
        self.client()
            .put(&path, PutPayload::from(bytes))
            .await
            .unwrap();
    }

    /// Whether the bucket holds `key`.
    pub async fn has(&self, key: &str) -> bool {
        match self.client().head(&ObjectPath::from(key)).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => panic!("looking for {key} in moto: {e}"),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MISSING: &str = "moto's S3 server is needed by the S3 blob tests: run scripts/test \
     (it installs moto into target/moto), or `pip install 'moto[server]'`, or set \
     ATELIER_MOTO_SERVER to a moto_server executable";

fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("ATELIER_MOTO_SERVER") {
        return path.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/moto/bin/moto_server");
    if venv.is_file() {
        return venv;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("moto_server"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| panic!("{MISSING}"))
}

/// One HTTP/1.1 request on a new connection: status, headers (lowercase names), body. Enough
/// for moto and the relay, which answer with a `Content-Length` and close when asked.
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("HTTP answer in time");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("an HTTP status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if method == "HEAD" {
        Vec::new()
    } else {
        raw[split + 4..].to_vec()
    };
    (status, headers, body)
}
