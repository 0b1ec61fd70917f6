import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { wakeOptionsOf } from './wake-options.js';

const dir = mkdtempSync(join(tmpdir(), 'pushwire-wake-flags-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const base = { wakeAfter: 5, wakeMaxPerHour: 12 };

describe('serve wake flags', () => {
  it('are off without a provider', () => {
    expect(wakeOptionsOf(base)).toBeUndefined();
  });

  it('read the APNs key and want its id and team together', () => {
    const key = join(dir, 'AuthKey.p8');
    writeFileSync(key, '-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n');
    expect(() => wakeOptionsOf({ ...base, apnsKey: key })).toThrow(/go together/);
    expect(() =>
      wakeOptionsOf({ ...base, apnsKey: join(dir, 'missing.p8'), apnsKeyId: 'K', apnsTeamId: 'T' }),
    ).toThrow(/^--apns-key \(apns.key\): cannot read .*missing.p8: ENOENT/);
    const o = wakeOptionsOf({
      ...base,
      apnsKey: key,
      apnsKeyId: 'K',
      apnsTeamId: 'T',
      apnsTopic: 'com.x',
      apnsSandboxUrl: 'https://sandbox.example',
      wakeAfter: 2,
      wakeRepeatAfter: 60,
    });
    expect(o).toMatchObject({
      afterSeconds: 2,
      repeatAfterSeconds: 60,
      apns: { keyId: 'K', teamId: 'T', topic: 'com.x', sandboxUrl: 'https://sandbox.example' },
    });
    expect(o?.apns?.key).toContain('BEGIN PRIVATE KEY');
  });

  it('read the FCM service account and name what it lacks', () => {
    const sa = join(dir, 'sa.json');
    writeFileSync(sa, JSON.stringify({ project_id: 'p', client_email: 'e@p' }));
    expect(() => wakeOptionsOf({ ...base, fcmServiceAccount: sa })).toThrow(/private_key/);
    writeFileSync(sa, JSON.stringify({ project_id: 'p', client_email: 'e@p', private_key: 'k' }));
    expect(wakeOptionsOf({ ...base, fcmServiceAccount: sa, fcmUrl: 'https://f' })).toMatchObject({
      fcm: { serviceAccount: { project_id: 'p' }, url: 'https://f' },
    });
    expect(() => wakeOptionsOf({ ...base, fcmServiceAccount: join(dir, 'missing.json') })).toThrow(
      /cannot read/,
    );
  });
});
