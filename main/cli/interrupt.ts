/**
 * Ctrl-C asks long work to stop at the end of its current step (`stopSoftly`, e.g. pause with a checkpoint); a second
 * Ctrl-C exits at once with 130. Returns the function that removes the handler.
 */
export const onInterrupt = (what: string, stopSoftly: () => void): (() => void) => {
  let interrupts = 0;
  const handler = () => {
    if (++interrupts > 1) process.exit(130);
    console.error(`\n${what} after this step (Ctrl-C again to stop now)…`);
    stopSoftly();
  };
  process.on('SIGINT', handler);
  return () => process.off('SIGINT', handler);
};
