#!/usr/bin/env node
// The conclave command line. Until the node exists (issue 5), `start` says so and exits.

const [command] = process.argv.slice(2);

if (command === 'start') {
  console.log(
    'conclave: not yet — the node (storage, mesh, client API) is still being built. ' +
      'The raft core and its simulator are ready: try `npm run sim -- --seeds 20` or `npm run bench:raft`.',
  );
} else {
  console.error('usage: conclave start --single');
  process.exitCode = 2;
}
