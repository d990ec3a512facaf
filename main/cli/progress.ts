import type { TrainerEvent } from '../train/trainer.ts';

const bar = (done: number, total: number, width = 24): string => {
  const filled = Math.round((done / Math.max(1, total)) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
};

const duration = (seconds: number): string => {
  if (!Number.isFinite(seconds)) return '?';
  const m = Math.floor(seconds / 60);
  return m > 0 ? `${m}m${String(Math.round(seconds % 60)).padStart(2, '0')}s` : `${Math.round(seconds)}s`;
};

/** One progress-bar line for a training step: step, loss, lr, grad norm, tok/s, ETA, memory. */
export const progressLine = (e: Extract<TrainerEvent, { type: 'step' }>): string =>
  `${bar(e.step, e.totalSteps)} ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(4)} lr ${e.lr.toExponential(2)} |g| ${e.gradNorm.toFixed(3)} ` +
  `${e.tokensPerSecond.toFixed(0)} tok/s ETA ${duration(e.etaSeconds)} RSS ${(e.rssBytes / 2 ** 30).toFixed(2)} GiB`;
