//! `atlas`: a corpus imported into a fresh replica, its `/atlas` page fetched from a running web
//! app, and the page's counts per département checked against counts read straight from the
//! JSON Lines file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use atelier_core::jsonl;
use atelier_core::replica::Replica;
use atelier_web::{IndexedSearch, WebConfig};
use serde_json::Value;

use super::web_client::WebClient;

/// How long one page may take to come back: the atlas of a large corpus reads every resource.
const PAGE_TIMEOUT: Duration = Duration::from_secs(120);
/// The list group of resources with no place (`data-departement=""`).
const NOWHERE: &str = "";

/// Imports a corpus, serves it with the web app (full-text index on), fetches `/atlas` and
/// compares, per département, the list's count and the map's shading with the JSONL's
/// `location.departement`; resources with no département but coordinates are placed by the
/// outline under them, which the JSONL cannot tell, so they are only counted overall. Prints a
/// table; exits with status 2 on any difference.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Corpus in the JSON Lines interchange format (FORMAT.md).
    #[arg(long)]
    pub corpus: PathBuf,
}

/// What the JSONL says.
#[derive(Default)]
struct Expected {
    by_dept: BTreeMap<String, usize>,
    /// Coordinates, no département.
    point_only: usize,
    /// Neither.
    nowhere: usize,
    /// Lines with coordinates (each must be in one marker).
    with_point: usize,
}

/// What the page shows.
struct Shown {
    /// List groups: département (`""` for no place) → count.
    list: BTreeMap<String, usize>,
    /// Map shading: département → count.
    map: BTreeMap<String, usize>,
    /// Resources behind the markers.
    in_markers: usize,
    markers: usize,
    fetch: Duration,
}

/// Runs the check.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.corpus)
        .with_context(|| format!("reading {}", args.corpus.display()))?;
    let expected = expected(&text)?;
    let resources = jsonl::parse(text.as_bytes())?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let replica = Arc::new(Replica::init(dir.path(), "caue-63".parse()?)?);
    let t = Instant::now();
    replica.import(&resources, 1_750_000_000_000, &mut |_| {})?;
    let import = t.elapsed();
    let search = IndexedSearch::open(replica.clone()).context("opening the search index")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let config = WebConfig {
        search: Some(Arc::new(search)),
        write_server_file: false,
        ..WebConfig::default()
    };
    let web = rt.block_on(atelier_web::spawn(replica, config))?;
    let shown = fetch(&web.login_url("/atlas"), &web.url());
    rt.block_on(web.shutdown());
    let shown = shown?;

    let mut differences = 0;
    println!(
        "| {:<24} | {:>5} | {:>11} | {:>11} |",
        "département", "JSONL", "atlas list", "atlas map"
    );
    println!(
        "|{}|{}|{}|{}|",
        "-".repeat(26),
        "-".repeat(7),
        "-".repeat(13),
        "-".repeat(13)
    );
    let codes: std::collections::BTreeSet<&String> = expected
        .by_dept
        .keys()
        .chain(shown.list.keys().filter(|k| !k.is_empty()))
        .chain(shown.map.iter().filter(|(_, n)| **n > 0).map(|(k, _)| k))
        .collect();
    let mut extra = 0;
    for code in codes {
        let want = expected.by_dept.get(code).copied().unwrap_or(0);
        let list = shown.list.get(code).copied().unwrap_or(0);
        let map = shown.map.get(code).copied();
        // A département the map does not draw (an unknown code) has no shading to compare.
        let map_ok = map.is_none_or(|m| m == list);
        extra += list.saturating_sub(want);
        let ok = list >= want && map_ok;
        if !ok {
            differences += 1;
        }
        println!(
            "| {:<24} | {want:>5} | {list:>11} | {:>11} |{}",
            atelier_core::fr::departement_name(code),
            map.map_or("—".into(), |m| m.to_string()),
            if ok { "" } else { " ✗" }
        );
    }
    let nowhere = shown.list.get(NOWHERE).copied().unwrap_or(0);
    println!(
        "| {:<24} | {:>5} | {nowhere:>11} | {:>11} |",
        "no location", expected.nowhere, "—"
    );
    // Only resources placed by their point alone may add to a département's JSONL count.
    if extra != expected.point_only {
        differences += 1;
        println!(
            "counted beyond the JSONL's départements: {extra}, resources with only coordinates: {}",
            expected.point_only
        );
    }
    if nowhere != expected.nowhere {
        differences += 1;
    }
    if shown.in_markers != expected.with_point {
        differences += 1;
    }
    println!();
    println!(
        "{} resources, {} with coordinates ({} without a département), {} in {} markers",
        resources.len(),
        expected.with_point,
        expected.point_only,
        shown.in_markers,
        shown.markers
    );
    println!(
        "import {:.2} s, GET /atlas {:.0} ms",
        import.as_secs_f64(),
        shown.fetch.as_secs_f64() * 1e3
    );
    if differences == 0 {
        println!("atlas counts match the corpus");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{differences} difference(s)");
        Ok(ExitCode::from(2))
    }
}

/// Counts read from the JSONL itself, not through the import.
fn expected(text: &str) -> anyhow::Result<Expected> {
    let mut e = Expected::default();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).with_context(|| format!("line {}", n + 1))?;
        let loc = &v["location"];
        let point = loc["lat"].is_number() && loc["lon"].is_number();
        if point {
            e.with_point += 1;
        }
        match loc["departement"].as_str().filter(|d| !d.is_empty()) {
            Some(d) => *e.by_dept.entry(d.to_string()).or_default() += 1,
            None if point => e.point_only += 1,
            None => e.nowhere += 1,
        }
    }
    Ok(e)
}

/// Logs in through the one-time link and fetches the page it opens.
fn fetch(login_url: &str, base: &str) -> anyhow::Result<Shown> {
    let client = WebClient::login(login_url, PAGE_TIMEOUT)?;
    let t = Instant::now();
    let html = client.get(base, "/atlas")?;
    let fetch = t.elapsed();
    if html.contains("premières fiches sur") {
        bail!(
            "the atlas shows only the first resources of this corpus (the web app's \
             MAX_ATLAS_POINTS; page fetched in {} ms): its counts cannot be compared with the \
             whole file",
            fetch.as_millis()
        );
    }
    let list = attrs(&html, "<details class=\"atlas-group\"")
        .into_iter()
        .collect();
    let map = attrs(&html, "<path d=\"").into_iter().collect();
    let markers: Vec<usize> = html
        .split("<a href=\"")
        .skip(1)
        .filter(|tag| tag.contains("aria-label=\"") && tag.contains("\" data-count=\""))
        .filter_map(|tag| {
            let tag = &tag[..tag.find('>')?];
            let start = tag.find("data-count=\"")? + "data-count=\"".len();
            tag[start..start + tag[start..].find('"')?].parse().ok()
        })
        .collect();
    Ok(Shown {
        list,
        map,
        in_markers: markers.iter().sum(),
        markers: markers.len(),
        fetch,
    })
}

/// (`data-departement`, `data-count`) of every tag opening with `open`.
fn attrs(html: &str, open: &str) -> Vec<(String, usize)> {
    html.split(open)
        .skip(1)
        .filter_map(|tag| {
            let tag = &tag[..tag.find('>')?];
            let attr = |name: &str| {
                let key = format!("{name}=\"");
                let start = tag.find(&key)? + key.len();
                Some(tag[start..start + tag[start..].find('"')?].to_string())
            };
            Some((attr("data-departement")?, attr("data-count")?.parse().ok()?))
        })
        .collect()
}
