// The dispatcher without a transport: payload validation names the field, errors are typed, results come back
// with their request's id.
import { afterEach, describe, expect, it } from 'vitest';
import type { ResponseMessage } from '../../main/service/api-contract.ts';
import { ApiServer } from '../../main/service/api-server.ts';
import { IN_MEMORY, openStore, type Store } from '../../main/store/index.ts';

let store: Store | undefined;
afterEach(() => store?.close());

const connection = () => {
  store = openStore(IN_MEMORY);
  const sent: ResponseMessage[] = [];
  const c = new ApiServer({ store }).connect((m) => sent.push(m));
  const ask = async (message: unknown): Promise<ResponseMessage> => {
    const before = sent.length;
    await c.receive(message);
    return sent.slice(before).at(-1)!;
  };
  return { c, sent, ask };
};

const errorOf = (m: ResponseMessage) => {
  if (m.type !== 'error') throw new Error(`expected an error, got ${JSON.stringify(m)}`);
  return m.error;
};

describe('API dispatcher', () => {
  it('rejects a malformed payload with an error naming the field', async () => {
    const { ask } = connection();
    const wrongType = errorOf(await ask({ id: 'a', method: 'models.describe', params: { path: 42 } }));
    expect(wrongType).toMatchObject({ code: 'bad-request', field: 'params.path' });
    expect(wrongType.message).toMatch(/^params\.path: /);

    const missing = errorOf(await ask({ id: 'b', method: 'train.start', params: { config: { model: '/m', dataset: {}, method: {}, output: '/o' } } }));
    expect(missing).toMatchObject({ code: 'bad-request', field: 'params.config.dataset.path' });

    const nested = errorOf(await ask({ id: 'c', method: 'chat.sideBySide', params: { model: '/m', prompt: 'hi', sampling: { topP: 2 } } }));
    expect(nested.field).toBe('params.sampling.topP');

    const tooFew = errorOf(await ask({ id: 'd', method: 'runs.compare', params: { ids: [1] } }));
    expect(tooFew).toMatchObject({ field: 'params.ids' });
    expect(tooFew.message).toContain('at least 2');

    const badId = errorOf(await ask({ id: 'e', method: 'runs.show', params: { id: 1.5 } }));
    expect(badId).toMatchObject({ field: 'params.id' });
  });

  it('rejects a malformed message: not JSON, no id, an unknown method', async () => {
    const { ask } = connection();
    const notJson = await ask('{"id": ');
    expect(notJson).toMatchObject({ id: null, type: 'error', error: { code: 'bad-request' } });
    expect(errorOf(notJson).message).toMatch(/JSON/);
    expect(errorOf(await ask({ method: 'runs.list' }))).toMatchObject({ field: 'id' });
    const unknown = await ask({ id: 'x', method: 'runs.destroy' });
    expect(unknown).toMatchObject({ id: 'x', error: { field: 'method' } });
    expect(errorOf(unknown).message).toContain('runs.list');
  });

  it('answers store requests with results, and an unknown run as bad input', async () => {
    const { ask } = connection();
    expect(await ask(JSON.stringify({ id: '1', method: 'runs.list' }))).toEqual({ id: '1', type: 'result', result: [] });
    expect(await ask({ id: '2', method: 'adapters.list', params: {} })).toEqual({ id: '2', type: 'result', result: [] });
    const none = errorOf(await ask({ id: '3', method: 'runs.show', params: { id: 99 } }));
    expect(none.code).toBe('bad-input');
    expect(none.message).toContain('99');
  });

  it('reports an unusable model as bad input, naming the path', async () => {
    const { ask } = connection();
    const e = errorOf(await ask({ id: 'm', method: 'models.describe', params: { path: '/nonexistent/model-folder' } }));
    expect(e).toMatchObject({ code: 'bad-input' });
    expect(e.message).toContain('/nonexistent/model-folder');
  });

  it('finds nothing to cancel for an unknown request id', async () => {
    const { ask } = connection();
    expect(await ask({ id: 'k', method: 'jobs.cancel', params: { requestId: 'nope' } })).toEqual({ id: 'k', type: 'result', result: { found: false } });
  });
});
