// Warmer sessions as Crawlee sessions: a `createSessionFunction` for `SessionPool`, a
// pre-navigation hook that sends a session's identity headers (and proxy), and loading of
// warmer's `crawlee` export. Needs `@crawlee/core` 3.x (or `crawlee`) installed beside it.

import { KeyValueStore, Session } from '@crawlee/core';

import { ANY_EVENT, WarmerClient, succeeded } from './index.js';

/** The key Crawlee 3's `SessionPool` keeps its state under (`persistStateKey`'s default). */
export const SESSION_POOL_STATE_KEY = 'SDK_SESSION_POOL_STATE';

/** The key-value store {@link loadCrawleeExport} writes into unless told another. */
export const DEFAULT_STORE_NAME = 'session-warmer';

/**
 * A cookie of warmer's take answer (Playwright's shape: `expires` in seconds, -1 for a session
 * cookie) as tough-cookie's JSON: no leading dot on the domain, `hostOnly` instead.
 * @param {{name: string, value: string, domain: string, path?: string, expires?: number,
 *   httpOnly?: boolean, secure?: boolean, sameSite?: string}} c
 * @param {string} captured ISO time used for `creation` and `lastAccessed`
 */
export function toToughCookie(c, captured = new Date().toISOString()) {
  const out = {
    key: c.name,
    value: c.value ?? '',
    domain: c.domain.replace(/^\./, ''),
    path: c.path || '/',
    secure: Boolean(c.secure),
    httpOnly: Boolean(c.httpOnly),
    hostOnly: !c.domain.startsWith('.'),
    creation: captured,
    lastAccessed: captured,
  };
  if (typeof c.expires === 'number' && c.expires > 0) {
    out.expires = new Date(c.expires * 1000).toISOString();
  }
  const sameSite = String(c.sameSite ?? '').toLowerCase();
  if (['strict', 'lax', 'none'].includes(sameSite)) out.sameSite = sameSite;
  return out;
}

/**
 * What a Crawlee session keeps of a warmer session, under `userData.warmer` (the same fields
 * warmer's `crawlee` export writes).
 * @param {import('./index.js').WarmerSession} s
 */
function warmerUserData(s) {
  const headers = Object.fromEntries(
    Object.entries(s.headers).filter(([k]) => k.toLowerCase() !== 'cookie'),
  );
  return {
    sessionId: s.id,
    target: s.target,
    event: s.event,
    userAgent: s.userAgent,
    headers,
    proxy: s.proxy,
    fingerprint: s.fingerprint,
  };
}

/**
 * A Crawlee `Session` holding a warmer session's cookies, with its identity under
 * `userData.warmer` and its expiry. Its id is the warmer session's (with `_2`, `_3`... when the
 * pool already has one by that id).
 * @param {import('./index.js').WarmerSession} s a session taken with {@link WarmerClient#take}
 * @param {import('@crawlee/core').SessionPool} sessionPool the pool it is for
 * @param {object} [sessionOptions] more `Session` options (e.g. `maxUsageCount`)
 * @returns {Session}
 */
export function toCrawleeSession(s, sessionPool, sessionOptions = {}) {
  const captured = new Date().toISOString();
  let id = s.id;
  for (let n = 2; sessionPool?.sessionMap?.has(id); n += 1) id = `${s.id}_${n}`;
  return new Session({
    ...(sessionPool?.sessionOptions ?? {}),
    ...sessionOptions,
    id,
    sessionPool,
    cookieJar: { cookies: s.cookies.map((c) => toToughCookie(c, captured)) },
    userData: { ...(sessionOptions.userData ?? {}), warmer: warmerUserData(s) },
    expiresAt: s.expiresAt,
  });
}

/**
 * Sends what a Crawlee session learns back to warmer: `markGood` reports a success, `markBad` a
 * failure, `retire` (a blocked status such as 403, or Crawlee giving up on it) a failure with
 * that status. Reports run in the background; `pending` holds those not settled yet.
 * @param {Session} session
 * @param {WarmerClient} client
 * @param {Set<Promise<unknown>>} pending
 * @param {(err: Error) => void} onError
 */
function reportBack(session, client, pending, onError) {
  const warmerId = session.userData?.warmer?.sessionId;
  if (!warmerId) return;
  const send = (success, status) => {
    const p = client
      .report(warmerId, success, status)
      .catch(onError)
      .finally(() => pending.delete(p));
    pending.add(p);
  };
  const orig = {
    markGood: session.markGood.bind(session),
    markBad: session.markBad.bind(session),
    retire: session.retire.bind(session),
    retireOnBlockedStatusCodes: session.retireOnBlockedStatusCodes.bind(session),
  };
  // markGood and markBad may retire the session themselves (used up); that is not a report.
  let inner = false;
  let blockedStatus;
  const quietly = (fn) => {
    inner = true;
    try {
      return fn();
    } finally {
      inner = false;
    }
  };
  session.markGood = () => {
    quietly(orig.markGood);
    send(true);
  };
  session.markBad = () => {
    quietly(orig.markBad);
    send(false);
  };
  session.retire = () => {
    orig.retire();
    if (!inner) send(false, blockedStatus);
  };
  session.retireOnBlockedStatusCodes = (status, more) => {
    blockedStatus = status;
    try {
      return orig.retireOnBlockedStatusCodes(status, more);
    } finally {
      blockedStatus = undefined;
    }
  };
}

/**
 * A `createSessionFunction` for Crawlee's `SessionPool` (e.g. `sessionPoolOptions` of an
 * `HttpCrawler` or `CheerioCrawler`): each new Crawlee session is a session taken from warmer.
 * Sessions the pool restores from its persisted state (or from warmer's `crawlee` export) are
 * rebuilt as Crawlee would. Use {@link warmerHeaders} as a pre-navigation hook so requests
 * carry the session's User-Agent and client hints.
 *
 * @param {WarmerClient|string} client a client, or the daemon's URL
 * @param {{event?: string|(() => string), target?: string, lease?: string|number,
 *   waitMs?: number, report?: boolean, sessionOptions?: object,
 *   onReportError?: (err: Error) => void}} [options]
 *   `event`: the event to take sessions for (or a function picking one each time; default any
 *   of the target's); `target`, `lease`, `waitMs`: as for {@link WarmerClient#take} (a lease
 *   ends at the first report); `report`: tell warmer how each request went (default true);
 *   `sessionOptions`: more Crawlee `Session` options; `onReportError`: a failed report
 *   (default: a warning on stderr)
 * @returns {((sessionPool: import('@crawlee/core').SessionPool, options?: {sessionOptions?: object})
 *   => Promise<Session>) & {flush: () => Promise<void>}} the function; its `flush()` waits for
 *   the reports still in flight
 */
export function createSessionFunction(client, options = {}) {
  const warmer = typeof client === 'string' ? new WarmerClient(client) : client;
  const {
    event = ANY_EVENT,
    target,
    lease,
    waitMs = 30_000,
    report = true,
    sessionOptions = {},
    onReportError = (err) => process.emitWarning(`session-warmer report failed: ${err.message}`),
  } = options;
  const pending = new Set();
  const create = async (sessionPool, createOptions = {}) => {
    const restore = createOptions.sessionOptions;
    let session;
    if (restore?.cookieJar) {
      // A session the pool persisted (or an export): rebuild it as Crawlee's own function does.
      session = new Session({ ...(sessionPool.sessionOptions ?? {}), ...restore, sessionPool });
    } else {
      const ev = typeof event === 'function' ? event() : event;
      const taken = await warmer.take({ event: ev, target, lease, waitMs });
      session = toCrawleeSession(taken, sessionPool, { ...sessionOptions, ...(restore ?? {}) });
    }
    if (report) reportBack(session, warmer, pending, onReportError);
    return session;
  };
  create.flush = async () => {
    while (pending.size) await Promise.allSettled([...pending]);
  };
  return create;
}

/**
 * A pre-navigation hook for `HttpCrawler`/`CheerioCrawler` (`preNavigationHooks`): sends the
 * session's identity headers (User-Agent, sec-ch-ua*, Accept-Language; the cookies are
 * Crawlee's, from the session's jar) and, when the session has one, its proxy (`proxyUrl`).
 * Sessions without `userData.warmer` are left alone.
 * @param {{session?: Session}} crawlingContext
 * @param {{headers?: Record<string, string>, proxyUrl?: string}} gotOptions
 */
export function warmerHeaders({ session }, gotOptions) {
  const w = session?.userData?.warmer;
  if (!w) return;
  const headers = { ...(gotOptions.headers ?? {}) };
  for (const k of Object.keys(headers)) {
    if (Object.keys(w.headers ?? {}).some((h) => h.toLowerCase() === k.toLowerCase())) {
      delete headers[k];
    }
  }
  gotOptions.headers = { ...headers, ...(w.headers ?? {}) };
  if (!w.headers && w.userAgent) gotOptions.headers['User-Agent'] = w.userAgent;
  if (w.proxy) gotOptions.proxyUrl = w.proxy;
}

/**
 * Puts a warmer `crawlee` export (a `SessionPool` state record, from
 * `GET /api/v1/sessions/export?format=crawlee` or `warmer sessions export --all`) where
 * `SessionPool.open({ persistStateKeyValueStoreId: storeName })` loads it. Use a named store:
 * Crawlee purges the default one on start.
 * @param {object|string} record the record, or its JSON text
 * @param {{storeName?: string, key?: string}} [options] default store
 *   {@link DEFAULT_STORE_NAME}, key {@link SESSION_POOL_STATE_KEY}
 * @returns {Promise<{persistStateKeyValueStoreId: string, persistStateKey: string}>} the
 *   options to open the pool with
 */
export async function loadCrawleeExport(record, options = {}) {
  const { storeName = DEFAULT_STORE_NAME, key = SESSION_POOL_STATE_KEY } = options;
  const value = typeof record === 'string' ? JSON.parse(record) : record;
  if (!Array.isArray(value?.sessions)) {
    throw new TypeError('not a Crawlee SessionPool state record: no `sessions` array');
  }
  const store = await KeyValueStore.open(storeName);
  await store.setValue(key, value);
  return { persistStateKeyValueStoreId: storeName, persistStateKey: key };
}
