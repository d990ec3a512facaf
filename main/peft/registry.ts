import { PeftError } from './errors.ts';
import { adaloraMethod } from './adalora.ts';
import { adapterFusionMethod } from './adapter-fusion.ts';
import { bitfitMethod } from './bitfit.ts';
import { bottleneckMethod } from './bottleneck.ts';
import { deltaLoraMethod } from './delta-lora.ts';
import { fullFinetuneMethod } from './full-finetune.ts';
import { ia3Method } from './ia3.ts';
import { loraMethod } from './lora.ts';
import { longLoraMethod } from './longlora.ts';
import { loraDropMethod } from './lora-drop.ts';
import { selectiveMethod } from './selective.ts';
import { veraMethod } from './vera.ts';
import { pTuningMethod } from './p-tuning.ts';
import { prefixTuningMethod } from './prefix-tuning.ts';
import { promptTuningMethod } from './prompt-tuning.ts';
import type { PeftMethod } from './method.ts';

/** Every method the engine has, by PEFT's peft_type. */
const METHODS = [loraMethod, adaloraMethod, veraMethod, deltaLoraMethod, loraDropMethod, ia3Method, bitfitMethod, selectiveMethod, fullFinetuneMethod, bottleneckMethod, adapterFusionMethod, longLoraMethod, promptTuningMethod, pTuningMethod, prefixTuningMethod] as unknown as readonly PeftMethod<never>[];

export const peftMethods = (): readonly PeftMethod<never>[] => METHODS;

export const peftMethod = (peftType: string): PeftMethod<never> => {
  const m = METHODS.find((x) => x.peftType === peftType);
  if (!m) throw new PeftError(`peft_type '${peftType}' is not supported; supported: ${METHODS.map((x) => x.peftType).join(', ')}`);
  return m;
};
