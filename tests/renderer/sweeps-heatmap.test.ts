// The Heatmap component alone, for a given set of trials: values printed and carried in data-value, the best cell
// starred, pruned and unfinished cells shown as such (no value), colours from the lowest loss to the highest, and
// several trials on one r × alpha pair showing their best.
import { fireEvent, render, screen } from '@testing-library/svelte';
import { describe, expect, it, vi } from 'vitest';
import Heatmap from '../../renderer/components/sweeps/Heatmap.svelte';
import { heatColour, heatmapOf, type HeatmapTrial } from '../../renderer/components/sweeps/heatmap.ts';

const trials: HeatmapTrial[] = [
  { ordinal: 0, r: 4, alpha: 8, status: 'completed', objective: 2.0 },
  { ordinal: 1, r: 4, alpha: 8, status: 'completed', objective: 1.8 }, // same pair, another lr: the cell shows 1.8
  { ordinal: 2, r: 4, alpha: 16, status: 'completed', objective: 1.5 },
  { ordinal: 3, r: 8, alpha: 8, status: 'pruned', prunedAtStep: 2, evalLoss: 2.5 },
  { ordinal: 4, r: 8, alpha: 16, status: 'completed', objective: 3.0 },
  { ordinal: 5, r: 16, alpha: 8, status: 'running' },
  { ordinal: 6, r: 16, alpha: 16, status: 'queued' },
];

const cell = (r: number, alpha: number): HTMLElement => {
  const found = screen.getAllByTestId('heatmap-cell').find((c) => c.dataset.r === String(r) && c.dataset.alpha === String(alpha));
  if (!found) throw new Error(`no cell r=${r} alpha=${alpha}`);
  return found;
};

describe('Heatmap', () => {
  it('prints each finished cell’s eval loss, stars the best, and shows pruned and unfinished cells without a value', () => {
    render(Heatmap, { matrix: heatmapOf(trials, 2) });
    const heatmap = screen.getByTestId('heatmap');
    expect([...heatmap.querySelectorAll('thead th')].map((th) => th.textContent)).toEqual(['r \\ alpha', '8', '16']);
    expect([...heatmap.querySelectorAll('tbody th')].map((th) => th.textContent)).toEqual(['4', '8', '16']);
    expect(screen.getAllByTestId('heatmap-cell')).toHaveLength(6);

    expect(cell(4, 8).dataset.value).toBe('1.8');
    expect(cell(4, 8).textContent).toBe('1.8000');
    expect(cell(4, 16).dataset.value).toBe('1.5');
    expect(cell(4, 16).dataset.best).toBe('true');
    expect(cell(4, 16).textContent).toContain('★');
    expect(screen.getAllByTestId('heatmap-cell').filter((c) => c.dataset.best)).toHaveLength(1);

    const pruned = cell(8, 8);
    expect(pruned.dataset.status).toBe('pruned');
    expect(pruned.dataset.value).toBeUndefined();
    expect(pruned.textContent).toBe('pruned @ 2');
    expect(pruned.title).toContain('pruned by successive halving at step 2, eval loss 2.5000');
    expect(pruned.classList.contains('pruned')).toBe(true);

    for (const [r, alpha, status] of [[16, 8, 'running'], [16, 16, 'queued']] as const) {
      expect(cell(r, alpha).dataset.status).toBe(status);
      expect(cell(r, alpha).dataset.value).toBeUndefined();
      expect(cell(r, alpha).style.backgroundColor).toBe('');
    }
  });

  it('colours from the lowest eval loss (bright) to the highest (dark), with the range in the legend', () => {
    const { container } = render(Heatmap, { matrix: heatmapOf(trials, 2) });
    expect(cell(4, 16).style.backgroundColor).toBe(heatColour(0));
    expect(cell(8, 16).style.backgroundColor).toBe(heatColour(1));
    // 1.8 sits a fifth of the way from 1.5 to 3.0.
    expect(cell(4, 8).style.backgroundColor).toBe(heatColour(0.2));
    expect(new Set([heatColour(0), heatColour(0.2), heatColour(1)]).size).toBe(3);
    expect(heatColour(0)).toBe('rgb(253, 231, 37)');
    expect(heatColour(1)).toBe('rgb(68, 1, 84)');
    expect(cell(4, 16).style.color).toBe('rgb(17, 17, 17)');
    expect(cell(8, 16).style.color).toBe('rgb(255, 255, 255)');
    expect(container.querySelector('.legend')!.textContent).toContain('1.5000');
    expect(container.querySelector('.legend')!.textContent).toContain('3.0000');
  });

  it('hands a picked cell’s trial to onPick (the best of its trials)', async () => {
    const onPick = vi.fn();
    render(Heatmap, { matrix: heatmapOf(trials, 2), onPick });
    await fireEvent.click(cell(4, 8).querySelector('button')!);
    await fireEvent.click(cell(8, 8).querySelector('button')!);
    expect(onPick.mock.calls).toEqual([[1], [3]]);
  });

  it('says the cells fill as trials finish while none has', () => {
    const { container } = render(Heatmap, { matrix: heatmapOf(trials.map((t) => ({ ...t, status: 'queued', objective: undefined })), undefined) });
    expect(screen.getAllByTestId('heatmap-cell').every((c) => c.dataset.value === undefined && !c.dataset.best)).toBe(true);
    expect(container.querySelector('.legend')!.textContent).toContain('cells fill as trials finish');
  });
});
