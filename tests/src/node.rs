//! The Node projects that the integration tests and the sync benchmark drive (`tests/js`,
//! `tests/js/bench`, `tests/browser`): Node checked, their dependencies installed once with
//! `npm ci`, and child processes waited for within a bound.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

/// Bound on one `npm ci`: a cold npm cache on a slow link takes a few minutes.
pub const NPM_CI: Duration = Duration::from_secs(300);

/// A directory of Node scripts with its own `package.json` and lock file.
#[derive(Debug, Clone, Copy)]
pub struct NodeProject {
    /// The directory, relative to the tests crate.
    dir: &'static str,
    /// A path under the directory that exists once `npm ci` has installed what the scripts use.
    installed: &'static str,
}

/// The automerge-repo interop scripts (`edit-doc.mjs`): the stock JavaScript client.
pub const JS_INTEROP: NodeProject = NodeProject {
    dir: "js",
    installed: "node_modules/@automerge/automerge-repo",
};

/// The JavaScript baseline of the sync benchmark (`sync-server.mjs`, `client.mjs`).
pub const JS_BENCH: NodeProject = NodeProject {
    dir: "js/bench",
    installed: "node_modules/@automerge/automerge-repo-storage-nodefs",
};

/// The real-browser test (`web.test.mjs`): playwright-core, which downloads no browser, and
/// axe-core for the accessibility checks (the last dependency added: its presence means the
/// install is current).
pub const BROWSER: NodeProject = NodeProject {
    dir: "browser",
    installed: "node_modules/axe-core/package.json",
};

impl NodeProject {
    /// The project's directory.
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(self.dir)
    }

    /// A script of the project.
    pub fn script(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// Makes sure Node runs and the project's dependencies are installed, running `npm ci` at
    /// most once per process and project; callers in parallel wait for that one run, and all
    /// get its outcome. The error says what to install: tests fail on it, never skip.
    pub fn ensure(&self) -> anyhow::Result<()> {
        static OUTCOMES: Mutex<Vec<(&str, Result<(), String>)>> = Mutex::new(Vec::new());
        let mut outcomes = OUTCOMES.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, outcome)) = outcomes.iter().find(|(dir, _)| *dir == self.dir) {
            return outcome.clone().map_err(|e| anyhow!(e));
        }
        let outcome = self.install().map_err(|e| format!("{e:#}"));
        outcomes.push((self.dir, outcome.clone()));
        outcome.map_err(|e| anyhow!(e))
    }

    fn install(&self) -> anyhow::Result<()> {
        let node = Command::new("node").arg("--version").output();
        if !node.is_ok_and(|out| out.status.success()) {
            bail!("node is required (Node 20+: apt-get install -y nodejs npm)");
        }
        if self.dir().join(self.installed).exists() {
            return Ok(());
        }
        let mut npm = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(self.dir())
            .spawn()
            .context("npm is required (apt-get install -y npm)")?;
        match wait_for(&mut npm, NPM_CI) {
            Some(status) if status.success() => Ok(()),
            Some(status) => bail!("npm ci in tests/{} failed ({status})", self.dir),
            None => {
                let _ = npm.kill();
                let _ = npm.wait();
                bail!("npm ci in tests/{} took more than {NPM_CI:?}", self.dir)
            }
        }
    }
}

/// Waits for `child` to exit, at most `limit`; `None` if it is still running then (the caller
/// decides whether to kill it).
pub fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        // A child process gives no event to wait on without a runtime; a short poll costs
        // nothing next to the runs waited for (seconds).
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asks `child` to stop with `signal` (`"-TERM"`, `"-INT"`), waits at most `limit`, then kills it.
pub fn stop(child: &mut Child, signal: &str, limit: Duration) {
    let _ = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
    if wait_for(child, limit).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The child's stdout, line by line, from a reader thread (ends at the child's death).
pub fn stdout_lines(child: &mut Child) -> anyhow::Result<std::sync::mpsc::Receiver<String>> {
    let stdout = child
        .stdout
        .take()
        .context("the child's stdout is not piped")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Starts the JavaScript baseline's automerge-repo sync server (`sync-server.mjs`) storing in
/// `dir`; returns the process and its `ws://` URL, read from the first line it prints. The
/// caller kills the process when done; if the server never says its port, it is killed here.
pub fn start_js_sync_server(dir: &Path) -> anyhow::Result<(Child, String)> {
    let mut server = Command::new("node")
        .arg(JS_BENCH.script("sync-server.mjs"))
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("node is required for the baseline")?;
    let port = (|| {
        let stdout = server.stdout.take().context("server stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        serde_json::from_str::<serde_json::Value>(&line)?["port"]
            .as_u64()
            .context("the sync server did not say its port")
    })();
    match port {
        Ok(port) => Ok((server, format!("ws://127.0.0.1:{port}"))),
        Err(e) => {
            let _ = server.kill();
            let _ = server.wait();
            Err(e)
        }
    }
}
