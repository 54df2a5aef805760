import { describe, expect, it } from 'vitest';
import { encodeSentence, SentenceDecoder } from './codec';
import { challengeResponse } from './login';
import { boolOr, parseBool, rawValue, rowOf } from './values';

describe('values', () => {
  it('parses v7 true/false and v6 yes/no booleans, and nothing else', () => {
    expect([parseBool('true'), parseBool('yes'), parseBool('false'), parseBool('no')]).toEqual([
      true,
      true,
      false,
      false,
    ]);
    expect(parseBool(undefined)).toBeUndefined();
    expect(parseBool('')).toBeUndefined();
    expect(parseBool('TRUE')).toBeUndefined();
    expect(boolOr(undefined, true)).toBe(true);
    expect(boolOr('no', true)).toBe(false);
  });

  it('builds rows from =name=value words, values may hold = and be empty', () => {
    const [s] = new SentenceDecoder().push(
      encodeSentence(['!re', '=.id=*1', '=comment=a=b', '=empty=', '=noval', '.tag=3', '=__proto__=x']),
    );
    const row = rowOf(s!);
    expect(Object.keys(row)).toEqual(['.id', 'comment', 'empty', 'noval', '__proto__']);
    expect([row['.id'], row['comment'], row['empty'], row['noval']]).toEqual(['*1', 'a=b', '', '']);
    // A hostile key is plain data, not a prototype switch.
    expect(row['__proto__']).toBe('x');
    expect(Object.getPrototypeOf(row)).toBeNull();
    expect(rawValue(row, 'comment')!.toString()).toBe('a=b');
    expect(rawValue({ a: 'b' }, 'a')!.toString()).toBe('b');
    expect(rawValue(row, 'missing')).toBeUndefined();
  });

  it('keeps exact bytes for values that are not UTF-8, as a private copy', () => {
    const binary = Buffer.from([0xff, 0xfe, 0x00, 0x80]);
    const chunk = encodeSentence(['!re', '=name=x', Buffer.concat([Buffer.from('=data='), binary]), '=é=ü']);
    const [s] = new SentenceDecoder().push(chunk);
    const row = rowOf(s!);
    chunk.fill(0); // the socket's buffer is reused
    expect(rawValue(row, 'data')!.equals(binary)).toBe(true);
    expect(rawValue(row, 'é')!.toString()).toBe('ü');
    expect(rawValue(row, 'name')!.toString()).toBe('x');
  });
});

describe('login challenge', () => {
  it('matches the protocols.md vector', () => {
    expect(challengeResponse('passTest', 'abc123')).toBe('0021277bff9ac7caf06aa608e46616d47f');
  });
  it('refuses a challenge that is not hex', () => {
    expect(() => challengeResponse('x', 'xyz')).toThrow(TypeError);
  });
});
