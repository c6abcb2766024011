// Preload for benches (node --require, allowed in NODE_OPTIONS where --cpu-prof is not): profiles
// the whole process with the inspector's sampling profiler and writes a .cpuprofile (Chrome
// DevTools format, same as --cpu-prof) into $CPU_PROF_DIR when the process exits normally.
import * as fs from 'fs';
import * as inspector from 'inspector';
import * as path from 'path';

const dir = process.env.CPU_PROF_DIR;
if (dir) {
  const session = new inspector.Session();
  session.connect();
  // A same-thread session answers synchronously, so the profile can be taken in an exit handler.
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: Number(process.env.CPU_PROF_INTERVAL_US ?? 200) });
  session.post('Profiler.start');
  process.once('exit', () => {
    session.post('Profiler.stop', (err, res) => {
      if (err) return;
      fs.mkdirSync(dir, { recursive: true });
      const name = `${process.env.P2P_HA_VM_NAME ?? 'node'}-${process.pid}.cpuprofile`;
      fs.writeFileSync(path.join(dir, name), JSON.stringify(res.profile));
    });
  });
}
