import { once } from 'node:events';
import { createSecureServer, type Http2SecureServer, type IncomingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { exportPKCS8, generateKeyPair, type JWTPayload, jwtVerify } from 'jose';
import type { TestCertificates } from './tls.js';

/** One request a stand-in provider accepted for inspection. */
export interface ProviderRequest {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** Status it was answered with. */
  status: number;
  /** What the stand-in found wrong with it (a real provider would refuse it); empty when fine. */
  problems: string[];
}

export interface Scripted {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/**
 * APNs, FCM and Google's OAuth2 token endpoint standing in on one HTTP/2 TLS port (a throw-away
 * CA), checking what the real ones check: the APNs provider token (ES256 signature against the
 * key's public half, `kid`, `iss`, `iat` under an hour), `apns-topic`, `apns-push-type`,
 * `apns-priority`; the OAuth2 JWT-bearer assertion (RS256 against the service account's public
 * key, `iss`, `aud`, `scope`); FCM's bearer access token. Answers are scripted per device token.
 */
export class PushProviders {
  readonly apns: ProviderRequest[] = [];
  readonly fcm: ProviderRequest[] = [];
  readonly oauth: ProviderRequest[] = [];
  /** Device token → answers to give, in order; then 200. */
  readonly script = new Map<string, Scripted[]>();
  apnsKeyPem = '';
  serviceAccount = {
    project_id: 'demo-project',
    client_email: 'pushwire@demo-project.iam.gserviceaccount.com',
    private_key: '',
  };
  readonly keyId = 'ABC123DEFG';
  readonly teamId = 'TEAM123456';
  readonly topic = 'com.example.chat';
  private apnsPublic: CryptoKey | undefined;
  private saPublic: CryptoKey | undefined;
  private accessTokens = new Set<string>();
  private server: Http2SecureServer | undefined;
  url = '';

  async start(certs: TestCertificates): Promise<this> {
    const apns = await generateKeyPair('ES256', { extractable: true });
    this.apnsPublic = apns.publicKey;
    this.apnsKeyPem = await exportPKCS8(apns.privateKey);
    const sa = await generateKeyPair('RS256', { extractable: true });
    this.saPublic = sa.publicKey;
    this.serviceAccount.private_key = await exportPKCS8(sa.privateKey);
    this.server = createSecureServer({ cert: certs.cert, key: certs.key });
    this.server.on('stream', (stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        void this.handle(headers, Buffer.concat(chunks).toString('utf8')).then((r) => {
          stream.respond({ ':status': r.status, 'content-type': 'application/json', ...r.headers });
          stream.end(r.body === undefined ? '' : JSON.stringify(r.body));
        });
      });
    });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.url = `https://localhost:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  get tokenUrl(): string {
    return `${this.url}/token`;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private next(token: string): Scripted {
    return this.script.get(token)?.shift() ?? { status: 200 };
  }

  private async handle(h: IncomingHttpHeaders, body: string): Promise<Scripted> {
    const path = String(h[':path']);
    const problems: string[] = [];
    const record = (list: ProviderRequest[], answer: Scripted) => {
      list.push({ path, headers: h, body, status: answer.status, problems });
      return answer;
    };
    if (h[':method'] !== 'POST') problems.push(`method ${h[':method']}`);
    if (path.startsWith('/3/device/')) {
      await this.checkApns(h, problems);
      const answer =
        problems.length > 0
          ? { status: 403, body: { reason: 'InvalidProviderToken' } }
          : this.next(decodeURIComponent(path.slice(10)));
      return record(this.apns, answer);
    }
    if (path === '/token') {
      const form = new URLSearchParams(body);
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer')
        problems.push('grant_type');
      const claims = await this.verify(form.get('assertion') ?? '', this.saPublic, 'RS256', problems);
      if (claims?.iss !== this.serviceAccount.client_email) problems.push('assertion iss');
      if (claims?.aud !== this.tokenUrl) problems.push('assertion aud');
      if (claims?.scope !== 'https://www.googleapis.com/auth/firebase.messaging')
        problems.push('assertion scope');
      if (problems.length > 0) return record(this.oauth, { status: 400, body: { error: 'invalid_grant' } });
      const token = `ya29.test-${this.oauth.length + 1}`;
      this.accessTokens.add(token);
      return record(this.oauth, {
        status: 200,
        body: { access_token: token, expires_in: 3599, token_type: 'Bearer' },
      });
    }
    if (path === `/v1/projects/${this.serviceAccount.project_id}/messages:send`) {
      const bearer = String(h.authorization ?? '').replace(/^Bearer /, '');
      if (!this.accessTokens.has(bearer)) problems.push('bearer');
      let token = '';
      try {
        token = (JSON.parse(body) as { message: { token: string } }).message.token;
      } catch {
        problems.push('body');
      }
      const answer =
        problems.length > 0
          ? { status: 401, body: { error: { status: 'UNAUTHENTICATED' } } }
          : this.next(token);
      return record(this.fcm, answer);
    }
    return { status: 404, body: { reason: 'BadPath' } };
  }

  private async checkApns(h: IncomingHttpHeaders, problems: string[]): Promise<void> {
    const auth = String(h.authorization ?? '');
    if (!auth.startsWith('bearer ')) problems.push('authorization');
    const claims = await this.verify(auth.slice(7), this.apnsPublic, 'ES256', problems, this.keyId);
    if (claims?.iss !== this.teamId) problems.push('iss');
    if (typeof claims?.iat !== 'number' || Math.abs(Date.now() / 1000 - claims.iat) > 3600)
      problems.push('iat');
    if (!h['apns-topic']) problems.push('apns-topic');
    // Apple: a background push must have priority 5; an alert may have 5 or 10.
    const type = h['apns-push-type'];
    if (type !== 'background' && type !== 'alert') problems.push('apns-push-type');
    if (h['apns-priority'] !== '5' && !(type === 'alert' && h['apns-priority'] === '10'))
      problems.push('apns-priority');
  }

  private async verify(
    jwt: string,
    key: CryptoKey | undefined,
    alg: string,
    problems: string[],
    kid?: string,
  ): Promise<JWTPayload | undefined> {
    try {
      const { payload, protectedHeader } = await jwtVerify(jwt, key as CryptoKey, { algorithms: [alg] });
      if (kid !== undefined && protectedHeader.kid !== kid) problems.push('kid');
      return payload;
    } catch (err) {
      problems.push(`signature: ${(err as Error).message}`);
      return undefined;
    }
  }
}
