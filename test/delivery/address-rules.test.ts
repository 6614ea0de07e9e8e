import { describe, it, expect } from 'vitest';
import { AddressPolicy, parseCidrList, parseIpLiteral } from '../../src/delivery/address-rules.js';

const strict = new AddressPolicy([]);

function reasonFor(verdict: ReturnType<AddressPolicy['checkHost']>): string {
  if (verdict.allowed) throw new Error('expected the verdict to forbid');
  return verdict.reason;
}

/** The URL parser's hostname for `host`, or null when the URL parser refuses it. */
function urlHostname(host: string): string | null {
  try {
    return new URL(`https://${host}/`).hostname;
  } catch {
    return null;
  }
}

// [address in canonical form, words the reason must contain]
const forbiddenAddresses: ReadonlyArray<readonly [string, string]> = [
  ['0.0.0.0', 'unspecified'],
  ['0.255.255.255', 'unspecified'],
  ['10.0.0.1', 'private'],
  ['10.255.255.255', 'private'],
  ['100.64.0.1', 'CGNAT'],
  ['100.127.255.254', 'CGNAT'],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['169.254.1.1', 'link-local'],
  ['169.254.169.254', 'cloud metadata'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['192.0.0.8', 'IETF protocol assignment'],
  ['192.0.2.1', 'documentation'],
  ['198.51.100.7', 'documentation'],
  ['203.0.113.9', 'documentation'],
  ['192.88.99.1', '6to4 relay'],
  ['192.168.1.1', 'private'],
  ['198.18.0.1', 'benchmarking'],
  ['198.19.255.255', 'benchmarking'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['240.0.0.1', 'reserved'],
  ['255.255.255.254', 'reserved'],
  ['255.255.255.255', 'broadcast'],
  ['::', 'unspecified'],
  ['::1', 'loopback'],
  ['::ffff:7f00:1', 'embeds 127.0.0.1, a loopback'],
  ['::ffff:a00:1', 'embeds 10.0.0.1, a private'],
  ['::ffff:a9fe:a9fe', 'embeds 169.254.169.254, a cloud metadata'],
  ['::7f00:1', 'embeds 127.0.0.1, a loopback'],
  ['::808:808', 'IPv4-compatible'],
  ['64:ff9b::a00:1', 'embeds 10.0.0.1, a private'],
  ['64:ff9b::a9fe:a9fe', 'embeds 169.254.169.254, a cloud metadata'],
  ['64:ff9b:1::808:808', 'local-use NAT64'],
  ['2002:a00:1::', 'embeds 10.0.0.1, a private'],
  ['2002:808:808::', '6to4'],
  ['2001::1', 'Teredo'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'Teredo'],
  ['2001:2::1', 'benchmarking'],
  ['2001:10::1', 'IETF protocol assignment'],
  ['2001:db8::1', 'documentation'],
  ['3fff::1', 'documentation'],
  ['3fff:fff:ffff::1', 'documentation'],
  ['100::1', 'discard'],
  ['fc00::1', 'unique local'],
  ['fd12:3456::1', 'unique local'],
  ['fd00:ec2::254', 'cloud metadata'],
  ['fe80::1', 'link-local'],
  ['febf::1', 'link-local'],
  ['fec0::1', 'site-local'],
  ['ff02::1', 'multicast'],
  ['1::1', 'reserved'],
  ['5f00::1', 'reserved'],
];

// Public addresses, including the neighbours of forbidden ranges.
const allowedAddresses: readonly string[] = [
  '8.8.8.8',
  '1.1.1.1',
  '93.184.216.34',
  '1.0.0.1',
  '9.255.255.255',
  '11.0.0.0',
  '100.63.255.255',
  '100.128.0.1',
  '126.255.255.255',
  '128.0.0.1',
  '169.253.255.255',
  '169.255.0.1',
  '172.15.255.255',
  '172.32.0.1',
  '192.0.3.1',
  '192.167.255.255',
  '192.169.0.1',
  '198.17.255.255',
  '198.20.0.1',
  '223.255.255.255',
  '2606:4700:4700::1111',
  '2001:4860:4860::8888',
  '2a00:1450:4001::200e',
  '2001:200::1',
  '2001:db9::1',
  '2003::1',
  '3fff:1000::1',
  '::ffff:808:808',
  '64:ff9b::808:808',
];

// [host as a user may write it, canonical address, words the reason must contain]
const forbiddenSpellings: ReadonlyArray<readonly [string, string, string]> = [
  ['[::1]', '::1', 'loopback'],
  ['[0000:0000:0000:0000:0000:0000:0000:0001]', '::1', 'loopback'],
  ['::1', '::1', 'loopback'],
  ['[::ffff:127.0.0.1]', '::ffff:7f00:1', 'embeds 127.0.0.1, a loopback'],
  ['[::ffff:7f00:1]', '::ffff:7f00:1', 'embeds 127.0.0.1, a loopback'],
  ['[::FFFF:7F00:1]', '::ffff:7f00:1', 'embeds 127.0.0.1, a loopback'],
  ['[0:0:0:0:0:ffff:7f00:1]', '::ffff:7f00:1', 'embeds 127.0.0.1, a loopback'],
  ['[::ffff:169.254.169.254]', '::ffff:a9fe:a9fe', 'cloud metadata'],
  ['[64:ff9b::7f00:1]', '64:ff9b::7f00:1', 'embeds 127.0.0.1, a loopback'],
  ['[64:ff9b::127.0.0.1]', '64:ff9b::7f00:1', 'embeds 127.0.0.1, a loopback'],
  ['[2002:7f00:1::]', '2002:7f00:1::', 'embeds 127.0.0.1, a loopback'],
  ['[::127.0.0.1]', '::7f00:1', 'embeds 127.0.0.1, a loopback'],
  ['[FD00:EC2::254]', 'fd00:ec2::254', 'cloud metadata'],
  ['2130706433', '127.0.0.1', 'loopback'],
  ['0x7f000001', '127.0.0.1', 'loopback'],
  ['0X7F000001', '127.0.0.1', 'loopback'],
  ['0x7f.0.0.1', '127.0.0.1', 'loopback'],
  ['0177.0.0.1', '127.0.0.1', 'loopback'],
  ['017700000001', '127.0.0.1', 'loopback'],
  ['127.1', '127.0.0.1', 'loopback'],
  ['127.0.1', '127.0.0.1', 'loopback'],
  ['127.0.0.1.', '127.0.0.1', 'loopback'],
  ['0', '0.0.0.0', 'unspecified'],
  ['0x', '0.0.0.0', 'unspecified'],
  ['10.1', '10.0.0.1', 'private'],
  ['0x0a.0.0.1', '10.0.0.1', 'private'],
  ['3232235521', '192.168.0.1', 'private'],
  ['0xa9.0xfe.0xa9.0xfe', '169.254.169.254', 'cloud metadata'],
  ['0251.0376.0251.0376', '169.254.169.254', 'cloud metadata'],
  ['169.254.43518', '169.254.169.254', 'cloud metadata'],
  ['4294967295', '255.255.255.255', 'broadcast'],
  ['１２７.０.０.１', '127.0.0.1', 'loopback'],
  ['%31%32%37.0.0.1', '127.0.0.1', 'loopback'],
];

const localhostNames: readonly string[] = [
  'localhost',
  'LOCALHOST',
  'localhost.',
  'Localhost.',
  'foo.localhost',
  'a.b.localhost.',
  'FOO.LocalHost',
  'ｌｏｃａｌｈｏｓｔ',
  '%6c%6f%63%61%6c%68%6f%73%74',
];

const allowedNames: readonly string[] = [
  'example.com',
  'EXAMPLE.COM',
  'hooks.example.com.',
  'localhost.example.com',
  'mylocalhost.com',
  'localhost-api.example.com',
  'notlocalhost',
  'xn--80ak6aa92e.com',
  '1.2.3.4.example.com',
  // A name that resolves to 127.0.0.1 is caught when its addresses are checked, not here.
  '127.0.0.1.nip.io',
];

// Hostile or broken hosts: [host, words the reason must contain]
const invalidHosts: ReadonlyArray<readonly [string, string]> = [
  ['', 'not a valid host'],
  ['1.2.3.999', 'not a valid IPv4 address'],
  ['256.0.0.1', 'not a valid IPv4 address'],
  ['1.2.3.4.5', 'not a valid IPv4 address'],
  ['08.0.0.1', 'not a valid IPv4 address'],
  ['0x1g.0.0.1', 'not a valid IPv4 address'],
  ['4294967296', 'not a valid IPv4 address'],
  ['exa mple.com', 'not a valid host name'],
  ['example.com/x', 'not a valid host name'],
  ['user@127.0.0.1', 'not a valid host name'],
  ['\u0000localhost', 'not a valid host name'],
  ['example.com:443', 'not a valid host name'],
  ['a..b', 'not a valid host name'],
  ['localhost..', 'not a valid host name'],
  ['[::1', 'not a valid host name'],
  ['[1:2:3:4:5:6:7:8:9]', 'not a valid IPv6 address'],
  ['[1::2::3]', 'not a valid IPv6 address'],
  ['[::ffff:127.0.0.01]', 'not a valid IPv6 address'],
  ['[12345::1]', 'not a valid IPv6 address'],
  ['[]', 'not a valid IPv6 address'],
];

describe('AddressPolicy.checkAddress with no allowed CIDRs', () => {
  it.each(forbiddenAddresses)('refuses %s (%s)', (address, words) => {
    const verdict = strict.checkAddress(address);
    expect(verdict).toEqual({ allowed: false, reason: expect.stringContaining(words) });
    expect(reasonFor(verdict)).toContain(address);
  });

  it.each(allowedAddresses)('allows %s', (address) => {
    expect(strict.checkAddress(address)).toEqual({ allowed: true });
  });

  it('names the resolved address in a sentence a user can read', () => {
    expect(strict.checkAddress('10.0.0.5')).toEqual({ allowed: false, reason: '10.0.0.5 is a private address' });
    expect(strict.checkAddress('169.254.169.254')).toEqual({
      allowed: false,
      reason: '169.254.169.254 is a cloud metadata address',
    });
  });

  it('judges non-canonical IPv6 text by its value and reports the canonical form', () => {
    expect(strict.checkAddress('2001:0DB8:0000:0000:0000:0000:0000:0001')).toEqual({
      allowed: false,
      reason: '2001:db8::1 is a documentation address',
    });
    expect(strict.checkAddress('::ffff:127.0.0.1')).toEqual({
      allowed: false,
      reason: '::ffff:7f00:1 embeds 127.0.0.1, a loopback address',
    });
  });

  it.each(['fe80::1%eth0', 'fe80::1%2'])('refuses a resolved address with a zone id: %s', (address) => {
    expect(reasonFor(strict.checkAddress(address))).toMatch(/zone id/);
  });

  it.each(['0x7f000001', '127.1', '010.0.0.1', 'localhost', '', '1.2.3.4 ', '1.2.3', ':::1'])(
    'refuses %j, which DNS never returns as an address',
    (text) => {
      expect(reasonFor(strict.checkAddress(text))).toMatch(/is not an IP address/);
    },
  );
});

describe('AddressPolicy.checkHost with no allowed CIDRs', () => {
  it.each(forbiddenAddresses)('refuses the literal %s (%s)', (address, words) => {
    const host = address.includes(':') ? `[${address}]` : address;
    const reason = reasonFor(strict.checkHost(host));
    expect(reason).toContain(address);
    expect(reason).toContain(words);
  });

  it.each(allowedAddresses)('allows the literal %s', (address) => {
    const host = address.includes(':') ? `[${address}]` : address;
    expect(strict.checkHost(host)).toEqual({ allowed: true });
  });

  it.each(forbiddenSpellings)('refuses %s, which is %s', (host, canonical, words) => {
    const reason = reasonFor(strict.checkHost(host));
    expect(reason).toContain(canonical);
    expect(reason).toContain(words);
  });

  it('names both the spelling the user wrote and the address it means', () => {
    expect(strict.checkHost('0x7f000001')).toEqual({
      allowed: false,
      reason: '0x7f000001 (127.0.0.1) is a loopback address',
    });
  });

  it.each(localhostNames)('refuses the localhost name %j', (host) => {
    expect(strict.checkHost(host)).toEqual({
      allowed: false,
      reason: expect.stringMatching(/^localhost names are not allowed \((\w+\.)*localhost\)$/),
    });
  });

  it.each(allowedNames)('allows the name %s (its addresses are checked at send time)', (host) => {
    expect(strict.checkHost(host)).toEqual({ allowed: true });
  });

  it.each(invalidHosts)('refuses the broken host %j', (host, words) => {
    expect(reasonFor(strict.checkHost(host))).toContain(words);
  });

  it.each(['[fe80::1%25eth0]', '[fe80::1%eth0]', 'fe80::1%eth0', '[2606:4700:4700::1111%25eth0]'])(
    'refuses the zone id in %s',
    (host) => {
      expect(reasonFor(strict.checkHost(host))).toMatch(/zone ids are not allowed/);
    },
  );

  it('cuts hostile input short in the reason', () => {
    const reason = reasonFor(strict.checkHost(`${'a'.repeat(5000)} b`));
    expect(reason.length).toBeLessThan(200);
  });

  // Hosts holding URL delimiters ("/", "@", a port's ":") would be split by the URL
  // parser into other parts, so its hostname would not be the same text.
  const holdsUrlDelimiter = (host: string): boolean => /[/\\@?#]/.test(host) || /^[^[].*:/.test(host);
  const urlHostnames = [
    ...forbiddenSpellings.map(([host]) => host),
    ...localhostNames,
    ...allowedNames,
    ...invalidHosts.map(([host]) => host),
  ]
    .filter((host) => !holdsUrlDelimiter(host))
    .flatMap((host) => {
      const hostname = urlHostname(host);
      return hostname === null ? [] : [[host, hostname] as const];
    });

  it.each(urlHostnames)('agrees with the WHATWG URL parser on %j (hostname %j)', (host, hostname) => {
    expect(strict.checkHost(hostname).allowed).toBe(strict.checkHost(host).allowed);
    expect(parseIpLiteral(hostname)).toBe(parseIpLiteral(host));
  });
});

describe('parseIpLiteral', () => {
  it.each(forbiddenSpellings)('reads %s as %s', (host, canonical) => {
    expect(parseIpLiteral(host)).toBe(canonical);
  });

  it.each([
    ['[2001:DB8:0:0:1:0:0:1]', '2001:db8::1:0:0:1'],
    ['[2001:db8:0:0:0:0:2:1]', '2001:db8::2:1'],
    ['[2001:db8:0:1:1:1:1:1]', '2001:db8:0:1:1:1:1:1'],
    ['[2001:0db8::0001]', '2001:db8::1'],
    ['[1:2:3:4:5:6:7::]', '1:2:3:4:5:6:7:0'],
    ['[0:0:0:0:0:0:0:0]', '::'],
    ['[::ffff:1.2.3.4]', '::ffff:102:304'],
    ['[fe80::1%25eth0]', 'fe80::1%eth0'],
    ['8.8.8.8', '8.8.8.8'],
    ['0x08080808', '8.8.8.8'],
  ])('formats %s as %s (RFC 5952 for IPv6)', (host, canonical) => {
    expect(parseIpLiteral(host)).toBe(canonical);
  });

  it.each([...allowedNames, ...localhostNames, '1.2.3.999', '[::1', '', 'example.com:443'])(
    'returns null for %j, which is not an IP literal',
    (host) => {
      expect(parseIpLiteral(host)).toBeNull();
    },
  );
});

describe('AddressPolicy with allowed CIDRs', () => {
  const loopbackAllowed = new AddressPolicy(parseCidrList('127.0.0.0/8'));

  it.each(['127.0.0.1', '127.255.255.254', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '0x7f000001', '127.1'])(
    'allows %s when 127.0.0.0/8 is allowed',
    (host) => {
      expect(loopbackAllowed.checkHost(host)).toEqual({ allowed: true });
    },
  );

  it('allows the host of https://127.0.0.1:8443/ and its resolved address', () => {
    expect(loopbackAllowed.checkHost(new URL('https://127.0.0.1:8443/').hostname)).toEqual({ allowed: true });
    expect(loopbackAllowed.checkAddress('127.0.0.1')).toEqual({ allowed: true });
    expect(loopbackAllowed.checkAddress('::ffff:127.0.0.1')).toEqual({ allowed: true });
  });

  it.each([
    ['10.0.0.1', 'private'],
    ['169.254.169.254', 'cloud metadata'],
    ['[::1]', 'loopback'],
    ['[::ffff:10.0.0.1]', 'private'],
  ])('still refuses %s, outside the allowed CIDRs', (host, words) => {
    expect(reasonFor(loopbackAllowed.checkHost(host))).toContain(words);
  });

  it.each(['localhost', 'api.localhost.'])('still refuses the name %s: the exemption is for addresses', (host) => {
    expect(reasonFor(loopbackAllowed.checkHost(host))).toMatch(/localhost names are not allowed/);
  });

  const mixed = new AddressPolicy(parseCidrList('fd00::/8, 10.1.2.3, fe80::/10'));

  it.each(['fd00::5', 'fdff:ffff::1', '10.1.2.3', '::ffff:10.1.2.3', '64:ff9b::a01:203', 'fe80::1'])(
    'allows %s inside fd00::/8, 10.1.2.3 or fe80::/10',
    (address) => {
      expect(mixed.checkAddress(address)).toEqual({ allowed: true });
    },
  );

  it.each(['fc00::1', '10.1.2.4', '::ffff:10.1.2.4', 'fe80::1%eth0'])('still refuses %s', (address) => {
    expect(mixed.checkAddress(address).allowed).toBe(false);
  });
});

describe('parseCidrList', () => {
  it.each(['', '   '])('reads %j as no CIDRs', (text) => {
    expect(parseCidrList(text)).toEqual([]);
  });

  it('reads IPv4 and IPv6 networks, tolerating whitespace', () => {
    expect(parseCidrList(' 10.0.0.0/8 ,2001:db8::/32 ')).toEqual([
      { family: 4, network: 0x0a000000n, prefixLength: 8 },
      { family: 6, network: 0x20010db8n << 96n, prefixLength: 32 },
    ]);
  });

  it.each([
    ['192.168.1.1', 4, 32],
    ['::1', 6, 128],
    ['0.0.0.0/0', 4, 0],
    ['::/0', 6, 0],
    ['::ffff:10.0.0.0/104', 6, 104],
  ] as const)('reads %s as an IPv%i network of prefix length %i', (text, family, prefixLength) => {
    const [cidr] = parseCidrList(text);
    expect(cidr).toMatchObject({ family, prefixLength });
  });

  it.each([
    ['10.0.0.0/33', /entry 1 "10\.0\.0\.0\/33".*from 0 to 32/],
    ['abc', /entry 1 "abc".*not an IPv4 or IPv6 address/],
    ['::1/129', /entry 1 "::1\/129".*from 0 to 128/],
    // Host bits set are refused, not normalised: "10.0.0.1/8" is more likely a typo than a wish.
    ['10.0.0.1/8', /entry 1 "10\.0\.0\.1\/8".*host bits are set.*10\.0\.0\.0\/8/],
    ['fd00::1/8', /host bits are set.*fd00::\/8/],
    ['10.0.0.0/8, 300.0.0.0/8', /entry 2 "300\.0\.0\.0\/8"/],
    ['10.0.0.0/8,,', /entry 2 "".*empty/],
    ['10.0.0.0/-1', /from 0 to 32/],
    ['10.0.0.0/8/8', /more than one "\/"/],
    ['1.2.3.4/', /from 0 to 32/],
    ['10/8', /not an IPv4 or IPv6 address/],
    ['010.0.0.0/8', /not an IPv4 or IPv6 address/],
    ['[::1]/128', /not an IPv4 or IPv6 address/],
    ['fe80::%eth0/64', /not an IPv4 or IPv6 address/],
  ])('refuses %j, naming the entry and why', (text, message) => {
    expect(() => parseCidrList(text)).toThrow(message);
  });
});
