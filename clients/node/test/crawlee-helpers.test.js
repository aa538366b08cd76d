// The pure parts of the Crawlee helpers: cookie conversion and the pre-navigation hook.

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';

import { Session } from '@crawlee/core';

import { toToughCookie, warmerHeaders } from '../src/crawlee.js';

test('toToughCookie drops the leading dot for hostOnly, keeps expiry and sameSite', () => {
  const at = '2026-12-02T04:20:48.126Z';
  assert.deepEqual(
    toToughCookie(
      { name: 'a', value: '1', domain: '.shop.example', path: '/', expires: 1_800_000_000.5,
        httpOnly: true, secure: true, sameSite: 'None' },
      at,
    ),
    { key: 'a', value: '1', domain: 'shop.example', path: '/', secure: true, httpOnly: true,
      hostOnly: false, creation: at, lastAccessed: at, expires: '2027-01-15T08:00:00.500Z',
      sameSite: 'none' },
  );
  const host = toToughCookie({ name: 'b', value: '2', domain: 'www.shop.example', expires: -1 }, at);
  assert.equal(host.hostOnly, true);
  assert.equal(host.path, '/');
  assert.equal('expires' in host, false, 'a session cookie has no expires');
  // Loaded into a real Crawlee session, both match where the browser would send them.
  const s = new Session({
    sessionPool: new EventEmitter(),
    cookieJar: { cookies: [toToughCookie({ name: 'a', value: '1', domain: '.shop.example', path: '/' }, at),
                           toToughCookie({ name: 'b', value: '2', domain: 'www.shop.example', path: '/' }, at)] },
  });
  assert.equal(s.getCookieString('https://www.shop.example/x'), 'a=1; b=2');
  assert.equal(s.getCookieString('https://shop.example/x'), 'a=1');
  assert.equal(s.getCookieString('https://api.shop.example/x'), 'a=1');
});

test('warmerHeaders replaces generated identity headers and sets the proxy', () => {
  const session = {
    userData: {
      warmer: {
        userAgent: 'UA/1',
        headers: { 'User-Agent': 'UA/1', 'sec-ch-ua': '"Chromium";v="156"' },
        proxy: 'http://u:p@127.0.0.1:8080',
      },
    },
  };
  const got = { headers: { 'user-agent': 'generated', Accept: 'text/html' } };
  warmerHeaders({ session }, got);
  assert.deepEqual(got.headers, {
    Accept: 'text/html',
    'User-Agent': 'UA/1',
    'sec-ch-ua': '"Chromium";v="156"',
  });
  assert.equal(got.proxyUrl, 'http://u:p@127.0.0.1:8080');
  const untouched = { headers: { 'user-agent': 'x' } };
  warmerHeaders({ session: { userData: {} } }, untouched);
  assert.deepEqual(untouched, { headers: { 'user-agent': 'x' } });
});
