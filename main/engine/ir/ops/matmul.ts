import type { Tensor } from '../graph.ts';
import { dimEq, tryBroadcast } from '../shape.ts';
import { describe, expectCount, expectFloat, sameDtype } from './helpers.ts';
import { registerOp } from './registry.ts';
import { mul } from './elementwise.ts';
import { transposeLast } from './shape-ops.ts';

export const matmul = (a: Tensor, b: Tensor, name?: string): Tensor => a.g.apply1('MatMul', [a, b], {}, { name });

export interface GemmOptions {
  readonly transA?: boolean;
  readonly transB?: boolean;
  readonly alpha?: number;
  readonly beta?: number;
  readonly name?: string;
}
/** alpha·op(A)·op(B) + beta·C for 2-D A and B; the transposes are free (no copy of a frozen weight). */
export const gemm = (a: Tensor, b: Tensor, c: Tensor | undefined, o: GemmOptions = {}): Tensor =>
  a.g.apply1(
    'Gemm',
    c ? [a, b, c] : [a, b],
    { transA: o.transA ? 1 : 0, transB: o.transB ? 1 : 0, alpha: o.alpha ?? 1, beta: o.beta ?? 1 },
    { name: o.name },
  );

registerOp({
  type: 'MatMul',
  infer: (inputs, _attrs, ctx) => {
    expectCount(inputs, 2, 2, ctx);
    const [a, b] = inputs as [typeof inputs[0] & object, typeof inputs[0] & object];
    expectFloat(a, ctx);
    const dtype = sameDtype(inputs, ctx);
    if (a.shape.length < 2 || b.shape.length < 2) ctx.fail(`needs rank ≥ 2 operands, got ${describe(a)} and ${describe(b)}`);
    const k = a.shape[a.shape.length - 1]!;
    if (!dimEq(k, b.shape[b.shape.length - 2]!)) ctx.fail(`inner dims differ: ${describe(a)} × ${describe(b)}`);
    const batch =
      tryBroadcast(a.shape.slice(0, -2), b.shape.slice(0, -2)) ??
      ctx.fail(`batch dims do not broadcast: ${describe(a)} × ${describe(b)}`);
    return [{ dtype, shape: [...batch, a.shape[a.shape.length - 2]!, b.shape[b.shape.length - 1]!] }];
  },
  vjp: ({ x: [a, b], gy: [gy], needs }) => [
    needs[0] ? matmul(gy!, transposeLast(b!)) : undefined,
    needs[1] ? matmul(transposeLast(a!), gy!) : undefined,
  ],
});

registerOp({
  type: 'Gemm',
  floatAttrs: ['alpha', 'beta'],
  infer: (inputs, attrs, ctx) => {
    expectCount(inputs, 2, 3, ctx);
    const [a, b, c] = inputs;
    expectFloat(a!, ctx);
    const dtype = sameDtype(inputs, ctx);
    if (a!.shape.length !== 2 || b!.shape.length !== 2) ctx.fail(`needs 2-D A and B, got ${describe(a!)} and ${describe(b!)}`);
    const [m, ka] = attrs.transA ? [a!.shape[1]!, a!.shape[0]!] : [a!.shape[0]!, a!.shape[1]!];
    const [kb, n] = attrs.transB ? [b!.shape[1]!, b!.shape[0]!] : [b!.shape[0]!, b!.shape[1]!];
    if (!dimEq(ka, kb)) {
      ctx.fail(`inner dims differ: ${describe(a!)}${attrs.transA ? 'ᵀ' : ''} × ${describe(b!)}${attrs.transB ? 'ᵀ' : ''}`);
    }
    if (c && !tryBroadcast([m, n], c.shape)?.every((d, i) => dimEq(d, [m, n][i]!))) {
      ctx.fail(`C ${describe(c)} does not broadcast to [${m}, ${n}]`);
    }
    return [{ dtype, shape: [m, n] }];
  },
  vjp: ({ x: [a, b], gy: [gy], needs, attrs }) => {
    const alpha = Number(attrs.alpha ?? 1);
    const beta = Number(attrs.beta ?? 1);
    const tA = Boolean(attrs.transA);
    const tB = Boolean(attrs.transB);
    // With opA = tA ? Aᵀ : A (same for B): d opA = gy·opBᵀ, d opB = opAᵀ·gy.
    const dA = !needs[0]
      ? undefined
      : tA
        ? gemm(b!, gy!, undefined, { transA: tB, transB: true, alpha })
        : gemm(gy!, b!, undefined, { transB: !tB, alpha });
    const dB = !needs[1]
      ? undefined
      : tB
        ? gemm(gy!, a!, undefined, { transA: true, transB: tA, alpha })
        : gemm(a!, gy!, undefined, { transA: !tA, alpha });
    const dC = needs[2] ? (beta === 1 ? gy : mul(gy!, beta)) : undefined;
    return [dA, dB, dC];
  },
});
