import { clientTracker } from './client-tracker.js';

describe('clientTracker', () => {
  it('counts every address of one IPv6 /64 in one bucket, however it is written', () => {
    const bucket = clientTracker('2001:db8:85a3:8d3:1319:8a2e:370:7348');
    expect(bucket).toBe('2001:db8:85a3:8d3::/64');
    for (const rotated of [
      '2001:db8:85a3:8d3::1',
      '2001:0DB8:85A3:08D3:ffff:ffff:ffff:fffe',
      '2001:db8:85a3:8d3:a::b%eth0',
    ]) {
      expect(clientTracker(rotated)).toBe(bucket);
    }
  });

  it('keeps neighbouring /64s apart', () => {
    expect(clientTracker('2001:db8:85a3:8d4::1')).not.toBe(clientTracker('2001:db8:85a3:8d3::1'));
    expect(clientTracker('::1')).not.toBe(clientTracker('::2'));
  });

  it('keeps IPv4 and IPv4-mapped IPv6 addresses per IPv4 address', () => {
    expect(clientTracker('198.51.100.7')).toBe('198.51.100.7');
    expect(clientTracker('::ffff:198.51.100.7')).toBe('198.51.100.7');
    expect(clientTracker('::ffff:198.51.100.8')).toBe('198.51.100.8');
    expect(clientTracker('::FFFF:c633:6409')).toBe('198.51.100.9');
  });
});
