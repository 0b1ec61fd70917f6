import { describe, expect, it } from 'vitest';
import { AutopushProtocolError, decodeClientMessage, notificationMessage } from './codec.js';
import { Inflight } from './inflight.js';

const code = (text: string) => {
  try {
    decodeClientMessage(text);
    return 'ok';
  } catch (err) {
    return err instanceof AutopushProtocolError ? err.code : 'THREW';
  }
};

describe('autopush codec', () => {
  it('reads what Firefox sends', () => {
    expect(decodeClientMessage('{}')).toEqual({ messageType: 'ping' });
    expect(
      decodeClientMessage(
        '{"messageType":"hello","broadcasts":{"remote-settings/monitor_changes":"\\"1\\""},"use_webpush":true}',
      ),
    ).toEqual({
      messageType: 'hello',
      useWebpush: true,
      broadcasts: { 'remote-settings/monitor_changes': '"1"' },
    });
    const ch = '0f5e6f0a-3b7c-4c3e-9a1e-1d2c3b4a5e6f';
    expect(decodeClientMessage(`{"channelID":"${ch}","messageType":"register","key":"BA=="}`)).toEqual({
      messageType: 'register',
      channelID: ch,
      key: 'BA==',
    });
    expect(
      decodeClientMessage(
        `{"messageType":"ack","updates":[{"channelID":"${ch}","version":"v1","code":100}]}`,
      ),
    ).toEqual({ messageType: 'ack', updates: [{ channelID: ch, version: 'v1', code: 100 }] });
    expect(decodeClientMessage('{"messageType":"nack","version":"v1","code":301}')).toEqual({
      messageType: 'nack',
      version: 'v1',
      code: 301,
    });
  });

  it('refuses what is not autopush, with a code', () => {
    expect(code('nope')).toBe('BAD_JSON');
    expect(code('[]')).toBe('BAD_MESSAGE');
    expect(code('{"messageType":5}')).toBe('BAD_MESSAGE');
    expect(code('{"messageType":"x"}')).toBe('UNKNOWN_MESSAGE_TYPE');
    expect(code('{"messageType":"register","channelID":"../../etc"}')).toBe('BAD_MESSAGE');
    expect(code('{"messageType":"ack","updates":{}}')).toBe('BAD_MESSAGE');
    expect(code(`{"messageType":"ack","updates":${JSON.stringify(Array(300).fill({}))}}`)).toBe(
      'BAD_MESSAGE',
    );
    expect(code('{"messageType":"hello","uaid":7}')).toBe('BAD_MESSAGE');
    expect(code(`{"messageType":"hello","pad":"${'x'.repeat(20_000)}"}`)).toBe('BAD_MESSAGE');
  });

  it('writes notifications with the aes128gcm encoding header', () => {
    expect(JSON.parse(notificationMessage({ channelID: 'c', version: 'v', ttl: 60, data: 'AAA' }))).toEqual({
      messageType: 'notification',
      channelID: 'c',
      version: 'v',
      ttl: 60,
      data: 'AAA',
      headers: { encoding: 'aes128gcm' },
    });
  });
});

describe('Inflight', () => {
  it('moves the cursor to the seq before the oldest unacknowledged message', () => {
    const f = new Inflight(4);
    f.sent('a', 5);
    f.skipped(6);
    f.sent('b', 7);
    f.sent('c', 8);
    expect(f.advance()).toBeUndefined();
    expect(f.ack('b')).toBe(true);
    expect(f.advance()).toBeUndefined(); // a is still out
    expect(f.ack('a')).toBe(true);
    expect(f.advance()).toBe(7);
    expect(f.ack('a')).toBe(false);
    expect(f.ack('forged')).toBe(false);
    expect(f.ack('c')).toBe(true);
    expect(f.advance()).toBe(8);
    f.skipped(9);
    expect(f.advance()).toBe(9);
    expect(f.size).toBe(0);
  });
});
