/**
 * Runs `fn` on the microtask queue. `queueMicrotask` where the engine has it, else a resolved
 * promise's callback (Hermes without React Native's polyfills, QuickJS): the same queue.
 */
export const microtask: (fn: () => void) => void =
  typeof queueMicrotask === 'function'
    ? (fn) => queueMicrotask(fn)
    : (fn) => {
        void Promise.resolve().then(fn);
      };
