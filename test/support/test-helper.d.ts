// node-red-node-test-helper ships no types; the part the tests use.
declare module 'node-red-node-test-helper' {
  interface TestNode {
    on(event: string, fn: (...args: any[]) => void): void;
    removeAllListeners(event?: string): void;
    receive(msg: object): void;
    [k: string]: any;
  }
  const helper: {
    init(nodeRedPath: string, settings?: object): void;
    load(nodes: unknown, flow: object[], credentials?: object): Promise<void>;
    unload(): Promise<void>;
    getNode(id: string): TestNode;
    startServer(done: () => void): void;
    stopServer(done: () => void): void;
    settings(s: object): void;
    request(): any;
    _RED: any;
    log(): any;
  };
  export default helper;
}
