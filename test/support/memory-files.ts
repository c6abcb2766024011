// The in-memory replica of the unit tests lives in lib/records/memory-files.ts (the rehearsal
// runs the backup plan over one); re-exported here for the tests.
export { MemoryFiles } from '../../lib/records/memory-files';
