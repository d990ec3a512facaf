export * from './linear.ts';
export * from './rmsnorm.ts';
export * from './swiglu.ts';
export * from './attention.ts';
export * from './loss.ts';
