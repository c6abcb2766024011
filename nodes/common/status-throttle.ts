// A node status that follows a stream of events (one per diff applied) without paying for each:
// Node-RED translates, stores and pushes every status to the editor, which costs more CPU than
// applying the diff itself (issue 16's profiles). The first event after a quiet spell is shown at
// once; later ones within `ms` only set what to show, and the latest is shown when the interval
// ends. So the status is never more than `ms` behind, and a burst costs a few updates.
export class ThrottledStatus<T> {
  private timer?: NodeJS.Timeout;
  private last = 0;
  private pending?: T;

  constructor(
    private readonly show: (value: T) => void,
    private readonly ms = 250,
  ) {}

  set(value: T): void {
    const now = Date.now();
    if (!this.timer && now - this.last >= this.ms) {
      this.last = now;
      this.show(value);
      return;
    }
    this.pending = value;
    this.timer ??= setTimeout(() => this.flush(), Math.max(0, this.ms - (now - this.last)));
  }

  /** Stop (node closed): nothing more is shown. */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = undefined;
  }

  private flush(): void {
    this.timer = undefined;
    const v = this.pending;
    this.pending = undefined;
    if (v === undefined) return;
    this.last = Date.now();
    this.show(v);
  }
}
