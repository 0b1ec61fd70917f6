/**
 * MQTT 3.1.1 packets the harness needs (OASIS mqtt-v3.1.1, §3): CONNECT, SUBSCRIBE, PUBLISH
 * QoS 0, PINGREQ out; CONNACK, SUBACK, PUBLISH, PINGRESP in. Pure functions on buffers.
 */

export const CONNACK = 2;
export const PUBLISH = 3;
export const SUBACK = 9;
export const PINGRESP = 13;

function remainingLength(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    bytes.push(b);
  } while (n > 0 && bytes.length < 4);
  return Buffer.from(bytes);
}

const str = (s: string): Buffer => {
  const b = Buffer.from(s);
  const out = Buffer.allocUnsafe(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
};

const packet = (first: number, body: Buffer): Buffer =>
  Buffer.concat([Buffer.from([first]), remainingLength(body.length), body]);

/** CONNECT with a clean session and the given keep-alive (s). */
export function connectPacket(clientId: string, keepAlive: number): Buffer {
  const vh = Buffer.concat([str('MQTT'), Buffer.from([4, 0x02, keepAlive >> 8, keepAlive & 0xff])]);
  return packet(0x10, Buffer.concat([vh, str(clientId)]));
}

/** SUBSCRIBE to topics at QoS 0. */
export function subscribePacket(packetId: number, topics: string[]): Buffer {
  const parts: Buffer[] = [Buffer.from([packetId >> 8, packetId & 0xff])];
  for (const t of topics) parts.push(str(t), Buffer.from([0]));
  return packet(0x82, Buffer.concat(parts));
}

/** PUBLISH at QoS 0. */
export function publishPacket(topic: string, payload: Buffer | string): Buffer {
  return packet(
    0x30,
    Buffer.concat([str(topic), typeof payload === 'string' ? Buffer.from(payload) : payload]),
  );
}

export const PINGREQ_PACKET = Buffer.from([0xc0, 0]);

export interface MqttPacket {
  type: number;
  flags: number;
  body: Buffer;
}

/** Parses whole packets from `buf`; returns them and the unparsed rest. */
export function parsePackets(buf: Buffer): { packets: MqttPacket[]; rest: Buffer | undefined } {
  const packets: MqttPacket[] = [];
  let at = 0;
  while (buf.length - at >= 2) {
    let mult = 1;
    let len = 0;
    let i = at + 1;
    let complete = false;
    for (let k = 0; k < 4 && i < buf.length; k++, i++) {
      const b = buf[i]!;
      len += (b & 0x7f) * mult;
      mult *= 128;
      if ((b & 0x80) === 0) {
        complete = true;
        i++;
        break;
      }
    }
    if (!complete || buf.length - i < len) break;
    packets.push({ type: buf[at]! >> 4, flags: buf[at]! & 0x0f, body: buf.subarray(i, i + len) });
    at = i + len;
  }
  return { packets, rest: at < buf.length ? Buffer.from(buf.subarray(at)) : undefined };
}

/** Topic and payload of a QoS 0 PUBLISH body. */
export function publishPayload(p: MqttPacket): { topic: string; payload: Buffer } {
  const tlen = p.body.readUInt16BE(0);
  const qos = (p.flags >> 1) & 3;
  const start = 2 + tlen + (qos > 0 ? 2 : 0);
  return { topic: p.body.toString('utf8', 2, 2 + tlen), payload: p.body.subarray(start) };
}
