// Bounded waiting for tests, benchmarks and the launcher: every wait has a deadline and, when it
// expires, says what it was waiting for and what the last attempt saw, so a failing test names
// its cause instead of timing out in mocha with no context.

export interface WaitOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** Pause between attempts (default 100 ms). */
  intervalMs?: number;
  /** What is awaited, for the error message ("S2 admin API at http://127.0.1.2:20001"). */
  what?: string;
}

export class WaitTimeoutError extends Error {
  constructor(
    message: string,
    readonly lastError: unknown,
  ) {
    super(message);
    this.name = 'WaitTimeoutError';
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Call `fn` until it returns a value other than false/undefined/null (that value is returned) or
 * the deadline passes. A throw from `fn` counts as "not yet" and is kept for the error message.
 * An attempt is never cut short: the deadline is checked between attempts, so `fn` should bound
 * its own I/O (e.g. an HTTP timeout below intervalMs * a few).
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: WaitOptions = {},
): Promise<Exclude<T, false | null | undefined>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 100;
  const what = opts.what ?? 'condition';
  const started = Date.now();
  let lastError: unknown;
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      const v = await fn();
      if (v !== false && v !== undefined && v !== null) return v as Exclude<T, false | null | undefined>;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    const elapsed = Date.now() - started;
    if (elapsed >= timeoutMs) {
      const why = lastError === undefined ? 'it stayed false' : `last error: ${describe(lastError)}`;
      throw new WaitTimeoutError(
        `timed out after ${elapsed} ms (${attempts} attempts) waiting for ${what}; ${why}`,
        lastError,
      );
    }
    await sleep(Math.min(intervalMs, Math.max(0, timeoutMs - elapsed)));
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
