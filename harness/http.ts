// A minimal HTTP client for tests and the launcher: one connection per request (no keep-alive
// pool that could hold a frozen VM's socket or keep the test process alive) and a hard timeout.
import * as http from 'http';

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface HttpRequest {
  method?: string;
  headers?: Record<string, string>;
  /** A string is sent as is; anything else as JSON (with the JSON content type). */
  body?: unknown;
  timeoutMs?: number;
}

export function httpRequest(url: string, req: HttpRequest = {}): Promise<HttpResponse> {
  const headers: Record<string, string> = { ...(req.headers ?? {}) };
  let payload: string | undefined;
  if (req.body !== undefined) {
    if (typeof req.body === 'string') payload = req.body;
    else {
      payload = JSON.stringify(req.body);
      headers['Content-Type'] ??= 'application/json';
    }
    headers['Content-Length'] = String(Buffer.byteLength(payload));
  }
  const timeoutMs = req.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const r = http.request(url, { method: req.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    r.setTimeout(timeoutMs, () => r.destroy(new Error(`${req.method ?? 'GET'} ${url}: no answer within ${timeoutMs} ms`)));
    r.on('error', reject);
    r.end(payload);
  });
}
