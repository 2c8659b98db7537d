//! The drain preload: a small CommonJS file the daemon gives cluster workers with `--require`
//! (turn it off per app with `drain_keepalive: false`).
//!
//! Why: when a worker is disconnected (reload, scale down) Node closes its servers, but it keeps
//! answering on open keep-alive connections with `Connection: keep-alive` until the process is
//! killed mid-request — PM2's reload errors. With the preload, once the daemon disconnects the
//! worker every response carries `Connection: close` (the client opens its next connection to
//! the listening socket, now served by the new workers). Node would also close idle kept-alive
//! connections at the instant of the disconnect, racing a request the client may already have
//! sent on them; the preload leaves them open for a short grace instead, so each one ends
//! cleanly after its next response, and closes those still idle after it (an idle browser
//! connection would otherwise hold `server.close()` until the keep-alive timeout, past
//! `kill_timeout`: Next.js then needed SIGKILL on every reload).

use std::path::Path;

pub const PRELOAD: &str = r#"'use strict';
// pmr drain preload (see crates/daemon/src/node/drain.rs). Changes nothing until pmr disconnects this worker.
const http = require('http');
const net = require('net');
const servers = new Set();
let draining = false;
// Long enough for a request already sent to be read; well under the default kill_timeout.
const IDLE_GRACE_MS = 300;

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof this.closeIdleConnections === 'function') {
    servers.add(this);
    this.once('close', () => servers.delete(this));
  }
  return listen.apply(this, args);
};

const writeHead = http.ServerResponse.prototype.writeHead;
http.ServerResponse.prototype.writeHead = function (...args) {
  if (draining) this.shouldKeepAlive = false;
  return writeHead.apply(this, args);
};

function drain() {
  if (draining) return;
  draining = true;
  // server.close() would close idle connections at once, racing a request already on its way.
  for (const s of servers) s.closeIdleConnections = () => {};
  // A connection still idle after the grace is a client with nothing to send (a browser's):
  // close it, else server.close() (the cluster's, or the app's own on SIGINT, as Next.js does)
  // waits for keepAliveTimeout and the worker outlives kill_timeout.
  setTimeout(() => {
    for (const s of servers) {
      delete s.closeIdleConnections;
      s.closeIdleConnections();
    }
  }, IDLE_GRACE_MS).unref();
}

// Runs before the cluster module's own handler closes the servers.
process.prependListener('internalMessage', (m) => {
  if (m && m.cmd === 'NODE_CLUSTER' && m.act === 'disconnect') drain();
});
"#;

/// Write the preload into `$PMR_HOME/preload/` (atomically) and return its path.
pub fn install(home: &Path) -> std::io::Result<String> {
    let dir = home.join("preload");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("drain-{}.cjs", env!("CARGO_PKG_VERSION")));
    let tmp = dir.join(format!(".drain.{}.tmp", std::process::id()));
    std::fs::write(&tmp, PRELOAD)?;
    std::fs::rename(&tmp, &path)?;
    crate::node::rejections::install(&path)?;
    Ok(path.to_string_lossy().into_owned())
}
