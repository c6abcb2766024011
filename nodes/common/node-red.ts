// The few shapes of the Node-RED runtime API these nodes use. Node-RED ships no types for its
// runtime; these keep the adapters type-checked without pulling in a third-party typings package.
export interface NodeStatus {
  fill?: 'red' | 'green' | 'yellow' | 'blue' | 'grey';
  shape?: 'ring' | 'dot';
  text?: string;
}

export interface NodeMessage {
  _msgid?: string;
  topic?: string;
  payload?: unknown;
  [key: string]: unknown;
}

export type SendFn = (msg: NodeMessage | (NodeMessage | null)[] | null) => void;
export type DoneFn = (err?: Error) => void;

export interface Node {
  id: string;
  type: string;
  name?: string;
  credentials?: Record<string, string | undefined>;
  on(event: 'input', handler: (msg: NodeMessage, send: SendFn, done: DoneFn) => void): void;
  on(event: 'close', handler: (removed: boolean, done: () => void) => void): void;
  status(s: NodeStatus | Record<string, never>): void;
  send(msg: NodeMessage | (NodeMessage | null)[] | null): void;
  log(msg: string): void;
  warn(msg: string): void;
  error(msg: string | Error, m?: NodeMessage): void;
}

export interface RED {
  nodes: {
    createNode(node: object, config: object): void;
    registerType(type: string, ctor: Function, opts?: object): void;
    getNode(id: string): unknown;
  };
  settings: { userDir?: string; [k: string]: unknown };
  httpAdmin: {
    get(path: string, ...handlers: Function[]): void;
    post(path: string, ...handlers: Function[]): void;
  };
  auth: { needsPermission(permission: string): Function };
  comms?: { publish(topic: string, data: unknown, retain?: boolean): void };
  /** The runtime's event bus (`flows:started` after every deploy and at start). */
  events?: { on(event: string, fn: (...args: unknown[]) => void): void; removeListener(event: string, fn: (...args: unknown[]) => void): void };
  _(key: string, subs?: Record<string, unknown>): string;
  /** The running Node-RED's version (e.g. "4.1.15"). */
  version?: () => string;
  log: { info(m: string): void; warn(m: string): void; error(m: string): void };
}
