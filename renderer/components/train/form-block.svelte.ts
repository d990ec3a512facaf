// One block of the run config as a form (a method's fields, the training block, the dataset block): what each input
// holds, which the user touched, and the block it reads as.
import { formValueOf, readField, type ConfigField, type ConfigValue, type FormValue } from './config-form.ts';

export interface BlockReading {
  /** The fields to send (left-out ones get the parser's defaults). */
  readonly block: Record<string, ConfigValue>;
  /** Inputs that do not read as their kind, by field name. */
  readonly errors: Readonly<Record<string, string>>;
}

export class FormBlock {
  values = $state<Record<string, FormValue>>({});
  touched = $state<Record<string, boolean>>({});

  constructor(
    readonly fields: readonly ConfigField[],
    /**
     * 'all': every filled field is sent (the training block: explicit is clearer in the stored config);
     * 'changed': required and touched fields only, so a default that depends on another field (a bottleneck's
     * activation follows its architecture) stays the parser's.
     */
    private readonly send: 'all' | 'changed',
  ) {
    this.reset();
  }

  reset(): void {
    this.values = Object.fromEntries(this.fields.map((f) => [f.name, formValueOf(f, f.default)]));
    this.touched = {};
  }

  set(name: string, value: FormValue): void {
    this.values[name] = value;
    this.touched[name] = true;
  }

  /** Sets a field as code does (a default that follows another setting): not counted as the user's change. */
  preset(name: string, value: ConfigValue): void {
    const field = this.fields.find((f) => f.name === name);
    if (field && !this.touched[name]) this.values[name] = formValueOf(field, value);
  }

  field(name: string): ConfigField | undefined {
    return this.fields.find((f) => f.name === name);
  }

  read(): BlockReading {
    const block: Record<string, ConfigValue> = {};
    const errors: Record<string, string> = {};
    for (const f of this.fields) {
      if (this.send === 'changed' && !f.required && !this.touched[f.name]) continue;
      const r = readField(f, this.values[f.name]);
      if (r.error !== undefined) errors[f.name] = r.error;
      else if (r.value !== undefined) block[f.name] = r.value;
    }
    return { block, errors };
  }
}
