// The baseline's relay: JavaScript automerge-repo's own sync server, set up as its README does
// (WebSocket server adapter, Node filesystem storage, a share policy that answers requests
// without announcing documents).
//
// Usage: node sync-server.mjs STORAGE_DIR
// Prints one JSON line {"port": N} once listening on 127.0.0.1, then serves until killed.
import { Repo } from "@automerge/automerge-repo";
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket";
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs";
import { WebSocketServer } from "ws";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node sync-server.mjs STORAGE_DIR");
  process.exit(2);
}
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
wss.on("listening", () => console.log(JSON.stringify({ port: wss.address().port })));
new Repo({
  network: [new NodeWSServerAdapter(wss)],
  storage: new NodeFSStorageAdapter(dir),
  peerId: `sync-server-${process.pid}`,
  sharePolicy: async () => false,
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
