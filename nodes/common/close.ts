// Node-RED waits for each node's close before a redeploy or a stop goes on. A close must never
// hang on a silent peer or an SSH command: it finishes when its work is done or at a deadline,
// whichever comes first (all deadlines here are well within Node-RED's 15 s).
export function finishWithin(work: Promise<unknown>, deadlineMs: number, done: () => void): void {
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    clearTimeout(guard);
    done();
  };
  const guard = setTimeout(finish, deadlineMs);
  work.then(finish, finish);
}
