// A real Crawlee HttpCrawler whose SessionPool sessions come from warmer
// (createSessionFunction) and whose requests carry the session's identity (warmerHeaders):
// 200 from the demo site's protected API, and Crawlee's verdicts reported back to warmer.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { HttpCrawler } from '@crawlee/http';

import { WarmerClient } from '../src/index.js';
import { createSessionFunction, warmerHeaders } from '../src/crawlee.js';
import { env, eventApi } from '../test-support/env.js';

const client = new WarmerClient(env.warmerUrl);

function crawler(create, storeId, { hooks = [warmerHeaders] } = {}) {
  const seen = [];
  const failed = [];
  const c = new HttpCrawler({
    useSessionPool: true,
    persistCookiesPerSession: true,
    sessionPoolOptions: {
      maxPoolSize: 1,
      createSessionFunction: create,
      persistStateKeyValueStoreId: storeId,
    },
    preNavigationHooks: hooks,
    additionalMimeTypes: ['application/json'],
    maxRequestRetries: 0,
    maxConcurrency: 1,
    requestHandler: async ({ request, response, body, session }) => {
      seen.push({
        url: request.url,
        status: response.statusCode,
        body: JSON.parse(body.toString()),
        warmerId: session.userData.warmer?.sessionId,
      });
    },
    failedRequestHandler: async ({ request, session }, error) => {
      failed.push({ url: request.url, error: error.message, warmerId: session?.userData.warmer?.sessionId });
    },
  });
  return { c, seen, failed };
}

test('an HttpCrawler with createSessionFunction and warmerHeaders gets 200', async () => {
  const create = createSessionFunction(client, { event: env.events[0] });
  const { c, seen, failed } = crawler(create, 'crawler-ok');
  const urls = env.events.slice(0, 3).map(eventApi);
  await c.run(urls);
  await create.flush();
  assert.deepEqual(failed, []);
  assert.equal(seen.length, urls.length);
  for (const s of seen) {
    assert.equal(s.status, 200, JSON.stringify(s));
    assert.match(s.warmerId, /^[0-9a-f]{32}$/);
  }
  // One session (maxPoolSize 1), and each of Crawlee's markGood reached warmer.
  const ids = [...new Set(seen.map((s) => s.warmerId))];
  assert.equal(ids.length, 1);
  const info = await client.sessionInfo(ids[0]);
  assert.ok(info.successes >= urls.length, JSON.stringify(info));
});

test("without the session's User-Agent the site refuses, and warmer hears the 403", async () => {
  const create = createSessionFunction(client, { event: env.events[0] });
  // No warmerHeaders: got-scraping sends a generated User-Agent the cookies were not earned with.
  const { c, seen, failed } = crawler(create, 'crawler-no-ua', { hooks: [] });
  // A URL the first crawl did not visit (Crawlee's default request queue skips seen ones).
  await c.run([eventApi(env.events[4])]);
  await create.flush();
  assert.deepEqual(seen, []);
  assert.equal(failed.length, 1, JSON.stringify(failed));
  const info = await client.sessionInfo(failed[0].warmerId);
  assert.equal(info.state, 'retired', JSON.stringify(info));
  assert.match(info.retired_reason ?? '', /403/);
});
