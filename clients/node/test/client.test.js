// WarmerClient against the real daemon: take (with a lease), send the headers to the demo
// site's protected API, report; withSession; errors as WarmerError.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ANY_EVENT, WarmerClient, WarmerError, succeeded } from '../src/index.js';
import { env, eventApi } from '../test-support/env.js';

const client = new WarmerClient(env.warmerUrl);

test('take returns ready-to-send headers that get 200, and report is recorded', async () => {
  const event = env.events[1];
  const s = await client.take({ event, lease: '30s', waitMs: 30_000 });
  assert.match(s.id, /^[0-9a-f]{32}$/);
  assert.equal(s.target, 'demo');
  assert.ok(['event', 'target'].includes(s.match), s.match);
  assert.equal(s.lease?.seconds, 30);
  assert.equal(s.proxy, null);
  assert.match(s.headers.Cookie, /visitor=/);
  assert.match(s.headers['User-Agent'], /Chrome\/\d+/);
  assert.equal(s.userAgent, s.headers['User-Agent']);
  assert.ok(s.cookies.some((c) => c.name === 'visitor' && c.value && c.httpOnly));
  assert.ok(s.expiresAt > new Date());

  const before = await client.sessionInfo(s.id);
  const resp = await s.fetch(eventApi(event));
  assert.equal(resp.status, 200, await resp.clone().text());
  assert.equal((await resp.json()).event, event);

  const out = await s.report(true, resp.status);
  assert.equal(out.session_id, s.id);
  assert.equal(out.verdict, 'keep');
  assert.equal(s.reported, true);
  const after = await client.sessionInfo(s.id);
  assert.equal(after.successes, before.successes + 1);
});

test('withSession reports what the callback returned, and a throw as a failure', async () => {
  let id;
  const resp = await client.withSession({ event: env.events[2], waitMs: 30_000 }, async (s) => {
    id = s.id;
    return s.fetch(eventApi(env.events[2]));
  });
  assert.equal(resp.status, 200);
  const info = await client.sessionInfo(id);
  assert.ok(info.successes >= 1, JSON.stringify(info));

  // A failure that is not a block: the error score rises, the session stays.
  const failures = info.failures;
  const boom = Object.assign(new Error('parse failed'), { status: 500 });
  await assert.rejects(
    client.withSession({ event: env.events[2], waitMs: 30_000 }, async (s) => {
      id = s.id;
      throw boom;
    }),
    (e) => e === boom,
  );
  const failed = await client.sessionInfo(id);
  assert.ok(failed.failures >= 1, JSON.stringify(failed));
  if (failed.session_id === info.session_id) assert.equal(failed.failures, failures + 1);
});

test('the daemon errors are WarmerErrors with status and code', async () => {
  await assert.rejects(client.take({ event: '1001', target: 'no-such-target' }), (e) => {
    assert.ok(e instanceof WarmerError);
    assert.equal(e.status, 404);
    assert.equal(typeof e.code, 'string');
    return true;
  });
  await assert.rejects(client.take({ event: 'bad/event' }), (e) => e.status === 404 || e.status === 400);
  await assert.rejects(client.report('0'.repeat(32), true), (e) => e.status === 404);
  const down = new WarmerClient('http://127.0.0.1:9', { timeoutMs: 5_000 });
  await assert.rejects(down.take({ event: ANY_EVENT }), (e) => {
    assert.ok(e instanceof WarmerError);
    assert.equal(e.status, 0);
    assert.equal(e.code, 'unreachable');
    return true;
  });
  await assert.rejects(client.take({ event: '' }), TypeError);
  assert.ok(succeeded(200) && succeeded(404) && !succeeded(403) && !succeeded(429));
});
