//! What the benchmarks over loopback share (`sync`, `media`): the relay binary as a child
//! process, enrolled offices, a measuring child process of the benchmark itself, peak RSS
//! readers, and the units of their tables.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use atelier_core::clock::now_ms;
use atelier_core::jsonl;
use atelier_core::replica::Replica;
use atelier_core::sync::{Role, Session, SyncStats};
use atelier_core::Resource;
use atelier_relay::access::AccessStore;
use atelier_relay::client;
use atelier_relay::handshake::CloseCode;
use atelier_relay::identity::{Fingerprint, Identity};
use atelier_relay::sync_conn::{drive, Mode};
use serde::de::DeserializeOwned;

use crate::node::wait_for;

/// Bound on one Atelier sync; far above what any size here takes.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(600);
/// Bound on the relay's graceful stop before it is killed.
const RELAY_STOP: Duration = Duration::from_secs(15);

/// Reads and validates a JSON Lines corpus (FORMAT.md).
pub fn load(path: &Path) -> anyhow::Result<Vec<Resource>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(jsonl::parse(BufReader::new(file))?)
}

/// The relay binary: `given`, or `atelier-relay` beside this benchmark's binary.
pub fn relay_bin(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let bin = match given {
        Some(b) => b.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory for this binary")?
            .join("atelier-relay"),
    };
    if !bin.is_file() {
        bail!(
            "{} not found: build it (cargo build --release -p atelier-relay) or pass --relay-bin",
            bin.display()
        );
    }
    Ok(bin)
}

/// The hidden flags of a benchmark's child process that pulls into a fresh replica.
#[derive(Debug, Default, clap::Args)]
pub struct ChildPull {
    /// Internal: pull into this replica directory (the child process of a fresh pull).
    #[arg(long, hide = true)]
    pub pull_into: Option<PathBuf>,
    /// Internal: the relay to pull from.
    #[arg(long, hide = true)]
    pub relay_addr: Option<SocketAddr>,
    /// Internal: the relay's fingerprint.
    #[arg(long, hide = true)]
    pub relay_fp: Option<Fingerprint>,
}

impl ChildPull {
    /// In the child process: where to pull and from which relay; `None` in the benchmark itself.
    pub fn target(&self) -> anyhow::Result<Option<(&Path, SocketAddr, Fingerprint)>> {
        let Some(dir) = &self.pull_into else {
            return Ok(None);
        };
        let (Some(addr), Some(fp)) = (self.relay_addr, self.relay_fp) else {
            bail!("--pull-into needs --relay-addr and --relay-fp");
        };
        Ok(Some((dir, addr, fp)))
    }

    /// The arguments that start the child of benchmark `bench` pulling into `dir` from `relay`.
    pub fn args(bench: &str, dir: &Path, relay: &RelayChild) -> Vec<String> {
        vec![
            bench.into(),
            "--corpus".into(),
            "-".into(),
            "--pull-into".into(),
            dir.display().to_string(),
            "--relay-addr".into(),
            relay.addr.to_string(),
            "--relay-fp".into(),
            relay.fingerprint.to_string(),
        ]
    }
}

/// Runs this benchmark binary again with `args` (a measuring child: its peak RSS is its own)
/// and reads the JSON it prints.
///
/// With `ATELIER_BENCH_CHILD_WRAPPER` set (e.g. `heaptrack`), the child runs under that
/// command, to profile the measured process itself.
pub fn in_child<T: DeserializeOwned>(args: &[String]) -> anyhow::Result<T> {
    let exe = std::env::current_exe()?;
    let mut command = match std::env::var_os("ATELIER_BENCH_CHILD_WRAPPER") {
        Some(wrapper) => {
            let mut c = Command::new(wrapper);
            c.arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let out = command
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .context("running the measuring child")?;
    if !out.status.success() {
        bail!("the measuring child failed ({})", out.status);
    }
    serde_json::from_slice(&out.stdout).context("reading the measuring child's figures")
}

/// An office's replica on disk, with its identity and enrolment.
pub struct Office {
    pub dir: PathBuf,
    pub replica: Arc<Replica>,
}

impl Office {
    pub async fn create(dir: &Path, office: &str, relay: &RelayChild) -> anyhow::Result<Self> {
        let replica = Replica::init(dir, office.parse()?)?;
        let identity = Identity::load_or_create(&dir.join("identity"))?;
        let token = relay.invite(office)?;
        client::enrol(&identity, relay.addr, &relay.fingerprint, &token).await?;
        Ok(Self {
            dir: dir.to_path_buf(),
            replica: Arc::new(replica),
        })
    }

    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            dir: dir.to_path_buf(),
            replica: Arc::new(Replica::open(dir)?),
        })
    }

    pub fn identity(&self) -> anyhow::Result<Identity> {
        Ok(Identity::load(&self.dir.join("identity"))?)
    }

    /// Imports `resources` (not timed).
    pub fn import(&self, resources: &[Resource]) -> anyhow::Result<()> {
        self.replica.import(resources, now_ms(), &mut |_| {})?;
        Ok(())
    }

    /// Imports `resources` and uploads them to the relay in one sync; returns the seconds spent
    /// syncing (not importing) and the documents held at the end.
    pub async fn upload(
        &self,
        resources: &[Resource],
        relay: &RelayChild,
    ) -> anyhow::Result<(f64, usize)> {
        self.import(resources)?;
        let t = Instant::now();
        self.sync(relay).await?;
        Ok((t.elapsed().as_secs_f64(), self.replica.store().len()?))
    }

    pub async fn sync(&self, relay: &RelayChild) -> anyhow::Result<(SyncStats, u64)> {
        self.sync_to(relay.addr, &relay.fingerprint).await
    }

    /// A sync until converged, as `atelier sync` runs it; returns its counters and the UDP
    /// bytes both ways (QUIC and TLS included, connection setup too).
    pub async fn sync_to(
        &self,
        addr: SocketAddr,
        fp: &Fingerprint,
    ) -> anyhow::Result<(SyncStats, u64)> {
        let client::Opened {
            connection, stream, ..
        } = client::open(&self.identity()?, addr, fp).await?;
        let mut session = Session::new(self.replica.store().clone(), Role::Initiator)
            .with_office_lookup(self.replica.office_lookup());
        session.start()?;
        let stats = tokio::time::timeout(
            SYNC_TIMEOUT,
            drive(session, stream, Mode::UntilConverged, |_| {}),
        )
        .await
        .context("sync timed out")??;
        let udp = connection.stats();
        connection.close(CloseCode::Done.code(), b"done");
        Ok((stats, udp.udp_rx.bytes + udp.udp_tx.bytes))
    }
}

/// `atelier-relay serve` as a child process, in a temporary data directory.
pub struct RelayChild {
    bin: PathBuf,
    child: Child,
    data: tempfile::TempDir,
    pub addr: SocketAddr,
    pub fingerprint: Fingerprint,
}

impl RelayChild {
    pub fn start(bin: &Path) -> anyhow::Result<Self> {
        Self::start_in(bin, tempfile::tempdir()?)
    }

    /// Starts a relay whose data (documents and blobs) live in `data`.
    pub fn start_in(bin: &Path, data: tempfile::TempDir) -> anyhow::Result<Self> {
        let status = Command::new(bin)
            .arg("--data")
            .arg(data.path())
            .arg("init")
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("atelier-relay init failed");
        }
        let (child, addr, fingerprint) = serve(bin, data.path(), "127.0.0.1:0")?;
        Ok(Self {
            bin: bin.to_path_buf(),
            child,
            data,
            addr,
            fingerprint,
        })
    }

    /// The relay's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The relay's data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Waits for the relay process to end after it was killed from outside (`kill -9`).
    pub fn wait_killed(&mut self) -> anyhow::Result<()> {
        match wait_for(&mut self.child, RELAY_STOP) {
            Some(_) => Ok(()),
            None => bail!("the relay did not die"),
        }
    }

    /// Starts the relay again on its data directory, at the same address.
    pub fn respawn(&mut self) -> anyhow::Result<()> {
        let (child, addr, fingerprint) =
            serve(&self.bin, self.data.path(), &self.addr.to_string())?;
        if addr != self.addr || fingerprint != self.fingerprint {
            bail!("the restarted relay answers at {addr} as {fingerprint}");
        }
        self.child = child;
        Ok(())
    }

    pub fn invite(&self, office: &str) -> anyhow::Result<String> {
        let now = time::OffsetDateTime::now_utc();
        Ok(AccessStore::new(self.data.path()).update(|r| {
            r.invite(
                &mut rand::rngs::OsRng,
                office,
                false,
                time::Duration::hours(1),
                now,
            )
        })?)
    }

    /// The relay's peak RSS since it started, or since the last [`Self::reset_peak_rss`].
    pub fn peak_rss_kb(&self) -> u64 {
        status_kb(&format!("/proc/{}/status", self.child.id()), "VmHWM:")
    }

    /// Starts the relay's peak RSS over from its current RSS (Linux `clear_refs` 5), so that
    /// one phase of a benchmark is measured apart from the set-up before it.
    pub fn reset_peak_rss(&self) -> anyhow::Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5")
            .context("resetting the relay's peak RSS")
    }

    /// CPU seconds (user and system) the relay has used since it started.
    pub fn cpu_s(&self) -> f64 {
        process_cpu_s(&format!("/proc/{}/stat", self.child.id()))
    }

    pub fn stop(mut self) {
        crate::node::stop(&mut self.child, "-INT", RELAY_STOP);
    }
}

/// `atelier-relay serve` on the initialised data directory `data`, listening at `listen`;
/// returns once it printed its address and fingerprint.
fn serve(
    bin: &Path,
    data: &Path,
    listen: &str,
) -> anyhow::Result<(Child, SocketAddr, Fingerprint)> {
    let config = data.join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"{listen}\"\nws_listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \".\"\n\
             log_level = \"warn\"\n\
             # One office uploads a whole benchmark corpus (100,000 resources), which no real\n\
             # office does: the per-office quotas are raised past it.\n\
             [quotas]\nmax_documents = 10_000_000\nmax_bytes = 1_000_000_000_000\n\
             max_changes_per_minute = 100_000_000\n"
        ),
    )?;
    let mut child = Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().context("relay stdout")?;
    let (mut addr, mut fingerprint) = (None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(a) = line.split("quic://").nth(1) {
            addr = Some(a.trim().parse()?);
        }
        if let Some(f) = line.trim().strip_prefix("empreinte") {
            fingerprint = Some(f.trim_start_matches([' ', ':']).trim().parse()?);
        }
        if addr.is_some() && fingerprint.is_some() {
            break;
        }
    }
    let (Some(addr), Some(fingerprint)) = (addr, fingerprint) else {
        let _ = child.kill();
        let _ = child.wait();
        bail!("the relay did not report its address and fingerprint");
    };
    Ok((child, addr, fingerprint))
}

impl Drop for RelayChild {
    /// A benchmark that fails half-way leaves no relay running behind it.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// This process's peak RSS, in kB.
pub fn peak_rss_kb() -> u64 {
    status_kb("/proc/self/status", "VmHWM:")
}

/// Clock ticks per second of `/proc/…/stat` times (`USER_HZ`, 100 on every Linux platform
/// this runs on; reading `sysconf(_SC_CLK_TCK)` would need libc for one constant).
const CLOCK_TICKS: f64 = 100.0;

/// This process's CPU seconds (user and system) so far.
pub fn own_cpu_s() -> f64 {
    process_cpu_s("/proc/self/stat")
}

/// CPU seconds (user and system) of a `/proc/…/stat` file (0 where unreadable).
pub fn process_cpu_s(path: &str) -> f64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| cpu_ticks(&s))
        .map_or(0.0, |t| t as f64 / CLOCK_TICKS)
}

/// `utime + stime` of a `/proc/…/stat` line: fields 14 and 15, counted after the command name
/// (in parentheses, which may itself hold spaces or parentheses).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The median of `values` (the mean of the middle two for an even count; NaN if empty).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A `kB` field of a `/proc/…/status` file (0 where there is none).
pub fn status_kb(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .map(|s| field_kb(&s, field))
        .unwrap_or(0)
}

/// The value of `field` (`VmHWM:`) in the text of a `/proc/…/status` file (0 where absent).
fn field_kb(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

// ---- Units of the tables ----

pub fn mb(b: u64) -> String {
    format!("{:.2} MB", b as f64 / 1e6)
}

/// A peak RSS given in kilobytes, in megabytes.
pub fn rss(kb: u64) -> String {
    format!("{:.0} MB", kb as f64 / 1e3)
}

pub fn kb(b: u64) -> String {
    format!("{:.1} KB", b as f64 / 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_kb() {
        let status = "Name:\tatelier\nVmPeak:\t  900 kB\nVmHWM:\t  123456 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(field_kb(status, "VmHWM:"), 123_456);
        assert_eq!(field_kb(status, "VmSwap:"), 0);
        assert_eq!(field_kb("VmHWM:\tlots kB\n", "VmHWM:"), 0);
    }

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        let stat = "4242 (atelier (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 31 0 0 20 0 3";
        assert_eq!(cpu_ticks(stat), Some(281));
        assert_eq!(cpu_ticks("4242 (cut) S 1"), None);
        assert!(own_cpu_s() >= 0.0);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn own_peak_rss_is_read() {
        assert!(peak_rss_kb() > 0, "Linux reports this process's VmHWM");
    }
}
