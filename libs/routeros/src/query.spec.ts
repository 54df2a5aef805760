import { describe, expect, it } from 'vitest';
import { allOf, anyOf, has, lacks, not, rawQuery, where } from './query';

describe('query builder', () => {
  it('compiles leaves to the RouterOS query words', () => {
    expect(where('type', 'ether').toWords()).toEqual(['?type=ether']);
    expect(where('mtu', '>', 1500).toWords()).toEqual(['?>mtu=1500']);
    expect(where('mtu', '<', 1500).toWords()).toEqual(['?<mtu=1500']);
    expect(where('mtu', '=', 1500).toWords()).toEqual(['?mtu=1500']);
    expect(has('comment').toWords()).toEqual(['?comment']);
    expect(lacks('comment').toWords()).toEqual(['?-comment']);
    // protocols.md: non-empty comment.
    expect(where('comment', '>', '').toWords()).toEqual(['?>comment=']);
  });

  it('combines in postfix with ?#| ?#& ?#!', () => {
    expect(where('type', 'ether').or(where('type', 'vlan')).toWords()).toEqual(['?type=ether', '?type=vlan', '?#|']);
    expect(anyOf(where('a', '1'), where('b', '2'), where('c', '3')).toWords()).toEqual([
      '?a=1',
      '?b=2',
      '?#|',
      '?c=3',
      '?#|',
    ]);
    expect(allOf(has('x'), not(where('disabled', 'true'))).toWords()).toEqual(['?x', '?disabled=true', '?#!', '?#&']);
    // (a or b) and not (c and d): the stack always ends with one value.
    const q = where('a', '1')
      .or(where('b', '1'))
      .and(where('c', '1').and(where('d', '1')).not());
    expect(q.toWords()).toEqual(['?a=1', '?b=1', '?#|', '?c=1', '?d=1', '?#&', '?#!', '?#&']);
  });

  it('values may contain = and spaces (each word is length-delimited)', () => {
    expect(where('comment', 'a=b c').toWords()).toEqual(['?comment=a=b c']);
  });

  it('passes raw words (stack indices) and refuses words that are not queries', () => {
    expect(rawQuery('?type=ether', '?type=vlan', '?#01|').or(has('x')).toWords()).toEqual([
      '?type=ether',
      '?type=vlan',
      '?#01|',
      '?x',
      '?#|',
    ]);
    expect(() => rawQuery('=x=1')).toThrow(TypeError);
    expect(() => rawQuery()).toThrow(TypeError);
  });

  it('refuses property names that would change the meaning of the word', () => {
    for (const bad of ['', 'a=b', 'a b']) {
      expect(() => where(bad, 'x')).toThrow(TypeError);
      expect(() => has(bad)).toThrow(TypeError);
    }
    expect(() => where('a', '!' as '=', 'x')).toThrow(TypeError);
  });
});
