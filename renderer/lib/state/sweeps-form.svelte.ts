// The Sweeps form's fields as the user types them, checked as they change (sweep-plan.ts says how); problems show
// beside a field once it was changed or a start was tried, and problems the service reported stay until it changes.
import { planOf, type FieldErrors, type FieldKey } from '../../components/sweeps/sweep-plan.ts';

const stamp = (d: Date): string => {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${two(d.getMonth() + 1)}${two(d.getDate())}-${two(d.getHours())}${two(d.getMinutes())}${two(d.getSeconds())}`;
};

const AUTO_NAME = /^sweep-\d{8}-\d{6}$/;

/** The sweep form's fields as typed; `parsed` checks them as they change. */
export class SweepForm {
  name = $state(`sweep-${stamp(new Date())}`);
  r = $state('4, 8, 16');
  alpha = $state('8, 16, 32');
  lr = $state('2e-4');
  dropout = $state('0');
  targets = $state('all-linear');
  mode = $state<'fused' | 'sequential'>('fused');
  steps = $state('50');
  microBatch = $state('4');
  maxLength = $state('512');
  evalFraction = $state('0.1');
  evalEvery = $state('10');
  seed = $state('42');
  halving = $state(false);
  rungs = $state('10, 25');
  keep = $state('0.5');
  /** A dataset of the store (by id), or undefined to use a typed file path. */
  datasetId = $state<number | undefined>(undefined);
  datasetPath = $state('');
  /** Where the trials' adapters go; empty = <dataDir>/sweeps/<name>. */
  output = $state('');
  /** Fields the user has changed: their problems show at once, the others' after a start is tried. */
  touched = $state<Partial<Record<FieldKey, boolean>>>({});
  attempted = $state(false);
  /** Problems the service reported for a field, until that field changes. */
  serviceErrors = $state<FieldErrors>({});

  readonly parsed = $derived(planOf(this));

  /** The problem to show beside a field, if any. */
  errorOf(key: FieldKey): string | undefined {
    const own = this.touched[key] || this.attempted ? this.parsed.errors[key] : undefined;
    return own ?? this.serviceErrors[key];
  }

  /** The user changed a field. */
  touch(key: FieldKey): void {
    this.touched[key] = true;
    if (this.serviceErrors[key] !== undefined) this.serviceErrors = { ...this.serviceErrors, [key]: undefined };
  }

  /** After a start: a fresh name for the next sweep (its folder must not be the last one's) unless the user chose one. */
  rename(): void {
    if (AUTO_NAME.test(this.name)) this.name = `sweep-${stamp(new Date())}`;
    this.attempted = false;
  }
}
