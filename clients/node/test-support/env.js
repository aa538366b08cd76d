// What the tests in ../test need from their runner (tests/node_client.rs sets it all): a
// daemon warming the demo site, the demo site, a crawlee export file, and a scratch Crawlee
// storage dir. (Outside test/: `node --test test/` runs every file there.)
// Missing settings fail loudly: these tests are never skipped.

import path from 'node:path';

function need(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(
      `${name} is not set: run these tests through \`cargo nextest run --test node_client\` ` +
        '(it starts the daemon and the demo site and sets WARMER_URL, DEMO_URL, ' +
        'WARMER_EVENTS, WARMER_CRAWLEE_EXPORT and CRAWLEE_STORAGE_DIR)',
    );
  }
  return v;
}

/** The runner's settings. */
export const env = {
  /** The daemon's API, e.g. http://127.0.0.1:PORT. */
  warmerUrl: need('WARMER_URL'),
  /** The demo site the daemon warms. */
  demoUrl: need('DEMO_URL').replace(/\/+$/, ''),
  /** Event ids of the demo target. */
  events: need('WARMER_EVENTS').split(','),
  /** A pool-wide crawlee export the runner fetched from the daemon. */
  exportFile: need('WARMER_CRAWLEE_EXPORT'),
  /** Where Crawlee keeps its storages (a temp dir, never the repo). */
  storageDir: path.resolve(need('CRAWLEE_STORAGE_DIR')),
};

/** The demo site's protected API for an event: needs the cookies and their User-Agent. */
export function eventApi(event) {
  return `${env.demoUrl}/api/event/${encodeURIComponent(event)}`;
}
