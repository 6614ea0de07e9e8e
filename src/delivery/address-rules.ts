import { domainToASCII } from 'node:url';

/** An IPv4 or IPv6 network. Invariant: the host bits of `network` are zero. */
export interface Cidr {
  readonly family: 4 | 6;
  readonly network: bigint;
  readonly prefixLength: number;
}

export type AddressVerdict = { allowed: true } | { allowed: false; reason: string };

interface IpAddress {
  readonly family: 4 | 6;
  readonly value: bigint;
  readonly zone?: string;
}

const ADDRESS_BITS = { 4: 32, 6: 128 } as const;
const ALLOWED: AddressVerdict = Object.freeze({ allowed: true });

// ---------------------------------------------------------------- parsing

const STRICT_IPV4 = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;
const HEX_GROUP = /^[0-9a-f]{1,4}$/i;
const ZONE_ID = /^[\w.-]+$/;

/** Dotted-quad decimal only: leading zeros are refused, as they would read as octal elsewhere. */
function parseStrictIpv4(text: string): bigint | null {
  const match = STRICT_IPV4.exec(text);
  if (!match) return null;
  const octets = match.slice(1).map(Number);
  if (octets.some((octet) => octet > 255)) return null;
  return octets.reduce((value, octet) => (value << 8n) | BigInt(octet), 0n);
}

function parseIpv6(text: string): bigint | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const compressed = halves.length === 2;
  const head = parseIpv6Groups(halves[0] ?? '', !compressed);
  const tail = compressed ? parseIpv6Groups(halves[1] ?? '', true) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (compressed ? missing < 1 : missing !== 0) return null;
  const groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  return groups.reduce((value, group) => (value << 16n) | BigInt(group), 0n);
}

/** Splits "a:b:c" into 16-bit groups; the last piece of an address may be dotted IPv4 ("::ffff:1.2.3.4"). */
function parseIpv6Groups(section: string, endsAddress: boolean): number[] | null {
  if (section === '') return [];
  const pieces = section.split(':');
  const groups: number[] = [];
  for (const [index, piece] of pieces.entries()) {
    if (HEX_GROUP.test(piece)) {
      groups.push(parseInt(piece, 16));
      continue;
    }
    const ipv4 = endsAddress && index === pieces.length - 1 ? parseStrictIpv4(piece) : null;
    if (ipv4 === null) return null;
    groups.push(Number(ipv4 >> 16n), Number(ipv4 & 0xffffn));
  }
  return groups;
}

function parseIpv6WithZone(text: string): IpAddress | null {
  const [addressText = '', zone, ...rest] = text.split('%');
  if (rest.length > 0 || (zone !== undefined && !ZONE_ID.test(zone))) return null;
  const value = parseIpv6(addressText);
  if (value === null) return null;
  return zone === undefined ? { family: 6, value } : { family: 6, value, zone };
}

/** Resolved-address syntax: dotted-quad IPv4 or IPv6 text (with an optional zone id). */
function parseStrictIp(text: string): IpAddress | null {
  const ipv4 = parseStrictIpv4(text);
  if (ipv4 !== null) return { family: 4, value: ipv4 };
  return text.includes(':') ? parseIpv6WithZone(text) : null;
}

// WHATWG URL host rules: a host whose last label is a number is an IPv4 address,
// written as 1–4 parts, each decimal, octal (leading 0) or hex (0x), the last part
// filling the remaining bytes ("127.1", "2130706433"). The same forms that
// inet_aton() accepts, so a resolver would read them the same way.
// These functions take the host without its trailing dot.
function endsInNumber(name: string): boolean {
  const last = name.split('.').at(-1) ?? '';
  return /^\d+$/.test(last) || /^0x[0-9a-f]*$/i.test(last);
}

function parseIpv4Number(part: string): bigint | null {
  if (/^0x[0-9a-f]*$/i.test(part)) return part.length === 2 ? 0n : BigInt(part);
  if (/^0[0-7]+$/.test(part)) return BigInt(`0o${part.slice(1)}`);
  if (/^(0|[1-9]\d*)$/.test(part)) return BigInt(part);
  return null;
}

function parseLooseIpv4(name: string): bigint | null {
  const parts = name.split('.');
  if (parts.length > 4) return null;
  const numbers = parts.map(parseIpv4Number);
  const last = numbers.pop();
  if (last === undefined || last === null) return null;
  if (numbers.some((part) => part === null || part > 255n)) return null;
  if (last >= 256n ** BigInt(5 - parts.length)) return null;
  return numbers.reduce<bigint>((value, part, index) => value + ((part ?? 0n) << BigInt(24 - 8 * index)), last);
}

// ---------------------------------------------------------------- formatting

function formatIpv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
}

/** RFC 5952 text: lower-case, no leading zeros, the first longest run (≥ 2) of zero groups as "::". */
function formatIpv6(value: bigint): string {
  const groups = Array.from({ length: 8 }, (_, index) => Number((value >> BigInt(112 - 16 * index)) & 0xffffn));
  const hex = groups.map((group) => group.toString(16));
  const run = findLongestZeroRun(groups);
  if (run.length < 2) return hex.join(':');
  return `${hex.slice(0, run.start).join(':')}::${hex.slice(run.start + run.length).join(':')}`;
}

function findLongestZeroRun(groups: readonly number[]): { start: number; length: number } {
  let best = { start: 0, length: 0 };
  let index = 0;
  while (index < groups.length) {
    let end = index;
    while (end < groups.length && groups[end] === 0) end++;
    if (end - index > best.length) best = { start: index, length: end - index };
    index = end + 1;
  }
  return best;
}

function formatIp(address: IpAddress): string {
  if (address.family === 4) return formatIpv4(address.value);
  const text = formatIpv6(address.value);
  return address.zone === undefined ? text : `${text}%${address.zone}`;
}

export function formatCidr(cidr: Cidr): string {
  const address = cidr.family === 4 ? formatIpv4(cidr.network) : formatIpv6(cidr.network);
  return `${address}/${cidr.prefixLength}`;
}

/** Quotes user-supplied text for a message, cut short so hostile input cannot flood it. */
function quote(text: string): string {
  return JSON.stringify(text.length > 100 ? `${text.slice(0, 100)}…` : text);
}

// ---------------------------------------------------------------- CIDRs

function maskNetwork(family: 4 | 6, value: bigint, prefixLength: number): bigint {
  const hostBits = BigInt(ADDRESS_BITS[family] - prefixLength);
  return (value >> hostBits) << hostBits;
}

function cidrContains(cidr: Cidr, address: Pick<IpAddress, 'family' | 'value'>): boolean {
  return cidr.family === address.family && maskNetwork(cidr.family, address.value, cidr.prefixLength) === cidr.network;
}

function parsePrefixLength(text: string, maxBits: number): number | null {
  if (!/^\d{1,3}$/.test(text)) return null;
  const prefixLength = Number(text);
  return prefixLength <= maxBits ? prefixLength : null;
}

/** Returns the network, or why the entry is not one. */
function parseCidr(entry: string): Cidr | string {
  if (entry === '') return 'the entry is empty';
  const [addressText = '', prefixText, ...extra] = entry.split('/');
  if (extra.length > 0) return 'more than one "/"';
  const address = parseStrictIp(addressText);
  if (address === null || address.zone !== undefined) return `${quote(addressText)} is not an IPv4 or IPv6 address`;
  const maxBits = ADDRESS_BITS[address.family];
  const prefixLength = prefixText === undefined ? maxBits : parsePrefixLength(prefixText, maxBits);
  if (prefixLength === null) return `the prefix length must be a whole number from 0 to ${maxBits}`;
  const network = maskNetwork(address.family, address.value, prefixLength);
  const cidr: Cidr = { family: address.family, network, prefixLength };
  // Refused rather than normalised: "10.0.0.1/8" is more often a typo for /32 than a wish to allow all of 10/8.
  if (network !== address.value) return `host bits are set (the network would be ${formatCidr(cidr)})`;
  return cidr;
}

/** Parses "10.0.0.0/8, 2001:db8::/32"; a bare address is a /32 or /128. Throws naming the bad entry. */
export function parseCidrList(text: string): Cidr[] {
  if (text.trim() === '') return [];
  return text.split(',').map((raw, index) => {
    const entry = raw.trim();
    const cidr = parseCidr(entry);
    if (typeof cidr === 'string') throw new Error(`invalid CIDR entry ${index + 1} ${quote(entry)}: ${cidr}`);
    return cidr;
  });
}

// ---------------------------------------------------------------- rules

interface Rule {
  readonly cidrs: readonly Cidr[];
  readonly description: string;
}

function buildRules(entries: ReadonlyArray<readonly [cidrs: string, description: string]>): Rule[] {
  return entries.map(([cidrs, description]) => ({ cidrs: parseCidrList(cidrs), description }));
}

function findRule(rules: readonly Rule[], address: Pick<IpAddress, 'family' | 'value'>): Rule | undefined {
  return rules.find((rule) => rule.cidrs.some((cidr) => cidrContains(cidr, address)));
}

// First match wins, so narrower ranges come before the ranges holding them.
const IPV4_RULES = buildRules([
  ['169.254.169.254', 'a cloud metadata address'],
  ['255.255.255.255', 'the broadcast address'],
  ['0.0.0.0/8', 'an unspecified ("this network") address'],
  ['10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16', 'a private address'],
  ['100.64.0.0/10', 'a shared (CGNAT) address'],
  ['127.0.0.0/8', 'a loopback address'],
  ['169.254.0.0/16', 'a link-local address'],
  ['192.0.0.0/24', 'an IETF protocol assignment address'],
  ['192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24', 'a documentation address'],
  ['192.88.99.0/24', 'a 6to4 relay anycast address'],
  ['198.18.0.0/15', 'a benchmarking address'],
  ['224.0.0.0/4', 'a multicast address'],
  ['240.0.0.0/4', 'a reserved address'],
]);

const IPV6_RULES = buildRules([
  ['::', 'the unspecified address'],
  ['::1', 'a loopback address'],
  ['fd00:ec2::254', 'a cloud metadata address'],
  // Local-use NAT64 prefixes may be /48 to /96 long, so where the IPv4 sits is unknowable.
  ['64:ff9b:1::/48', 'a local-use NAT64 address'],
  ['100::/64', 'a discard-only address'],
  ['2001::/32', 'a Teredo address'],
  ['2001:2::/48', 'a benchmarking address'],
  ['2001::/23', 'an IETF protocol assignment address'],
  ['2001:db8::/32, 3fff::/20', 'a documentation address'],
  ['fc00::/7', 'a unique local (private) address'],
  ['fe80::/10', 'a link-local address'],
  ['fec0::/10', 'a site-local address'],
  ['ff00::/8', 'a multicast address'],
]);

// Only 2000::/3 is allocated for global unicast; everything else (after the forms
// above and below) is reserved, so it is refused by default rather than listed.
const GLOBAL_UNICAST = parseCidrList('2000::/3');

/** An IPv6 form that carries an IPv4 address. */
interface Ipv4Embedding {
  readonly cidrs: readonly Cidr[];
  readonly description: string;
  /** true: refused even when the IPv4 inside is public; false: judged by the IPv4 inside. */
  readonly refusedOutright: boolean;
  readonly extract: (value: bigint) => bigint;
}

const lowest32Bits = (value: bigint): bigint => value & 0xffffffffn;

const IPV4_EMBEDDINGS: readonly Ipv4Embedding[] = [
  {
    cidrs: parseCidrList('::ffff:0:0/96'),
    description: 'an IPv4-mapped address',
    refusedOutright: false,
    extract: lowest32Bits,
  },
  // NAT64 well-known prefix (RFC 6052): IPv6-only hosts with DNS64 reach every
  // IPv4 site this way, so it is judged by the IPv4 inside, not refused.
  {
    cidrs: parseCidrList('64:ff9b::/96'),
    description: 'a NAT64 address',
    refusedOutright: false,
    extract: lowest32Bits,
  },
  // IPv4-compatible (deprecated by RFC 4291) and 6to4 (deprecated by RFC 7526) have
  // no legitimate webhook use; refused outright, naming the IPv4 inside when it is bad.
  {
    cidrs: parseCidrList('::/96'),
    description: 'an IPv4-compatible address (deprecated)',
    refusedOutright: true,
    extract: lowest32Bits,
  },
  {
    cidrs: parseCidrList('2002::/16'),
    description: 'a 6to4 address (deprecated)',
    refusedOutright: true,
    extract: (value) => (value >> 80n) & 0xffffffffn,
  },
];

type Ipv6Class =
  | { kind: 'special'; description: string }
  | { kind: 'embedding'; embedding: Ipv4Embedding; ipv4: bigint }
  | { kind: 'global' };

function classifyIpv6(value: bigint): Ipv6Class {
  const address = { family: 6, value } as const;
  const rule = findRule(IPV6_RULES, address);
  if (rule) return { kind: 'special', description: rule.description };
  const embedding = IPV4_EMBEDDINGS.find((form) => form.cidrs.some((cidr) => cidrContains(cidr, address)));
  if (embedding) return { kind: 'embedding', embedding, ipv4: embedding.extract(value) };
  if (!GLOBAL_UNICAST.some((cidr) => cidrContains(cidr, address))) {
    return { kind: 'special', description: 'a reserved address (outside global unicast 2000::/3)' };
  }
  return { kind: 'global' };
}

function embeddedIpv4(address: IpAddress): bigint | null {
  if (address.family === 4) return null;
  const ipv6Class = classifyIpv6(address.value);
  return ipv6Class.kind === 'embedding' ? ipv6Class.ipv4 : null;
}

/** Why `address` is forbidden (ignoring exemptions), or null; `subject` names it in the sentence. */
function describeProblem(address: IpAddress, subject: string): string | null {
  if (address.family === 4) {
    const rule = findRule(IPV4_RULES, address);
    return rule ? `${subject} is ${rule.description}` : null;
  }
  const ipv6Class = classifyIpv6(address.value);
  if (ipv6Class.kind === 'special') return `${subject} is ${ipv6Class.description}`;
  if (ipv6Class.kind === 'global') return null;
  const inner = findRule(IPV4_RULES, { family: 4, value: ipv6Class.ipv4 });
  if (inner) return `${subject} embeds ${formatIpv4(ipv6Class.ipv4)}, ${inner.description}`;
  return ipv6Class.embedding.refusedOutright ? `${subject} is ${ipv6Class.embedding.description}` : null;
}

// ---------------------------------------------------------------- hosts

type HostForm =
  | { kind: 'ip'; address: IpAddress }
  | { kind: 'name'; name: string }
  | { kind: 'invalid'; reason: string };

/** The WHATWG URL parser's forbidden host code points, less ":" and "[]" (IPv6, handled first). */
function hasForbiddenHostChar(host: string): boolean {
  return [...host].some((char) => char <= ' ' || char === '\u007f' || '#/<>?@\\^|'.includes(char));
}

function invalidHost(host: string, what: string): HostForm {
  return { kind: 'invalid', reason: `${quote(host)} is not a valid ${what}` };
}

function classifyIpv6Host(host: string): HostForm {
  const bracketed = host.startsWith('[') && host.endsWith(']');
  // Inside URL brackets a zone id is written "%25eth0" (RFC 6874).
  const text = bracketed ? host.slice(1, -1).replace('%25', '%') : host;
  const address = parseIpv6WithZone(text);
  return address ? { kind: 'ip', address } : invalidHost(host, bracketed ? 'IPv6 address' : 'host name');
}

function classifyAsciiHost(ascii: string, host: string): HostForm {
  const name = ascii.endsWith('.') ? ascii.slice(0, -1) : ascii;
  if (name.split('.').includes('')) return invalidHost(host, 'host name');
  if (!endsInNumber(name)) return { kind: 'name', name };
  const value = parseLooseIpv4(name);
  return value === null ? invalidHost(host, 'IPv4 address') : { kind: 'ip', address: { family: 4, value } };
}

function classifyHost(host: string): HostForm {
  if (host.startsWith('[') || host.includes(':')) return classifyIpv6Host(host);
  if (hasForbiddenHostChar(host)) return invalidHost(host, 'host name');
  const ascii = toAsciiHost(host);
  return ascii === '' ? invalidHost(host, 'host name or IP address') : classifyAsciiHost(ascii, host);
}

/**
 * Plain ASCII is only lower-cased, so the parsing here decides. Anything else goes
 * through the URL parser's domain-to-ASCII (percent-decoding, fullwidth digits,
 * "。" as a dot), and its result is parsed again like plain ASCII.
 */
function toAsciiHost(host: string): string {
  return /^[\x21-\x7e]*$/.test(host) && !host.includes('%') ? host.toLowerCase() : domainToASCII(host);
}

/** Names the address as the user wrote it, adding the canonical form when the spelling differs. */
function describeSpelling(host: string, address: IpAddress): string {
  const canonical = formatIp(address);
  const bare = host.startsWith('[') ? host.slice(1, -1) : host;
  return bare.toLowerCase() === canonical ? canonical : `${host} (${canonical})`;
}

function isLocalhostName(name: string): boolean {
  return name === 'localhost' || name.endsWith('.localhost');
}

/**
 * Returns the canonical text ("127.0.0.1", "::ffff:7f00:1") of a host that is an IP
 * literal in any spelling: bracketed IPv6, decimal, hex, octal, short forms, trailing dot.
 * Returns null for names and for invalid hosts.
 */
export function parseIpLiteral(host: string): string | null {
  const form = classifyHost(host);
  return form.kind === 'ip' ? formatIp(form.address) : null;
}

function forbid(reason: string): AddressVerdict {
  return { allowed: false, reason };
}

/** The SSRF rules of SPEC §4/§6, with `allowedCidrs` (WEBHOOK_ALLOWED_CIDRS) exempt. */
export class AddressPolicy {
  private readonly allowedCidrs: readonly Cidr[];

  constructor(allowedCidrs: readonly Cidr[]) {
    this.allowedCidrs = [...allowedCidrs];
  }

  /** For an address a host name resolved to. */
  checkAddress(ip: string): AddressVerdict {
    const address = parseStrictIp(ip);
    if (address === null) return forbid(`${quote(ip)} is not an IP address`);
    return this.judge(address, formatIp(address));
  }

  /** For a URL host; ordinary names are allowed here, their addresses are checked at send time. */
  checkHost(host: string): AddressVerdict {
    const form = classifyHost(host);
    if (form.kind === 'invalid') return forbid(form.reason);
    if (form.kind === 'ip') return this.judge(form.address, describeSpelling(host, form.address));
    // The exemption is for addresses only: a localhost name stays refused.
    return isLocalhostName(form.name) ? forbid(`localhost names are not allowed (${form.name})`) : ALLOWED;
  }

  private judge(address: IpAddress, subject: string): AddressVerdict {
    // A zone id only makes sense for link-local and other on-link addresses.
    if (address.zone !== undefined) return forbid(`${subject} has a zone id; zone ids are not allowed`);
    if (this.isExempt(address)) return ALLOWED;
    const problem = describeProblem(address, subject);
    return problem === null ? ALLOWED : forbid(problem);
  }

  private isExempt(address: IpAddress): boolean {
    if (this.allowedCidrs.some((cidr) => cidrContains(cidr, address))) return true;
    const ipv4 = embeddedIpv4(address);
    return ipv4 !== null && this.allowedCidrs.some((cidr) => cidrContains(cidr, { family: 4, value: ipv4 }));
  }
}
