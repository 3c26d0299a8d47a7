// The fan-out baseline: many stock automerge-repo WebSocket clients holding the same documents
// through sync-server.mjs, and one editor, for atelier-bench fanout.
//
//   node fanout.mjs receive WS_URL URLS COUNT DOCS
//                                               COUNT clients (one Repo and one WebSocket each)
//                                               find the first DOCS documents of URLS, print
//                                               {"ready":true}; then, for every edit n seen by
//                                               all of them, {"edit":n,"at":[ms per client]}
//   node fanout.mjs edit WS_URL URLS DOCS       finds the first DOCS documents, prints
//                                               {"ready":true}; then for each line n on stdin
//                                               sets document n % DOCS's title to "Diffusion n"
//                                               and prints {"edit":n,"at":ms}
//
// Times are wall-clock milliseconds (performance.timeOrigin + performance.now()), shared by the
// processes of one machine. Both modes leave on "stop" or when stdin closes.
import { Repo } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";

const [mode, url, urlsFile, count, docs] = process.argv.slice(2);
const print = value => console.log(JSON.stringify(value));
const now = () => performance.timeOrigin + performance.now();
const urls = readFileSync(urlsFile, "utf8").split("\n").filter(Boolean);
/** Documents asked for at once by one client (as client.mjs pulls). */
const FIND_BATCH = 100;
const TITLE = /^Diffusion (\d+)$/;

const client = name =>
  new Repo({ network: [new WebSocketClientAdapter(url)], peerId: `${name}-${process.pid}`, sharePolicy: async () => true });

/** Once the server is this client's peer: a document asked for before is "unavailable". */
const connected = repo =>
  repo.peers.length > 0 ? Promise.resolve() : new Promise(resolve => repo.networkSubsystem.once("peer", resolve));

async function findAll(repo, list) {
  await connected(repo);
  const handles = [];
  for (let i = 0; i < list.length; i += FIND_BATCH) {
    handles.push(...(await Promise.all(list.slice(i, i + FIND_BATCH).map(u => repo.find(u)))));
  }
  return handles;
}

const lines = createInterface({ input: process.stdin });
lines.on("close", () => process.exit(0));

if (mode === "receive") {
  const n = Number(count);
  // edit number → arrival time per client
  const seen = new Map();
  const clients = [];
  // One client at a time, each connecting when the one before holds every document: with
  // several clients connected and asking at once, the server reports some documents
  // unavailable (automerge-repo 2.5.6).
  for (let c = 0; c < n; c++) {
    const repo = client(`receiver-${c}`);
    clients.push(repo);
    for (const handle of await findAll(repo, urls.slice(0, Number(docs)))) {
      handle.on("change", ({ doc }) => {
        const m = TITLE.exec(String(doc.title));
        if (!m) return;
        const edit = Number(m[1]);
        if (!seen.has(edit)) seen.set(edit, new Array(n).fill(null));
        const at = seen.get(edit);
        if (at[c] !== null) return;
        at[c] = now();
        if (at.every(t => t !== null)) print({ edit, at });
      });
    }
  }
  print({ ready: true });
  lines.on("line", line => line.trim() === "stop" && process.exit(0));
} else if (mode === "edit") {
  const repo = client("editor");
  const handles = await findAll(repo, urls.slice(0, Number(count)));
  print({ ready: true });
  lines.on("line", line => {
    if (line.trim() === "stop") process.exit(0);
    const edit = Number(line);
    const at = now();
    handles[edit % handles.length].change(d => {
      d.title = `Diffusion ${edit}`;
    });
    print({ edit, at });
  });
} else {
  console.error("usage: node fanout.mjs receive WS_URL URLS COUNT DOCS | edit WS_URL URLS DOCS");
  process.exit(2);
}
