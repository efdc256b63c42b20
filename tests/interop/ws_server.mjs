// The node `ws` server of tests/test_interop.py: statesock.testing.TestServer's JSON protocol
// plus the interop commands, on 127.0.0.1 and a free port, which it prints as its first line
// of output. It exits when its standard input closes (the test process is gone) or on SIGTERM.
//
// `ws` comes from NODE_PATH (the test points it at build/node/node_modules, where
// `make interop` installs the version pinned in package.json beside this file).
//
// client -> server                                  server -> client
// {"type": "auth", "token": "t"}                    {"type": "connection.ok", "connection_id": "c-N"}
//                                                   (another token: close 4401 "invalid token")
// {"type": "health.check", ...}                     {"type": "health.check", "connection_id": "c-N"}
// {"type": "burst", "count": N, "size": S}          N x {"type": "event", "seq": i, "pad": "x" * S}
// {"type": "fragments", "parts": [p1, p2, ...]}     one text message p1 + p2 + ..., one frame a part
// {"type": "close", "code": C, "reason": R}         a close frame with C and R
// {"type": "stats"}                                 {"type": "stats", "health_checks": n}  (this
//                                                   connection's health checks so far)
// WebSocket Pings are answered by `ws` itself (autoPong).
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { WebSocketServer } = require("ws");

const TOKEN = "t";
let connections = 0;

const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });

server.on("listening", () => {
  process.stdout.write(`${server.address().port}\n`);
});

server.on("connection", (ws) => {
  connections += 1;
  const connectionId = `c-${connections}`;
  let healthChecks = 0;
  const reply = (message) => ws.send(JSON.stringify(message));

  ws.on("message", (data, isBinary) => {
    let message;
    try {
      message = JSON.parse(isBinary ? data : data.toString("utf8"));
    } catch {
      return; // not JSON: ignored, as TestServer does
    }
    switch (message?.type) {
      case "auth":
        if (message.token !== TOKEN) {
          ws.close(4401, "invalid token");
        } else {
          reply({ type: "connection.ok", connection_id: connectionId });
        }
        break;
      case "health.check":
        healthChecks += 1;
        reply({ type: "health.check", connection_id: connectionId });
        break;
      case "burst": {
        const pad = "x".repeat(message.size ?? 0);
        for (let seq = 0; seq < message.count; seq += 1) {
          reply({ type: "event", seq, pad });
        }
        break;
      }
      case "fragments": {
        const parts = message.parts;
        parts.forEach((part, index) => {
          ws.send(part, { binary: false, fin: index === parts.length - 1 });
        });
        break;
      }
      case "close":
        ws.close(message.code, message.reason ?? "");
        break;
      case "stats":
        reply({ type: "stats", health_checks: healthChecks });
        break;
      default:
        break;
    }
  });
});

const stop = () => {
  for (const ws of server.clients) {
    ws.terminate();
  }
  server.close(() => process.exit(0));
};
process.stdin.on("end", stop);
process.stdin.on("error", stop);
process.stdin.resume();
process.on("SIGTERM", stop);
