/** A per-process memo: tests build each large object (an 11 MB tokenizer.json, a model) once. */
export const memo = <T>(): ((key: string, build: () => T) => T) => {
  const cache = new Map<string, T>();
  return (key, build) => {
    let value = cache.get(key);
    if (value === undefined) {
      value = build();
      cache.set(key, value);
    }
    return value;
  };
};
