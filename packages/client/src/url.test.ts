import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { endpoints } from './url.js';

describe('endpoints', () => {
  it.each([
    ['http://localhost:8080', 'ws://localhost:8080/v1/connect', 'http://localhost:8080'],
    ['https://push.example.com', 'wss://push.example.com/v1/connect', 'https://push.example.com'],
    ['ws://10.0.0.1:9000/', 'ws://10.0.0.1:9000/v1/connect', 'http://10.0.0.1:9000'],
    ['wss://push.example.com/v1/connect', 'wss://push.example.com/v1/connect', 'https://push.example.com'],
    ['https://example.com/push/', 'wss://example.com/push/v1/connect', 'https://example.com/push'],
    ['http://[::1]:8080/v1/connect/?x=1', 'ws://[::1]:8080/v1/connect', 'http://[::1]:8080'],
    // Parsed without `URL` (React Native's throws): case, default ports, user info as URL does.
    [
      'HTTPS://Push.Example.COM:443/App',
      'wss://push.example.com/App/v1/connect',
      'https://push.example.com/App',
    ],
    ['ws://h:80', 'ws://h/v1/connect', 'http://h'],
    ['wss://u:p@h:8443#x', 'wss://h:8443/v1/connect', 'https://h:8443'],
  ])('%s', (url, ws, http) => {
    expect(endpoints(url)).toEqual({ ws, http });
  });

  it('refuses other schemes and garbage', () => {
    expect(() => endpoints('ftp://x')).toThrow(ConfigError);
    expect(() => endpoints('not a url')).toThrow(ConfigError);
    expect(() => endpoints('http://h:99999')).toThrow(ConfigError);
    expect(() => endpoints('http://')).toThrow(ConfigError);
  });
});
