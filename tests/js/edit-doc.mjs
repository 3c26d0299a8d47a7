// Edits one field of a document through the Atelier relay with the stock JavaScript
// automerge-repo client, the way a web page would.
//
// Usage: node edit-doc.mjs WS_URL TOKEN DOC_URL FIELD VALUE [PEER_ID]
//
//   WS_URL   the relay's WebSocket endpoint, e.g. ws://127.0.0.1:8080/
//   TOKEN    a WebSocket bearer token; sent as ?token=… since the JS adapter takes only a URL
//   DOC_URL  automerge:<id>
//   PEER_ID  <office>/<device>, the office being the token's (default: $ATELIER_PEER_ID)
//
// Prints one JSON line with the document as found, then one with the document once the relay
// has acknowledged the edit (Automerge's shared heads include our new heads), and exits 0.
//
// Exit codes: 2 usage, 3 connection refused (bad token), 4 the relay sent an error message,
// 5 document unavailable, 6 timed out, 1 anything else. The whole run is bounded by
// $EDIT_DOC_TIMEOUT_MS (default 20 s).
//
// Test knob: $ATELIER_SPOOF_SENDER makes every message after `join` claim that senderId, to
// check that the relay closes a connection whose peer changes identity.
import { Repo, cbor, decodeHeads } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";

const [wsUrl, token, docUrl, field, value, peerIdArg] = process.argv.slice(2);
const peerId = peerIdArg ?? process.env.ATELIER_PEER_ID;
const timeoutMs = Number(process.env.EDIT_DOC_TIMEOUT_MS ?? 20000);
const spoofSender = process.env.ATELIER_SPOOF_SENDER;

function fail(code, message) {
  console.error(`edit-doc: ${message}`);
  process.exit(code);
}

if (!wsUrl || !token || !docUrl || !field || value === undefined) {
  fail(2, "usage: node edit-doc.mjs WS_URL TOKEN DOC_URL FIELD VALUE [PEER_ID]");
}
if (!peerId) fail(2, "no peer id: pass PEER_ID (<office>/<device>) or set ATELIER_PEER_ID");

setTimeout(() => fail(6, `timed out after ${timeoutMs} ms`), timeoutMs);
// The adapter rethrows WebSocket errors (an HTTP 401 at the upgrade) from an event listener.
process.on("uncaughtException", e => fail(3, `connection refused by the relay: ${e.message}`));
process.on("unhandledRejection", e => fail(1, `${e?.message ?? e}`));

/** The stock adapter, watching for the relay's `error` messages (it only logs them). */
class WatchedAdapter extends WebSocketClientAdapter {
  receiveMessage(bytes) {
    let message;
    try {
      message = cbor.decode(new Uint8Array(bytes));
    } catch {
      message = undefined;
    }
    if (message?.type === "error") fail(4, `the relay refused us: ${message.message}`);
    super.receiveMessage(bytes);
  }
  send(message) {
    if (spoofSender && message.type !== "join") message = { ...message, senderId: spoofSender };
    super.send(message);
  }
}

const url = new URL(wsUrl);
url.searchParams.set("token", token);
const adapter = new WatchedAdapter(url.toString());
const repo = new Repo({ network: [adapter], peerId });

let handle;
try {
  handle = await repo.find(docUrl);
} catch (e) {
  fail(5, `document ${docUrl} not found: ${e.message}`);
}
// Automerge hands unsigned integers (an Atelier resource's `schema`) to JS as BigInt, which
// JSON.stringify refuses: print them as numbers.
const json = value => JSON.stringify(value, (_, v) => (typeof v === "bigint" ? Number(v) : v));
console.log(json({ event: "found", doc: handle.doc() }));

// Resolves once a peer's sync state says it has every head we have.
const acknowledged = new Promise(resolve => {
  const check = ({ documentId, syncState }) => {
    if (documentId !== handle.documentId) return;
    const ours = decodeHeads(handle.heads()).slice().sort();
    const shared = [...syncState.sharedHeads].sort();
    if (ours.every(h => shared.includes(h))) {
      repo.synchronizer.off("sync-state", check);
      resolve();
    }
  };
  repo.synchronizer.on("sync-state", check);
});
handle.change(doc => {
  doc[field] = value;
});
await acknowledged;
console.log(json({ event: "stored", doc: handle.doc(), heads: handle.heads() }));
adapter.disconnect();
process.exit(0);
