// Chat sessions through the real dispatcher (ApiServer) on a tiny model: a session keeps its model and graphs across
// prompts; switching a column's LoRA adapter — another rank too — swaps tensors (no model reopened, no ORT session
// created, counted through the sessions' hooks) and answers exactly as a session freshly opened with that adapter;
// a LoRA adapting modules the shared graph lacks rebuilds that graph only; asking streams per column and can be
// cancelled; a bad adapter is an error naming its folder; sessions are released on close, replace, and idleness.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { PassKind } from '../../main/generate/side-by-side.ts';
import { buildLogitsGraph } from '../../main/models/causal-lm.ts';
import { openModel } from '../../main/models/open-model.ts';
import type { ApiError, ApiEvents, ApiInput, ApiResults, ResponseMessage } from '../../main/service/api-contract.ts';
import { ApiServer } from '../../main/service/api-server.ts';
import { installChatSessions, type ChatSessions } from '../../main/service/chat-sessions.ts';
import { IN_MEMORY, openStore, type Store } from '../../main/store/index.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { METHOD_CASES } from '../generate/method-adapter-fixtures.ts';
import { randomAdapter } from './adapter-fixtures.ts';

const llama = tinyModelDir('llama3');
const PROMPT = 'Name a river.';
const GREEDY = { maxNewTokens: 8 };

type ChatMethod = 'chat.open' | 'chat.setColumn' | 'chat.removeColumn' | 'chat.ask' | 'chat.close' | 'jobs.cancel';
interface Reply<M extends ChatMethod> {
  readonly result?: ApiResults[M];
  readonly error?: ApiError;
  readonly events: (M extends keyof ApiEvents ? ApiEvents[M] : never)[];
}

describe.skipIf(!llama && !oracleRequired())('chat sessions through the API', () => {
  let root: string;
  const dirs: Record<string, string> = {};
  let store: Store;
  let sessions: ChatSessions;
  let modelOpens: number;
  let passes: PassKind[];
  let send: (m: unknown) => Promise<void>;
  const replies = new Map<string, ResponseMessage[]>();
  let counter = 0;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'chat-sessions-'));
    dirs.a = randomAdapter(llama!, join(root, 'a'), {}, 1);
    // Another rank, same modules: still a tensor swap (ranks are symbolic dims of the slot graph).
    dirs.b = randomAdapter(llama!, join(root, 'b'), { r: 8, lora_alpha: 16 }, 2);
    // Modules the first graph has no branch for: the slot graph is rebuilt.
    dirs.c = randomAdapter(llama!, join(root, 'c'), { target_modules: ['o_proj', 'gate_proj'] }, 3);
    const model = openModel(llama!).model;
    dirs.ia3 = METHOD_CASES.find((x) => x.name === 'IA3')!.make({ model, modelDir: llama!, graph: buildLogitsGraph(model), dir: join(root, 'ia3') }).dir;
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  /** The store's chat sessions, with these limits and counting hooks (the ones it had are closed). */
  const install = async (o: { maxSessions?: number; idleMs?: number } = {}) => {
    sessions = await installChatSessions(store, {
      ...o,
      session: { threads: 1 },
      openModel: (path) => (modelOpens++, openModel(path)),
      onSession: (kind) => passes.push(kind),
    });
  };
  const setUp = async (o: { maxSessions?: number; idleMs?: number } = {}) => {
    store = openStore(IN_MEMORY);
    modelOpens = 0;
    passes = [];
    await install(o);
    const connection = new ApiServer({ store }).connect((m) => {
      if (m.id !== null) replies.set(m.id, [...(replies.get(m.id) ?? []), m]);
    });
    send = (m) => connection.receive(m);
  };
  afterEach(async () => {
    await sessions.closeAll();
    store.close();
  });

  /** Sends one request; resolves with its events and its result or error. `started` sees its id at once. */
  const request = async <M extends ChatMethod>(method: M, params: ApiInput<M>, started?: (id: string) => void): Promise<Reply<M>> => {
    const id = `${method}-${++counter}`;
    started?.(id);
    await send({ id, method, params });
    const messages = replies.get(id) ?? [];
    const events = messages.flatMap((m) => (m.type === 'event' ? [m.event] : [])) as Reply<M>['events'];
    const last = messages.at(-1)!;
    return { events, ...(last.type === 'result' ? { result: last.result as ApiResults[M] } : {}), ...(last.type === 'error' ? { error: last.error } : {}) };
  };
  const ok = <M extends ChatMethod>(r: Reply<M>): ApiResults[M] => {
    if (!r.result) throw new Error(`expected a result, got ${JSON.stringify(r.error)}`);
    return r.result;
  };
  const answersOf = async (sessionId: number, extra: Partial<ApiInput<'chat.ask'>> = {}) => ok(await request('chat.ask', { sessionId, prompt: PROMPT, sampling: GREEDY, ...extra })).answers.map((a) => a.text);
  /** What a session freshly opened with these columns answers (released after). */
  const fresh = async (adapters: (string | null)[]) => {
    const { sessionId } = ok(await request('chat.open', { model: llama!, columns: adapters.map((adapter) => ({ adapter })) }));
    const answers = await answersOf(sessionId);
    ok(await request('chat.close', { sessionId }));
    return answers;
  };

  it('switches a column between LoRA adapters of other ranks and targets without reopening the model', async () => {
    await setUp();
    const opened = ok(await request('chat.open', { model: llama!, columns: [{ adapter: null }, { adapter: dirs.a! }] }));
    expect(opened.columns.map((c) => [c.label, c.peftType, c.pass])).toEqual([['base', null, 'batched'], [dirs.a, 'LORA', 'batched']]);
    expect([modelOpens, passes]).toEqual([1, ['slot-graph']]);

    const asked = await request('chat.ask', { sessionId: opened.sessionId, prompt: PROMPT, sampling: GREEDY });
    const { answers } = ok(asked);
    expect(answers.map((a) => [a.tokens, a.finish])).toEqual([[8, 'length'], [8, 'length']]);
    // The streamed pieces are each column's answer.
    for (const [i, a] of answers.entries()) expect(asked.events.filter((e) => e.column === i).map((e) => e.text).join('')).toBe(a.text);
    const first = answers.map((a) => a.text);
    expect(first[0]).not.toBe(first[1]);

    const toB = ok(await request('chat.setColumn', { sessionId: opened.sessionId, column: 1, adapter: dirs.b! }));
    expect(toB.swap).toMatchObject({ column: 1, how: 'tensors' });
    expect(toB.columns[1]).toMatchObject({ adapter: dirs.b, pass: 'batched' });
    expect([modelOpens, passes.length]).toEqual([1, 1]);
    const swappedB = await answersOf(opened.sessionId);
    expect(swappedB[0]).toBe(first[0]);
    expect(swappedB[1]).not.toBe(first[1]);

    const toC = ok(await request('chat.setColumn', { sessionId: opened.sessionId, column: 1, adapter: dirs.c! }));
    expect(toC.swap.how).toBe('slot-graph');
    expect(toC.swap.reason).toMatch(/no branch for .*(o_proj|gate_proj)/);
    expect([modelOpens, passes]).toEqual([1, ['slot-graph', 'slot-graph']]);
    const swappedC = await answersOf(opened.sessionId);

    // A third column, added to the open session: a free slot of the graph, tensors only.
    const added = ok(await request('chat.setColumn', { sessionId: opened.sessionId, column: 2, adapter: dirs.a! }));
    expect([added.swap.how, added.columns.length, passes.length]).toEqual(['tensors', 3, 2]);
    expect(await answersOf(opened.sessionId)).toEqual([...swappedC, first[1]]);
    ok(await request('chat.close', { sessionId: opened.sessionId }));

    // Sessions opened afresh with those adapters answer the same.
    expect(await fresh([null, dirs.b!])).toEqual(swappedB);
    expect(await fresh([null, dirs.c!])).toEqual(swappedC);
    expect(modelOpens).toBe(3);
  });

  it('switches to and from an adapter of another method (its own graph) and back to the base', async () => {
    await setUp();
    const { sessionId } = ok(await request('chat.open', { model: llama!, columns: [{ adapter: dirs.a! }] }));
    const toIa3 = ok(await request('chat.setColumn', { sessionId, column: 0, adapter: dirs.ia3! }));
    expect([toIa3.swap.how, toIa3.columns[0]!.peftType, toIa3.columns[0]!.pass]).toEqual(['own-graph', 'IA3', 'own']);
    const ia3 = await answersOf(sessionId);
    // No column left in the slot graph: it is released; the base then needs its own graph.
    const toBase = ok(await request('chat.setColumn', { sessionId, column: 0, adapter: null }));
    expect([toBase.swap.how, toBase.columns[0]!.pass]).toEqual(['base-graph', 'own']);
    const base = await answersOf(sessionId);
    expect(base).not.toEqual(ia3);
    expect(modelOpens).toBe(1);
    expect(passes).toEqual(['slot-graph', 'own-graph', 'base-graph']);
    ok(await request('chat.close', { sessionId }));
    expect(await fresh([dirs.ia3!])).toEqual(ia3);
    expect(await fresh([null])).toEqual(base);
  });

  it('answers each column from its own conversation', async () => {
    await setUp();
    const hello = [{ role: 'user' as const, content: 'Hello.' }, { role: 'assistant' as const, content: 'Hi there.' }];
    const story = [{ role: 'user' as const, content: 'Tell me a story about dragons and castles.' }, { role: 'assistant' as const, content: 'Once upon a time, far away.' }];
    const { sessionId } = ok(await request('chat.open', { model: llama!, columns: [{ adapter: null }, { adapter: null }] }));
    const both = await answersOf(sessionId, { history: [hello, story], system: 'Be brief.' });
    const one = ok(await request('chat.open', { model: llama!, columns: [{ adapter: null }] }));
    const alone = async (history: typeof hello) => (await answersOf(one.sessionId, { history, system: 'Be brief.' }))[0];
    expect(both).toEqual([await alone(hello), await alone(story)]);
    expect(both[0]).not.toBe(both[1]);
    const wrongCount = await request('chat.ask', { sessionId, prompt: PROMPT, history: [hello], sampling: GREEDY });
    expect(wrongCount.error?.message).toContain('1 conversations for 2 columns');
  });

  it('stops an answer mid-stream on jobs.cancel', async () => {
    await setUp();
    const { sessionId } = ok(await request('chat.open', { model: llama!, columns: [{ adapter: null }, { adapter: dirs.a! }] }));
    let askId = '';
    const asking = request('chat.ask', { sessionId, prompt: PROMPT, sampling: { maxNewTokens: 2000 } }, (id) => (askId = id));
    // Cancel as soon as the first token has streamed.
    await vi.waitFor(() => expect(replies.get(askId)?.length ?? 0).toBeGreaterThan(0), { timeout: 60_000, interval: 5 });
    const cancel = request('jobs.cancel', { requestId: askId });
    const { answers } = ok(await asking);
    expect(ok(await cancel)).toEqual({ found: true });
    expect(answers.map((a) => a.finish)).toEqual(['aborted', 'aborted']);
    for (const a of answers) expect(a.tokens).toBeLessThan(2000);
    // The session still answers afterwards.
    expect((await answersOf(sessionId)).length).toBe(2);
  });

  it('names a bad adapter folder, and leaves the column as it was', async () => {
    await setUp();
    const missing = join(root, 'no-such-adapter');
    const atOpen = await request('chat.open', { model: llama!, columns: [{ adapter: null }, { adapter: missing }] });
    expect(atOpen.error).toMatchObject({ code: 'bad-input' });
    expect(atOpen.error!.message).toContain(missing);

    const { sessionId } = ok(await request('chat.open', { model: llama!, columns: [{ adapter: null }, { adapter: dirs.a! }] }));
    const before = await answersOf(sessionId);
    const atSwitch = await request('chat.setColumn', { sessionId, column: 1, adapter: missing });
    expect(atSwitch.error).toMatchObject({ code: 'bad-input' });
    expect(atSwitch.error!.message).toContain(missing);
    expect(await answersOf(sessionId)).toEqual(before);

    const tooMany = await request('chat.open', { model: llama!, columns: [dirs.a, dirs.b, dirs.c, dirs.ia3, dirs.a].map((adapter) => ({ adapter: adapter! })) });
    expect(tooMany.error).toMatchObject({ code: 'bad-request', field: 'params.columns' });
    const noColumn = await request('chat.setColumn', { sessionId, column: 7, adapter: null });
    expect(noColumn.error!.message).toContain('column 7 does not exist');
  });

  it('releases sessions on close, on replace (reusing the model), past the limit, and when idle', async () => {
    await setUp({ maxSessions: 2 });
    const columns = [{ adapter: null }];
    const first = ok(await request('chat.open', { model: llama!, columns }));
    expect(ok(await request('chat.close', { sessionId: first.sessionId }))).toEqual({ closed: true });
    expect(ok(await request('chat.close', { sessionId: first.sessionId }))).toEqual({ closed: false });
    const gone = await request('chat.ask', { sessionId: first.sessionId, prompt: PROMPT });
    expect(gone.error!.message).toMatch(`chat session ${first.sessionId} is not open`);

    const second = ok(await request('chat.open', { model: llama!, columns }));
    const third = ok(await request('chat.open', { model: llama!, columns: [{ adapter: dirs.a! }], replace: second.sessionId }));
    expect([third.modelOpened, modelOpens, sessions.open]).toEqual([false, 2, [third.sessionId]]);

    const fourth = ok(await request('chat.open', { model: llama!, columns }));
    const fifth = ok(await request('chat.open', { model: llama!, columns }));
    // At most two open: the least recently used (third) went.
    expect(sessions.open).toEqual([fourth.sessionId, fifth.sessionId]);

    // Unused for idleMs: released (a timer, not a speed threshold), and not while it answers.
    await install({ idleMs: 30 });
    const idle = ok(await request('chat.open', { model: llama!, columns }));
    const answered = await request('chat.ask', { sessionId: idle.sessionId, prompt: PROMPT, sampling: { maxNewTokens: 40 } });
    expect(ok(answered).answers[0]!.tokens).toBe(40);
    await vi.waitFor(() => expect(sessions.open).toEqual([]), { timeout: 10_000, interval: 20 });
    expect((await request('chat.ask', { sessionId: idle.sessionId, prompt: PROMPT })).error!.message).toContain('released after');
  });
});
