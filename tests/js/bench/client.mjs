// The baseline's offices: stock JavaScript automerge-repo clients doing what atelier-bench sync
// measures, against sync-server.mjs.
//
//   node client.mjs seed    WS_URL CORPUS.jsonl N URLS_OUT   one office publishes N resources
//   node client.mjs pull    WS_URL URLS STORAGE_DIR          an office fetches every document
//                                                            (again with the same STORAGE_DIR:
//                                                            a resync with nothing new)
//   node client.mjs latency WS_URL URLS EDITS                office A edits, office B sees it
//
// Each prints one JSON line of measures (seconds, WebSocket payload bytes, peak RSS in kB).
// A run is done when the server's sync state holds every head the client has, as
// automerge-repo itself reports it.
import { Repo, decodeHeads } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs";
import { readFileSync, writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

/** The stock adapter, counting the bytes of every WebSocket message each way. */
class CountingAdapter extends WebSocketClientAdapter {
  rx = 0;
  tx = 0;
  connect(peerId, peerMetadata) {
    super.connect(peerId, peerMetadata);
    const socket = this.socket;
    const send = socket.send.bind(socket);
    socket.send = data => {
      this.tx += data.byteLength;
      send(data);
    };
  }
  receiveMessage(bytes) {
    this.rx += bytes.byteLength;
    super.receiveMessage(bytes);
  }
}

const [mode, url, ...rest] = process.argv.slice(2);
const print = value => console.log(JSON.stringify(value));
const maxRss = () => process.resourceUsage().maxRSS;

/** Resolves once the server shares every head of every document in `ids`. */
function allShared(repo, ids) {
  const pending = new Set(ids);
  const shared = new Map();
  let done;
  const finished = new Promise(resolve => (done = resolve));
  const settle = id => {
    const handle = repo.handles[id];
    const heads = shared.get(id);
    if (!handle || !heads || !handle.isReady()) return;
    const ours = decodeHeads(handle.heads());
    if (ours.every(h => heads.includes(h))) pending.delete(id);
    if (pending.size === 0) {
      repo.synchronizer.off("sync-state", onState);
      done();
    }
  };
  const onState = ({ documentId, syncState }) => {
    if (!pending.has(documentId)) return;
    shared.set(documentId, [...syncState.sharedHeads]);
    settle(documentId);
  };
  repo.synchronizer.on("sync-state", onState);
  // Call once every handle is ready: states that arrived before are counted then.
  return () => {
    for (const id of [...pending]) settle(id);
    return finished;
  };
}

/** Documents created (seed) or asked for (pull) before waiting for them. */
const SEED_BATCH = 100;

const idOf = docUrl => docUrl.replace(/^automerge:/, "");

if (mode === "seed") {
  const [corpus, n, out] = rest;
  const adapter = new CountingAdapter(url);
  const repo = new Repo({ network: [adapter], peerId: `seed-${process.pid}`, sharePolicy: async () => true });
  const resources = readFileSync(corpus, "utf8")
    .split("\n")
    .filter(l => l.trim())
    .slice(0, Number(n))
    .map(l => JSON.parse(l));
  // In batches: creating thousands of documents at once blocks the event loop long enough for
  // the server's keep-alive to drop the connection, and the seed then never settles.
  const start = performance.now();
  const handles = [];
  for (let i = 0; i < resources.length; i += SEED_BATCH) {
    const batch = resources.slice(i, i + SEED_BATCH).map(r => repo.create(r));
    await allShared(repo, batch.map(h => h.documentId))();
    handles.push(...batch);
  }
  const secs = (performance.now() - start) / 1000;
  writeFileSync(out, handles.map(h => h.url).join("\n"));
  print({ secs, docs: handles.length, rx: adapter.rx, tx: adapter.tx, max_rss_kb: maxRss() });
  process.exit(0);
} else if (mode === "pull") {
  const [urlsFile, storage] = rest;
  const urls = readFileSync(urlsFile, "utf8").split("\n").filter(Boolean);
  const adapter = new CountingAdapter(url);
  const repo = new Repo({
    network: [adapter],
    storage: new NodeFSStorageAdapter(storage),
    peerId: `pull-${process.pid}`,
    sharePolicy: async () => true,
  });
  const start = performance.now();
  const ready = allShared(repo, urls.map(idOf));
  // In batches, for the same reason as the seed: asking for thousands at once gets the
  // connection dropped mid-way and the documents reported unavailable.
  for (let i = 0; i < urls.length; i += SEED_BATCH) {
    await Promise.all(urls.slice(i, i + SEED_BATCH).map(u => repo.find(u)));
  }
  const found = (performance.now() - start) / 1000;
  await ready();
  await repo.flush();
  const secs = (performance.now() - start) / 1000;
  print({ secs, found_secs: found, docs: urls.length, rx: adapter.rx, tx: adapter.tx, max_rss_kb: maxRss() });
  process.exit(0);
} else if (mode === "latency") {
  const [urlsFile, edits] = rest;
  const urls = readFileSync(urlsFile, "utf8").split("\n").filter(Boolean).slice(0, 20);
  const office = name => new Repo({ network: [new CountingAdapter(url)], peerId: `${name}-${process.pid}`, sharePolicy: async () => true });
  const a = office("a");
  const b = office("b");
  const inA = await Promise.all(urls.map(u => a.find(u)));
  const inB = await Promise.all(urls.map(u => b.find(u)));
  const times = [];
  for (let i = 0; i < Number(edits) + 5; i++) {
    const k = i % urls.length;
    const title = `Titre ${i}`;
    const seen = new Promise(resolve => {
      const onChange = ({ doc }) => {
        if (String(doc.title) === title) {
          inB[k].off("change", onChange);
          resolve();
        }
      };
      inB[k].on("change", onChange);
    });
    const start = performance.now();
    inA[k].change(d => {
      d.title = title;
    });
    await seen;
    if (i >= 5) times.push(performance.now() - start); // the first edits warm up
  }
  times.sort((x, y) => x - y);
  const at = q => times[Math.min(times.length - 1, Math.floor(q * times.length))];
  print({ edits: times.length, median_ms: at(0.5), p99_ms: at(0.99), max_rss_kb: maxRss() });
  process.exit(0);
} else {
  console.error("usage: node client.mjs seed|pull|latency WS_URL …");
  process.exit(2);
}
