import { describe, expect, it } from 'vitest';
import { StorageError } from './errors.js';
import { asyncStorage, wireAppState } from './react-native.js';

describe('asyncStorage', () => {
  it('saves and loads the state as JSON under its key', async () => {
    const map = new Map<string, string>();
    const store = asyncStorage({
      getItem: async (k) => map.get(k) ?? null,
      setItem: async (k, v) => void map.set(k, v),
    });
    expect(await store.load()).toBeUndefined();
    await store.save({ cursors: { 'd:x': 4 }, dedupe: ['m1'], credentials: { deviceId: 'x', token: 't' } });
    expect(JSON.parse(map.get('pushwire') ?? '')).toMatchObject({ cursors: { 'd:x': 4 } });
    expect(await store.load()).toEqual({
      cursors: { 'd:x': 4 },
      dedupe: ['m1'],
      credentials: { deviceId: 'x', token: 't' },
    });
  });

  it('turns failures into StorageError', async () => {
    const store = asyncStorage({
      getItem: async () => {
        throw new Error('locked');
      },
      setItem: async () => {
        throw new Error('full');
      },
    });
    await expect(store.load()).rejects.toBeInstanceOf(StorageError);
    await expect(store.save({ cursors: {}, dedupe: [] })).rejects.toBeInstanceOf(StorageError);
  });
});

describe('wireAppState', () => {
  it('background mode follows AppState, and the disposer removes the listener', () => {
    const calls: boolean[] = [];
    let listener: ((s: string) => void) | undefined;
    let removed = false;
    const dispose = wireAppState(
      { setBackground: (on) => calls.push(on) },
      {
        currentState: 'background',
        addEventListener: (_type, fn) => {
          listener = fn;
          return {
            remove: () => {
              removed = true;
            },
          };
        },
      },
    );
    listener?.('active');
    listener?.('inactive');
    dispose();
    expect(calls).toEqual([true, false, true]);
    expect(removed).toBe(true);
  });
});
