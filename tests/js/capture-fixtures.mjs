// Captures automerge-repo wire messages exactly as the stock JavaScript client encodes them,
// for the Rust decoder's tests (core/src/repo_wire.rs).
//
// Usage: node capture-fixtures.mjs OUT_DIR
// A real Repo runs against a recording network adapter that plays a server peer; every first
// message of each type it sends is written as OUT_DIR/<type>.cbor, encoded with the same CBOR
// encoder the WebSocket adapter uses. The join message is built as WebSocketClientAdapter
// builds it (its joinMessage function is not exported).
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { Repo, NetworkAdapter, cbor } from "@automerge/automerge-repo";

const outDir = process.argv[2];
if (!outDir) {
  console.error("usage: node capture-fixtures.mjs OUT_DIR");
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });
const SERVER = "atelier-relay";
const captured = new Map();

class RecordingAdapter extends NetworkAdapter {
  isReady() { return true; }
  whenReady() { return Promise.resolve(); }
  connect(peerId, peerMetadata) {
    this.peerId = peerId;
    this.peerMetadata = peerMetadata;
    // As WebSocketClientAdapter.join() sends it.
    this.send({ type: "join", senderId: peerId, peerMetadata, supportedProtocolVersions: ["1"] });
    setTimeout(() => this.emit("peer-candidate", { peerId: SERVER, peerMetadata: {} }), 0);
  }
  send(message) {
    if (!captured.has(message.type)) captured.set(message.type, cbor.encode(message));
  }
  disconnect() {}
}

const repo = new Repo({ network: [new RecordingAdapter()], peerId: "caue-63/fixture" });
const deadline = setTimeout(() => { console.error("timed out capturing"); process.exit(1); }, 10000);
const until = async (cond) => { while (!cond()) await new Promise(r => setTimeout(r, 10)); };

await until(() => captured.has("join"));
const handle = repo.create({ titre: "Maison du Parc" });
await until(() => captured.has("sync"));
handle.broadcast({ cursor: 3 });
await until(() => captured.has("ephemeral"));
// A document nobody has: the repo asks the server with a request message.
repo.find("automerge:4NMNnkMhL8jXrdJ9jamS58PAVdXu").catch(() => {});
await until(() => captured.has("request"));
clearTimeout(deadline);

for (const [type, bytes] of captured) writeFileSync(join(outDir, `${type}.cbor`), bytes);
console.log(JSON.stringify([...captured.keys()]));
process.exit(0);
