/**
 * The key a client address is counted under: an IPv4 address as it is (also when IPv4-mapped), an
 * IPv6 address by its /64, the block one subscriber usually holds (counting single IPv6 addresses
 * would let one host take any number of slots).
 */
export function addressKey(address: string | undefined): string {
  if (!address) return '';
  const plain = address.split('%')[0]!.toLowerCase();
  if (plain.startsWith('::ffff:') && plain.includes('.')) return plain.slice(7);
  if (!plain.includes(':')) return plain;
  const [head = '', tail] = plain.split('::');
  const front = head ? head.split(':') : [];
  const back = tail ? tail.split(':') : [];
  const groups =
    tail === undefined
      ? front
      : [...front, ...Array(Math.max(0, 8 - front.length - back.length)).fill('0'), ...back];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/** How many of something each address holds (pending handshakes); addresses at 0 take no memory. */
export class AddressCounts {
  private readonly counts = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** Counts one more for `key`; false (nothing counted) when it already holds `max`. */
  take(key: string): boolean {
    const n = this.counts.get(key) ?? 0;
    if (n >= this.max) return false;
    this.counts.set(key, n + 1);
    return true;
  }

  release(key: string): void {
    const n = this.counts.get(key) ?? 0;
    if (n <= 1) this.counts.delete(key);
    else this.counts.set(key, n - 1);
  }

  /** Addresses holding at least one. */
  get size(): number {
    return this.counts.size;
  }
}
