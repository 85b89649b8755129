/**
 * `pass` run one at a time: a call while a pass runs gets that pass's promise and asks for one more pass after it
 * (however many calls came), so nothing that changed during a pass is missed and passes never pile up. The extra
 * pass's failure is dropped: its callers already have the earlier pass's outcome, and the next call runs again.
 */
export function coalesced<T>(pass: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  let again = false;
  const run = (): Promise<T> => {
    if (running) {
      again = true;
      return running;
    }
    running = pass().finally(() => {
      running = undefined;
      if (again) {
        again = false;
        void run().catch(() => undefined);
      }
    });
    return running;
  };
  return run;
}
