// Launcher for the GitHub Actions runner, which starts a .js hook with its own bundled node
// (`<runner>/externals/node20/bin/node <path>`). Plain CommonJS, node 16 or newer, node's own
// modules only. It starts the binary next to this file with the same arguments, the runner's
// stdin, stdout and stderr, and returns its exit code (128 + n after a death by signal n).
// SIGINT and SIGTERM (the runner cancelling the step) are forwarded to the binary once each.
// CONTAINER_HOOKS_LAUNCHER_DIR tells the binary which folder it was started from (the k8s
// hook's `k8s` folder means volume mode).
'use strict';

const { spawn } = require('child_process');
const os = require('os');
const path = require('path');

const binary = path.join(__dirname, '@BIN@');
const child = spawn(binary, process.argv.slice(2), {
  stdio: 'inherit',
  env: Object.assign({}, process.env, { CONTAINER_HOOKS_LAUNCHER_DIR: __dirname }),
  // Its own process group: a signal sent to the runner's whole group (Ctrl-C in a terminal)
  // reaches the binary once, through the forwarding below, rather than twice.
  detached: true,
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
    }
  });
}

child.on('error', (err) => {
  process.stderr.write(`::error::cannot start ${binary}: ${err.message}\n`);
  process.exit(1);
});

child.on('exit', (code, signal) => {
  process.exit(signal ? 128 + (os.constants.signals[signal] || 0) : code);
});
