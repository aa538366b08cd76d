// warmer's `crawlee` export loaded by real Crawlee (@crawlee/core's SessionPool): the record a
// scraper drops into Crawlee's storage, and the same record through loadCrawleeExport. The
// cookie string Crawlee builds plus the User-Agent from userData.warmer must get 200 from the
// demo site's protected API, which checks both.

import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';

import { SessionPool } from '@crawlee/core';

import { WarmerClient } from '../src/index.js';
import { SESSION_POOL_STATE_KEY, loadCrawleeExport } from '../src/crawlee.js';
import { env, eventApi } from '../test-support/env.js';

/** Checks a loaded Crawlee session against the demo API, and that the UA is what binds it. */
async function assertWorks(session, record) {
  assert.equal(session.id, record.id);
  const w = session.userData.warmer;
  assert.equal(w.sessionId, record.id);
  assert.match(w.userAgent, /Chrome\/\d+/);
  assert.equal(w.headers['User-Agent'], w.userAgent);
  const url = eventApi(w.event ?? env.events[0]);
  const cookie = session.getCookieString(url);
  assert.match(cookie, /(^|; )visitor=/, `Crawlee's cookie string for ${url}: ${cookie}`);
  assert.match(cookie, /(^|; )challenge=/, `Crawlee's cookie string for ${url}: ${cookie}`);
  const ok = await fetch(url, { headers: { Cookie: cookie, 'User-Agent': w.userAgent } });
  const body = await ok.text();
  assert.equal(ok.status, 200, `${url} with Crawlee's cookies and userData.warmer.userAgent: ${body}`);
  assert.equal(JSON.parse(body).event, w.event ?? env.events[0]);
  // The same cookies under another User-Agent are refused: the UA from userData is what works.
  const other = await fetch(url, {
    headers: { Cookie: cookie, 'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0' },
  });
  await other.arrayBuffer();
  assert.equal(other.status, 403, 'a foreign User-Agent must not pass');
}

test('the pool-wide export dropped into the storage dir loads in SessionPool and gets 200', async () => {
  const raw = await readFile(env.exportFile, 'utf8');
  const record = JSON.parse(raw);
  assert.ok(record.sessions.length >= 2, `the export holds the ready sessions: ${raw.length} bytes`);
  assert.equal(record.usableSessionsCount, record.sessions.length);
  // Where Crawlee 3's memory storage reads a named key-value store from.
  const dir = path.join(env.storageDir, 'key_value_stores', 'warmer-dropin');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, `${SESSION_POOL_STATE_KEY}.json`), raw);

  const pool = await SessionPool.open({ persistStateKeyValueStoreId: 'warmer-dropin' });
  try {
    assert.equal(pool.usableSessionsCount, record.sessions.length, 'every exported session loads');
    for (const rec of record.sessions) {
      const session = await pool.getSession(rec.id);
      assert.ok(session, `SessionPool.getSession(${rec.id})`);
      assert.equal(session.expiresAt.toISOString(), rec.expiresAt);
      await assertWorks(session, rec);
    }
    // Persisting again writes the same cookie shape back (no leading dots, hostOnly kept).
    await pool.persistState();
    const again = JSON.parse(
      await readFile(path.join(dir, `${SESSION_POOL_STATE_KEY}.json`), 'utf8'),
    );
    const cookies = again.sessions.flatMap((s) => s.cookieJar.cookies);
    assert.ok(cookies.length > 0);
    for (const c of cookies) {
      assert.ok(!c.domain.startsWith('.'), JSON.stringify(c));
      assert.equal(typeof c.hostOnly, 'boolean', JSON.stringify(c));
    }
  } finally {
    await pool.teardown();
  }
});

test("one session's crawlee export, loaded with loadCrawleeExport, gets 200", async () => {
  const client = new WarmerClient(env.warmerUrl);
  const taken = await client.take({ event: env.events[0], waitMs: 30_000 });
  const record = await client.export(taken.id, 'crawlee');
  assert.equal(record.sessions.length, 1);
  assert.equal(record.sessions[0].id, taken.id);
  // Crawlee 3 accepts only these session keys; anything else makes SessionPool.open throw.
  const allowed = new Set([
    'id', 'cookieJar', 'maxAgeSecs', 'userData', 'maxErrorScore', 'errorScoreDecrement',
    'createdAt', 'expiresAt', 'usageCount', 'errorScore', 'maxUsageCount',
  ]);
  for (const k of Object.keys(record.sessions[0])) assert.ok(allowed.has(k), `key ${k}`);

  const opts = await loadCrawleeExport(JSON.stringify(record), { storeName: 'warmer-one' });
  assert.deepEqual(opts, {
    persistStateKeyValueStoreId: 'warmer-one',
    persistStateKey: SESSION_POOL_STATE_KEY,
  });
  const pool = await SessionPool.open(opts);
  try {
    assert.equal(pool.usableSessionsCount, 1);
    await assertWorks(await pool.getSession(taken.id), record.sessions[0]);
  } finally {
    await pool.teardown();
  }
  await taken.report(true, 200);
  await assert.rejects(loadCrawleeExport({ cookies: [] }), /no `sessions` array/);
});
