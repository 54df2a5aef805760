import { describe, expect, it } from 'vitest';
import { compileQuery } from './query';

const rows: Record<string, string>[] = [
  { '.id': '*1', name: 'ether1', type: 'ether', mtu: '1500' },
  { '.id': '*2', name: 'vlan10', type: 'vlan', mtu: '1496', comment: 'office' },
  { '.id': '*3', name: 'bridge', type: 'bridge', mtu: '1500', comment: '' },
];
const ids = (words: string[]): string[] => rows.filter(compileQuery(words, (_p, v) => v)).map((r) => r['.id']!);

describe('compileQuery', () => {
  it('matches equality in both spellings', () => {
    expect(ids(['type=ether'])).toEqual(['*1']);
    expect(ids(['=type=vlan'])).toEqual(['*2']);
  });
  it('tests presence and absence', () => {
    expect(ids(['comment'])).toEqual(['*2', '*3']);
    expect(ids(['-comment'])).toEqual(['*1']);
  });
  it('compares numbers numerically and strings lexically', () => {
    expect(ids(['<mtu=1500'])).toEqual(['*2']);
    expect(ids(['>comment='])).toEqual(['*2']);
  });
  it('ORs with ?#| and negates with ?#!', () => {
    expect(ids(['type=ether', 'type=vlan', '#|'])).toEqual(['*1', '*2']);
    expect(ids(['type=ether', '#!'])).toEqual(['*2', '*3']);
  });
  it('ANDs whatever is left on the stack', () => {
    expect(ids(['mtu=1500', 'comment'])).toEqual(['*3']);
  });
  it('pushes copies by index and replaces the stack with an index at the end', () => {
    // stack: [ether?, vlan?]; "1" copies ether? -> [ether?, vlan?, ether?]; "|" -> [ether?, vlan?|ether?]
    expect(ids(['type=ether', 'type=vlan', '#1|'])).toEqual(['*1']);
    // "1" at the end replaces everything with the value at index 1 (the first test)
    expect(ids(['type=ether', 'type=vlan', '#1'])).toEqual(['*1']);
  });
  it('rejects malformed operations', () => {
    expect(() => ids(['#&'])).toThrow('invalid query');
    expect(() => ids(['type=ether', '#x'])).toThrow('invalid query');
  });
});
