//! `splice`: what a remote one-character edit of a long description (or, with `--title`, of the
//! title beside it) costs the office that receives it, step by step (load, apply, save, card),
//! and through the store as sync applies it.

use std::time::{Duration, Instant};

use atelier_core::card::Card;
use atelier_core::document::{self, Edit};
use atelier_core::ids::{DocumentId, HeadsHash};
use atelier_core::store::DocStore;
use atelier_core::Resource;
use serde_json::json;

/// Applies remote one-character edits to a resource whose description is `--chars` long, as a
/// receiving office does, and prints the median and p99 of each step.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Characters in the description.
    #[arg(long, default_value_t = 6_000)]
    pub chars: usize,
    /// Edits measured (each a one-character insertion somewhere in the description).
    #[arg(long, default_value_t = 200)]
    pub edits: usize,
    /// Print the measures as JSON.
    #[arg(long)]
    pub json: bool,
    /// Set the title instead: a live edit that leaves the description as it was, yet whose
    /// card is derived from the whole document.
    #[arg(long)]
    pub title: bool,
}

/// One step's timings, in seconds.
#[derive(Default)]
struct Step {
    name: &'static str,
    samples: Vec<f64>,
}

impl Step {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            samples: Vec::new(),
        }
    }

    fn time<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let t = Instant::now();
        let r = f();
        self.samples.push(t.elapsed().as_secs_f64());
        r
    }

    fn quantile(&self, q: f64) -> Duration {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        let i = ((s.len() as f64 - 1.0) * q).round() as usize;
        Duration::from_secs_f64(s.get(i).copied().unwrap_or(0.0))
    }
}

/// Runs the benchmark.
pub fn run(args: &Args) -> anyhow::Result<std::process::ExitCode> {
    let description: String = "Les murs en pierre de basalte sont rejointoyés à la chaux. "
        .chars()
        .cycle()
        .take(args.chars)
        .collect();
    let r = Resource::from_json(&json!({
        "kind": "realisation", "title": "Maison de bourg", "office": "caue-63",
        "description": description,
    }))?;
    let id = DocumentId::derived("bench/splice");
    let now = 1_750_000_000_000;
    let mut author = document::new_doc();
    document::create(&mut author, &r, "caue-63", now)?;
    let receiver = DocStore::in_memory();
    receiver.apply_bytes(&id, &author.save())?;

    let mut load = Step::new("load the stored document");
    let mut apply = Step::new("apply the change");
    let mut save = Step::new("save the new chunk");
    let mut card = Step::new("derive the card");
    let mut store = Step::new("whole store write (sync's path)");
    for i in 0..args.edits {
        let before = author.get_heads();
        let pos = (i * 7919) % args.chars;
        let edit = match args.title {
            true => Edit::Set {
                field: "title".into(),
                value: json!(format!("Maison de bourg n° {i}")),
            },
            false => Edit::Splice {
                field: "description".into(),
                pos,
                delete: 0,
                insert: "x".into(),
            },
        };
        document::apply_edits(&mut author, &[edit], "caue-15", now + i as i64)?;
        let change = author.save_after(&before);

        // The steps one by one, on a copy of what the receiver holds.
        let saved = receiver.saved(&id)?.unwrap_or_default();
        let mut doc = load.time(|| atelier_core::store::decode(&id, &saved))?;
        let old = doc.get_heads();
        apply.time(|| doc.load_incremental(&change))?;
        save.time(|| doc.save_after(&old));
        let heads = HeadsHash::of(&doc.get_heads());
        card.time(|| Card::of(&id, &mut doc, heads));
        // The same through the store, as sync applies it.
        store.time(|| receiver.apply_bytes(&id, &change))?;
    }
    let steps = [load, apply, save, card, store];
    if args.json {
        let out: Vec<_> = steps
            .iter()
            .map(|s| {
                json!({"step": s.name, "p50_s": s.quantile(0.5).as_secs_f64(),
                       "p99_s": s.quantile(0.99).as_secs_f64()})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let what = match args.title {
        true => "A remote title change of a resource with",
        false => "A remote one-character insertion in",
    };
    println!(
        "{what} a {}-character description, {} edits, one thread.",
        args.chars, args.edits
    );
    println!();
    println!("| step | median | p99 |");
    println!("|---|---|---|");
    for s in &steps {
        println!(
            "| {} | {:.3} ms | {:.3} ms |",
            s.name,
            s.quantile(0.5).as_secs_f64() * 1e3,
            s.quantile(0.99).as_secs_f64() * 1e3
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}
