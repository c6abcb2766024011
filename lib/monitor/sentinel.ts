// Early warning, never a verdict: one idle TCP connection held open to each port a target is
// checked on. When the target's process dies (or its service stops), its kernel closes the
// connection at once (FIN or RST) and the monitor checks right away instead of at the next
// interval, so a crash is seen within milliseconds and the re-examination starts from the crash,
// not up to an interval later. A frozen or unreachable host closes nothing: the periodic checks
// find those. A connection closed for any other reason (the server's idle timeout) only costs one
// extra check. The connection sends nothing and reads nothing that matters.
import * as net from 'net';

export interface SentinelOptions {
  host: string;
  /** This VM's own address as the source (probes.ts sourceAddress). */
  localAddress?: string;
  port: number;
  /** Called when an established connection closes. */
  onLost: () => void;
  /** Wait before connecting again after a close or a failed connect (ms). */
  retryMs: number;
}

export class Sentinel {
  private socket: net.Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  /** Connections lost (for tests and the status). */
  lost = 0;

  constructor(private readonly opts: SentinelOptions) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.socket?.destroy();
    this.socket = undefined;
  }

  get connected(): boolean {
    return !!this.socket && !this.socket.connecting && !this.socket.destroyed;
  }

  private connect(): void {
    if (this.stopped) return;
    let established = false;
    const s = net.connect({ host: this.opts.host, port: this.opts.port, localAddress: this.opts.localAddress });
    this.socket = s;
    s.setNoDelay(true);
    s.on('connect', () => {
      established = true;
    });
    // Whatever the server says (an HTTP 408 before its idle timeout) is of no interest.
    s.on('data', () => undefined);
    s.on('error', () => undefined);
    s.on('close', () => {
      if (this.socket === s) this.socket = undefined;
      if (this.stopped) return;
      if (established) {
        this.lost++;
        try {
          this.opts.onLost();
        } catch {
          /* a hint only: the periodic checks go on regardless */
        }
      }
      this.timer = setTimeout(() => this.connect(), this.opts.retryMs);
    });
  }
}
