// session-warmer's Node client: take a warm session, send its headers, report how it went.
// ESM, no dependencies (Node 18+'s fetch). Crawlee helpers are in ./crawlee.js.

/** Default daemon address, as `warmer serve` listens by default. */
export const DEFAULT_URL = 'http://127.0.0.1:3000';

/**
 * The event id that means "any ready session of the target" (as in the Python client). Without
 * `target` the daemon picks the target that lists the event, else its first one.
 */
export const ANY_EVENT = '_any';

/**
 * Whether a target's HTTP `status` counts as a success of the session that sent it: below 400,
 * and 404/410 (the site took the session and said the page is not there). 401/403 retire the
 * session, 429 rests it, other failures add to its error score.
 * @param {number} status
 */
export function succeeded(status) {
  return status < 400 || status === 404 || status === 410;
}

/**
 * An error answered by the daemon (`{"error": {"code", "message"}}` with a 4xx/5xx status), or
 * a daemon that could not be reached (`status` 0, `code` "unreachable").
 */
export class WarmerError extends Error {
  /**
   * @param {number} status HTTP status (0 when the daemon was not reached)
   * @param {string} code the API's error code, e.g. `no_session`
   * @param {string} message the API's message
   * @param {{retryAfter?: number, cause?: unknown}} [extra] `Retry-After` in seconds, if sent
   */
  constructor(status, code, message, { retryAfter, cause } = {}) {
    super(`session-warmer: ${status ? `${status} ` : ''}${code}: ${message}`, { cause });
    this.name = 'WarmerError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/**
 * A session taken from the pool. Send `headers` (Cookie, User-Agent, sec-ch-ua*,
 * Accept-Language) exactly as given, through `proxy` when set, then `report()` once.
 */
export class WarmerSession {
  /**
   * @param {WarmerClient} client the client it was taken with
   * @param {object} body the API's answer of `GET /api/sessions/event/:eventId`
   */
  constructor(client, body) {
    /** @type {WarmerClient} */
    this.client = client;
    /** Session id (for reports and exports). @type {string} */
    this.id = body.session_id;
    /** @type {string} */
    this.target = body.target;
    /** Event it was warmed on (null for login sessions). @type {string|null} */
    this.event = body.event ?? null;
    /** `event` when warmed on the event asked for, `target` when another event's. */
    this.match = body.match;
    /** Ready-to-send headers. @type {Record<string, string>} */
    this.headers = { ...body.headers };
    /** Cookies in Playwright's shape (`expires` in seconds, -1 for session cookies). */
    this.cookies = body.cookies ?? [];
    /** Proxy the session must be used through, or null. @type {string|null} */
    this.proxy = body.proxy ?? null;
    /** The identity the cookies were earned with. */
    this.fingerprint = body.fingerprint;
    /** When the pool stops serving it. @type {Date} */
    this.expiresAt = new Date(body.expires_at);
    /** The exclusive lease, when one was asked for: `{expires_at, seconds}`. */
    this.lease = body.lease ?? null;
    /** Whether `report()` was called. */
    this.reported = false;
  }

  /** The User-Agent the cookies are bound to. @type {string} */
  get userAgent() {
    return this.headers['User-Agent'] ?? this.fingerprint?.user_agent;
  }

  /**
   * Tells the pool how the session did (and ends its lease). 401/403 retire it, 429 rests it.
   * @param {boolean} success whether the request worked
   * @param {number} [status] the HTTP status seen
   * @returns {Promise<{session_id: string, verdict: string, reason: string|null, error_score: number}>}
   */
  async report(success, status) {
    const out = await this.client.report(this.id, success, status);
    this.reported = true;
    return out;
  }

  /**
   * `fetch(url, init)` with the session's headers under `init.headers`. Node's fetch has no
   * proxy option: a session with a `proxy` needs `init.dispatcher` (e.g. undici's
   * `ProxyAgent(session.proxy)`), else this throws rather than leave the proxy out.
   * @param {string|URL} url
   * @param {RequestInit & {dispatcher?: unknown}} [init]
   * @returns {Promise<Response>}
   */
  async fetch(url, init = {}) {
    if (this.proxy && !init.dispatcher) {
      throw new Error(
        `session ${this.id} must be used through its proxy: pass init.dispatcher (undici ProxyAgent)`,
      );
    }
    return fetch(url, { ...init, headers: { ...this.headers, ...(init.headers ?? {}) } });
  }
}

/** Client of a session-warmer daemon's HTTP API. */
export class WarmerClient {
  /**
   * @param {string} [url] the daemon, e.g. `http://127.0.0.1:3000` (default: $WARMER_URL, else
   *   that)
   * @param {{token?: string, timeoutMs?: number}} [options] `token`: the bearer token (default
   *   $WARMER_TOKEN); `timeoutMs`: per request (default 30 s)
   */
  constructor(url = process.env.WARMER_URL || DEFAULT_URL, { token, timeoutMs = 30_000 } = {}) {
    this.url = String(url).replace(/\/+$/, '');
    this.token = token ?? process.env.WARMER_TOKEN ?? null;
    this.timeoutMs = timeoutMs;
  }

  /**
   * One API call; JSON in and out, errors as {@link WarmerError}.
   * @param {string} method
   * @param {string} path starting with `/`
   * @param {{body?: unknown, text?: boolean}} [options] `text`: return the body as a string
   */
  async request(method, path, { body, text = false } = {}) {
    const headers = { Accept: text ? '*/*' : 'application/json' };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let resp;
    try {
      resp = await fetch(this.url + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (cause) {
      throw new WarmerError(0, 'unreachable', `${method} ${this.url}${path}: ${cause.message}`, {
        cause,
      });
    }
    const raw = await resp.text();
    if (!resp.ok) {
      let code = 'http_error';
      let message = raw.slice(0, 500);
      try {
        const e = JSON.parse(raw).error;
        if (e?.code) code = e.code;
        if (e?.message) message = e.message;
      } catch {
        // Not JSON (a proxy in between, say): keep the text.
      }
      const ra = Number(resp.headers.get('retry-after'));
      throw new WarmerError(resp.status, code, message, {
        retryAfter: Number.isFinite(ra) && ra >= 0 ? ra : undefined,
      });
    }
    return text ? raw : JSON.parse(raw);
  }

  /**
   * Takes a ready session for an event: one warmed on it if any, else any of its target's.
   * @param {{event?: string, target?: string, lease?: string|number, waitMs?: number}} [options]
   *   `event`: default {@link ANY_EVENT}; `target`: needed when the daemon has several and
   *   the event is not listed by the one meant; `lease`: exclusive for that long (`"30s"`, or
   *   seconds; at most 10 min) or until `report()`; `waitMs`: while the daemon answers 503 (none
   *   ready, all leased), ask again for up to this long, pausing as its `Retry-After` says
   * @returns {Promise<WarmerSession>}
   */
  async take({ event = ANY_EVENT, target, lease, waitMs = 0 } = {}) {
    if (typeof event !== 'string' || event === '') {
      throw new TypeError('take: `event` must be a non-empty event id');
    }
    if (typeof lease === 'number' && !(lease > 0)) {
      throw new RangeError(`take: lease must be positive, got ${lease}`);
    }
    const q = new URLSearchParams();
    if (target) q.set('target', target);
    if (lease !== undefined) q.set('lease', typeof lease === 'number' ? `${Math.ceil(lease)}s` : lease);
    const qs = q.toString() ? `?${q}` : '';
    const path = `/api/sessions/event/${encodeURIComponent(event)}${qs}`;
    const deadline = Date.now() + waitMs;
    for (;;) {
      try {
        return new WarmerSession(this, await this.request('GET', path));
      } catch (e) {
        const left = deadline - Date.now();
        if (!(e instanceof WarmerError) || e.status !== 503 || left <= 0) throw e;
        const pause = Math.min(left, Math.max(100, (e.retryAfter ?? 1) * 1000));
        await new Promise((r) => setTimeout(r, pause));
      }
    }
  }

  /**
   * Reports how a session did (`POST /api/sessions/:id/usage`); ends its lease.
   * @param {string} sessionId
   * @param {boolean} success
   * @param {number} [status] the HTTP status seen
   */
  async report(sessionId, success, status) {
    const body = { success: Boolean(success) };
    if (status !== undefined && status !== null) body.status = status;
    return this.request('POST', `/api/sessions/${encodeURIComponent(sessionId)}/usage`, { body });
  }

  /**
   * Takes a session, runs `fn(session)`, and reports unless `fn` did: a thrown error is a
   * failure (with its `status` if it has one) and is thrown on; a returned value with a numeric
   * `status` (a fetch `Response`, say) is reported with it, judged by {@link succeeded};
   * anything else is a success.
   * @template T
   * @param {{event?: string, target?: string, lease?: string|number, waitMs?: number}} options
   *   as for {@link WarmerClient#take}
   * @param {(session: WarmerSession) => Promise<T>|T} fn
   * @returns {Promise<T>} what `fn` returned
   */
  async withSession(options, fn) {
    const session = await this.take(options);
    let result;
    try {
      result = await fn(session);
    } catch (e) {
      if (!session.reported) {
        const status = Number.isInteger(e?.status) && e.status >= 100 ? e.status : undefined;
        await session.report(false, status).catch(() => {});
      }
      throw e;
    }
    if (!session.reported) {
      const status = Number.isInteger(result?.status) ? result.status : undefined;
      await session.report(status === undefined || succeeded(status), status);
    }
    return result;
  }

  /**
   * One session as the pool holds it (`GET /api/v1/sessions/:id`): state, uses, successes,
   * failures, error score, retired reason; no cookie values.
   * @param {string} sessionId
   */
  async sessionInfo(sessionId) {
    return this.request('GET', `/api/v1/sessions/${encodeURIComponent(sessionId)}`);
  }

  /**
   * One session's export (`GET /api/v1/sessions/:id/export?format=`): cookies-txt(-wget) as
   * text, the JSON formats (storage-state, headers, json, crawlee) parsed.
   * @param {string} sessionId
   * @param {string} [format] default `json`
   */
  async export(sessionId, format = 'json') {
    const path = `/api/v1/sessions/${encodeURIComponent(sessionId)}/export?format=${encodeURIComponent(format)}`;
    return this.request('GET', path, { text: format.startsWith('cookies-txt') });
  }

  /**
   * The pool's ready sessions as one Crawlee `SessionPool` state record
   * (`GET /api/v1/sessions/export?format=crawlee`); see ./crawlee.js to load it.
   * @param {{target?: string}} [options] only this target's sessions
   */
  async exportCrawlee({ target } = {}) {
    const q = new URLSearchParams({ format: 'crawlee' });
    if (target) q.set('target', target);
    return this.request('GET', `/api/v1/sessions/export?${q}`);
  }
}
