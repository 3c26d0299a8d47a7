//! The `atelier` binary, run as a real process on a replica directory.
//!
//! The binary belongs to another package, so Cargo gives this crate no `CARGO_BIN_EXE_atelier`.
//! The first test that needs it (or `atelier-web`, `atelier-relay`) runs `cargo build --bins
//! -p atelier-cli -p atelier-web -p atelier-relay --message-format=json` (as escargot and
//! snapbox do) and takes the executables' paths from Cargo's own report. That path follows `CARGO_TARGET_DIR` and the profile, and the binary is
//! rebuilt if its sources changed, so a stale binary is never tested. Cargo has released its
//! build lock once test binaries run, so the nested build does not wait on the outer one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// Path of the `atelier` binary, built once per test run.
pub(crate) fn atelier_bin() -> &'static Path {
    &workspace_bins().atelier
}

/// The binaries the crash loops run.
pub(crate) fn crash_bins() -> atelier_tests::crash::Bins {
    workspace_bins().clone()
}

/// `atelier`, `atelier-web` and `atelier-relay`, built once per test run by one `cargo build`
/// of their three packages: one set of features for their shared dependencies, the set the
/// CLI (which links the other two) already builds, so no dependency is built twice.
fn workspace_bins() -> &'static atelier_tests::crash::Bins {
    static BINS: OnceLock<atelier_tests::crash::Bins> = OnceLock::new();
    BINS.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--offline", "--bins"])
            .args([
                "-p",
                "atelier-cli",
                "-p",
                "atelier-web",
                "-p",
                "atelier-relay",
            ])
            .args(["--message-format=json", "--manifest-path"])
            .arg(&manifest);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let out = cmd
            .stderr(Stdio::inherit())
            .output()
            .expect("running cargo build");
        assert!(out.status.success(), "cargo build of the binaries failed");
        let report = String::from_utf8_lossy(&out.stdout);
        let executable = |bin: &str| -> PathBuf {
            report
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
                .find_map(|m| m["executable"].as_str().map(PathBuf::from))
                .unwrap_or_else(|| panic!("cargo reported no `{bin}` executable"))
        };
        atelier_tests::crash::Bins {
            atelier: executable("atelier"),
            atelier_web: executable("atelier-web"),
            relay: executable("atelier-relay"),
        }
    })
}

/// What a run of `atelier` gave.
#[derive(Debug)]
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the run succeeded (exit 0), showing its output otherwise.
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "atelier failed:\n{}\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Standard output, parsed as one JSON value.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// Runs `atelier` on the replica in `dir` with `args`, feeding it `stdin`.
pub(crate) fn atelier(dir: &Path, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(atelier_bin())
        .args(args)
        .env("ATELIER_DIR", dir)
        .env_remove("ATELIER_LOG")
        .current_dir(dir.parent().unwrap_or(dir))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting atelier");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// [`atelier`] from async tests: the run goes to the blocking pool, so the test's relay and
/// agents keep running meanwhile.
pub(crate) async fn atelier_async(dir: &Path, args: &[&str]) -> Run {
    let (dir, args): (PathBuf, Vec<String>) = (
        dir.to_path_buf(),
        args.iter().map(|a| a.to_string()).collect(),
    );
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        atelier(&dir, &args, "")
    })
    .await
    .unwrap()
}

/// What a plain HTTP GET got: status, the `Set-Cookie` (name=value), `Location`, and the body.
#[derive(Debug)]
pub(crate) struct HttpAnswer {
    pub status: u16,
    pub cookie: Option<String>,
    pub location: Option<String>,
    pub body: String,
}

/// `GET url` (an `http://127.0.0.1:PORT/…` address) with an optional cookie, as a browser's
/// navigation sends it, over one HTTP/1.1 connection (the server closes it: `Connection:
/// close`). A read timeout bounds the wait.
pub(crate) fn http_get(url: &str, cookie: Option<&str>) -> HttpAnswer {
    use std::io::Read;
    let rest = url.strip_prefix("http://").expect("an http:// address");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = std::net::TcpStream::connect(host).expect("connecting to the web app");
    stream
        .set_read_timeout(Some(super::WAIT))
        .expect("read timeout");
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("reading the answer");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    HttpAnswer {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {head}")),
        cookie: header("set-cookie").map(|c| c.split(';').next().unwrap_or("").to_string()),
        location: header("location"),
        body: body.to_string(),
    }
}

/// A new replica of `office` in `dir`, held by a running `atelier-web` (so `atelier` commands
/// go through its local API), until [`WebHeld::stop`].
pub(crate) struct WebHeld {
    rt: tokio::runtime::Runtime,
    web: atelier_web::WebHandle,
}

impl WebHeld {
    pub(crate) fn start(dir: &Path, office: &str) -> Self {
        let replica = std::sync::Arc::new(
            atelier_core::replica::Replica::init(dir, office.parse().unwrap()).unwrap(),
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let web = rt
            .block_on(atelier_web::spawn(
                replica,
                atelier_web::WebConfig::default(),
            ))
            .unwrap();
        Self { rt, web }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        self.web.url()
    }

    /// Shuts the web app down (it removes its `server.json`).
    pub(crate) fn stop(self) {
        self.rt.block_on(self.web.shutdown());
    }
}
