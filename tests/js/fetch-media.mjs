// Reads a resource document through the Atelier relay with the stock JavaScript
// automerge-repo client, then fetches its first media entry's thumbnail over HTTP from the
// relay (`GET /media/{hash}`, bearer token), whole and as a byte range, the way a web page
// showing the corpus would.
//
// Usage: node fetch-media.mjs WS_URL HTTP_URL TOKEN DOC_URL PEER_ID
//
// Prints one JSON line: {hash, entry, whole: {status, etag, base64}, range: {status,
// contentRange, length}, unauthorized: status}. Exit codes: 2 usage, 5 document unavailable or
// without media, 6 timed out, 1 anything else. Bounded by $FETCH_MEDIA_TIMEOUT_MS (20 s).
import { Repo } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";

const [wsUrl, httpUrl, token, docUrl, peerId] = process.argv.slice(2);
const timeoutMs = Number(process.env.FETCH_MEDIA_TIMEOUT_MS ?? 20000);
function fail(code, message) {
  console.error(`fetch-media: ${message}`);
  process.exit(code);
}
if (!wsUrl || !httpUrl || !token || !docUrl || !peerId) {
  fail(2, "usage: node fetch-media.mjs WS_URL HTTP_URL TOKEN DOC_URL PEER_ID");
}
setTimeout(() => fail(6, `timed out after ${timeoutMs} ms`), timeoutMs);
process.on("unhandledRejection", e => fail(1, `${e?.message ?? e}`));

const url = new URL(wsUrl);
url.searchParams.set("token", token);
const repo = new Repo({ network: [new WebSocketClientAdapter(url.toString())], peerId });
let handle;
try {
  handle = await repo.find(docUrl);
} catch (e) {
  fail(5, `document ${docUrl} not found: ${e.message}`);
}
const media = handle.doc().media ?? {};
const [hash, entry] = Object.entries(media)[0] ?? [];
if (!hash) fail(5, "the document lists no media");
const thumb = entry.thumb.hash;
const auth = { Authorization: `Bearer ${token}` };
const whole = await fetch(`${httpUrl}/media/${thumb}`, { headers: auth });
const body = Buffer.from(await whole.arrayBuffer());
const range = await fetch(`${httpUrl}/media/${thumb}`, { headers: { ...auth, Range: "bytes=0-99" } });
const rangeBody = Buffer.from(await range.arrayBuffer());
const unauthorized = await fetch(`${httpUrl}/media/${thumb}`);
const json = value => JSON.stringify(value, (_, v) => (typeof v === "bigint" ? Number(v) : v));
console.log(json({
  hash,
  entry,
  whole: { status: whole.status, etag: whole.headers.get("etag"), base64: body.toString("base64") },
  range: { status: range.status, contentRange: range.headers.get("content-range"), length: rangeBody.length },
  unauthorized: unauthorized.status,
}));
process.exit(0);
