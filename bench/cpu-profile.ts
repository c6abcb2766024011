// Preload for benches (node --require, allowed in NODE_OPTIONS where --cpu-prof is not): profiles
// the whole process with the inspector's sampling profiler and writes a .cpuprofile (Chrome
// DevTools format, same as --cpu-prof) into $CPU_PROF_DIR when the process exits normally.
// SIGWINCH (not SIGUSR2: Node-RED exits on it) marks the measured window: the first one restarts the profiler (start-up and warm-up
// left out), the second one writes the profile at once (shutdown left out).
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
  let marks = 0;
  let written = false;
  const write = () => {
    if (written) return;
    written = true;
    session.post('Profiler.stop', (err, res) => {
      if (err) return;
      fs.mkdirSync(dir, { recursive: true });
      const name = `${process.env.P2P_HA_VM_NAME ?? 'node'}-${process.pid}.cpuprofile`;
      fs.writeFileSync(path.join(dir, name), JSON.stringify(res.profile));
    });
  };
  process.on('SIGWINCH', () => {
    marks += 1;
    if (marks === 1) {
      session.post('Profiler.stop');
      session.post('Profiler.start');
    } else write();
  });
  process.once('exit', write);
}
