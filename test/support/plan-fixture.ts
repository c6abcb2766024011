// The six-VM, three-host world the backup-plan tests share (recovery-backup-plan, -rehearsal,
// -takeover): S1..S6 two per real server, one paused OD per host and a second on RS3 (so an OD
// race on RS3 has somewhere to go), RS3 the least loaded. Fresh arrays each call: tests edit them.
import type { RecordFields } from '../../lib/records/files';

export const sixVmGroup = (): RecordFields[] => [
  ['S1', '127.0.1.1', 'RS1', 'tcp:80'],
  ['S2', '127.0.1.2', 'RS2', 'tcp:80'],
  ['S3', '127.0.1.3', 'RS3', 'tcp:80'],
  ['S4', '127.0.1.4', 'RS1', 'tcp:80'],
  ['S5', '127.0.1.5', 'RS2', 'tcp:80'],
  ['S6', '127.0.1.6', 'RS3', 'tcp:80'],
];

export const threeHosts = (): RecordFields[] => [['RS1', '0.40', '2', 'up'], ['RS2', '0.30', '2', 'up'], ['RS3', '0.10', '2', 'up']];

export const fourOds = (): RecordFields[] => [['OD1', '127.0.2.1', 'RS1'], ['OD2', '127.0.2.2', 'RS2'], ['OD3', '127.0.2.3', 'RS3'], ['OD3x', '127.0.2.4', 'RS3']];

/** The domains on each real server of that world, with their libvirt states. */
export const domainsByHost = (): [string, Map<string, string>][] => [
  ['RS1', new Map([['S1', 'running'], ['S4', 'running'], ['OD1', 'paused']])],
  ['RS2', new Map([['S2', 'running'], ['S5', 'running'], ['OD2', 'paused']])],
  ['RS3', new Map([['S3', 'running'], ['S6', 'running'], ['OD3', 'paused'], ['OD3x', 'paused']])],
];
