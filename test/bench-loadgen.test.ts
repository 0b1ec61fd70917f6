import { describe, expect, it } from 'vitest';
import { quickMsg } from '../bench/loadgen/clients.js';

/** The load generator's msg-frame reader must agree with a full JSON parse, or decline. */
describe('bench load generator: quickMsg', () => {
  const frame = (extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      t: 'msg',
      id: 'm_01',
      stream: 't:bench',
      seq: 4_294_967_301,
      ts: 1,
      exp: 2,
      data: { r: 3, t: 1733.5, p: 'x"}' },
      ...extra,
    });

  it('reads stream, seq and data as a full parse does', () => {
    const full = JSON.parse(frame());
    expect(quickMsg(frame())).toEqual({ t: 'msg', stream: full.stream, seq: full.seq, data: full.data });
  });

  it('declines frames it cannot read exactly (a field after data, other frames, broken data)', () => {
    expect(quickMsg(frame({ urgency: 'high' }))).toBeUndefined();
    expect(quickMsg('{"t":"welcome","session":"s"}')).toBeUndefined();
    expect(quickMsg('{"t":"msg","id":"a","stream":"d:x","seq":1,"ts":1,"data":{"r":}}')).toBeUndefined();
    expect(quickMsg('{"t":"msg","id":"a","stream":"d:x","seq":"x","ts":1,"data":{}}')).toBeUndefined();
  });
});
