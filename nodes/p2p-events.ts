// p2p-events: every cluster event on every VM (lib/ops/events.ts), derived from the replicated
// files' changes: output 1 sends every event here (informational, on every VM), output 2 sends the
// alerts this VM is the alerter for (one VM per event cluster-wide: wire it to mail, MQTT or a
// webhook). A recovery under way longer than the stall bound is alerted as recovery-stalled.
import { alerterFor, ClusterEvent, EventDeduper, eventsFromChange, stalledRecoveries } from '../lib/ops/events';
import type { ChangeEvent } from '../lib/records/cluster-api';
import type { Node, NodeMessage, RED } from './common/node-red';
import { seconds } from './common/real-servers';
import { answerWithoutStore, short, useStore } from './common/store-user';

interface EventsConfig {
  name?: string;
  store?: string;
  /** Seconds after which a recovery under way is stalled (default 120). */
  stall?: string | number;
}

export = function (red: RED) {
  function P2pEventsNode(this: Node, config: EventsConfig) {
    red.nodes.createNode(this, config);
    const node = this;
    const { files } = useStore(red, node, config.store);
    if (!files) {
      answerWithoutStore(node);
      return;
    }
    const stallMs = seconds(config.stall, 120, 10, 86_400);
    const dedup = new EventDeduper();
    let count = 0;

    const emit = (events: ClusterEvent[]) => {
      for (const e of events) {
        if (!dedup.first(e.key)) continue;
        const me = files.identity.hostname;
        const alerter = e.alert ? alerterFor(e.subject, files) : undefined;
        const msg: NodeMessage = { topic: `p2p-ha/${e.kind}`, payload: { ...e, alerter, emittedBy: me } };
        const alertMsg = e.alert && alerter === me ? { ...msg, payload: { ...(msg.payload as object) } } : null;
        node.send([msg, alertMsg]);
        count++;
        node.status({ fill: e.alert ? (e.kind === 'recovered' || e.kind === 'maintenance-off' ? 'green' : 'yellow') : 'grey', shape: 'dot', text: short(`${count}: ${e.text}`) });
      }
    };

    const onChange = (c: ChangeEvent) => {
      try {
        emit(eventsFromChange(c, files, Date.now()));
      } catch (e) {
        node.warn(`event from ${c.line}: ${(e as Error).message}`);
      }
    };
    files.on('change', onChange);
    node.status({ fill: 'green', shape: 'ring', text: 'listening' });

    // The stall check: a few times per bound, at most every 5 s.
    const timer = setInterval(() => {
      try {
        emit(stalledRecoveries(files, Date.now(), stallMs, files.identity.hostname));
      } catch (e) {
        node.warn(`stall check: ${(e as Error).message}`);
      }
    }, Math.min(5000, stallMs / 4));

    node.on('input', (msg: NodeMessage, send, done) => {
      // Any msg in: the stall check now; the msg is not passed on.
      emit(stalledRecoveries(files, Date.now(), stallMs, files.identity.hostname));
      done();
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      clearInterval(timer);
      files.off('change', onChange);
      done();
    });
  }
  red.nodes.registerType('p2p-events', P2pEventsNode);
};
