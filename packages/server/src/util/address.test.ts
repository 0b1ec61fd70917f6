import { describe, expect, it } from 'vitest';
import { AddressCounts, addressKey } from './address.js';

describe('addressKey', () => {
  it('keeps IPv4 (also mapped) and groups IPv6 by /64', () => {
    expect(addressKey('10.1.2.3')).toBe('10.1.2.3');
    expect(addressKey('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(addressKey('2001:db8:0:1:aaaa::1')).toBe('2001:db8:0:1::/64');
    expect(addressKey('2001:DB8:0:1:bbbb:cccc:dddd:eeee')).toBe('2001:db8:0:1::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey(undefined)).toBe('');
  });
});

describe('AddressCounts', () => {
  it('refuses past the bound per key and forgets keys back at zero', () => {
    const c = new AddressCounts(2);
    expect(c.take('a')).toBe(true);
    expect(c.take('a')).toBe(true);
    expect(c.take('a')).toBe(false);
    expect(c.take('b')).toBe(true);
    c.release('a');
    expect(c.take('a')).toBe(true);
    c.release('a');
    c.release('a');
    c.release('b');
    expect(c.size).toBe(0);
  });
});
