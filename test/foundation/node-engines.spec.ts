import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import fastifyStatic from '@fastify/static';
import { FileTypeValidator } from '@nestjs/common';
import Fastify from 'fastify';
import { satisfies } from 'semver';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The declared engines are true for the production closure (docs/adr/0039-node-engines.md):
 * every installed package that is not dev-only accepts the Node running this test (Node 20
 * on every machine and in CI), and the packages overridden to stay on Node 20 still work
 * through the code that uses them.
 */
const ROOT = resolve(__dirname, '../..');

interface LockEntry {
  readonly version?: string;
  readonly dev?: boolean;
  readonly optional?: boolean;
  readonly link?: boolean;
}
interface Manifest {
  readonly name?: string;
  readonly version?: string;
  readonly engines?: { readonly node?: string };
}

const readJson = (file: string): unknown => JSON.parse(readFileSync(file, 'utf8'));

describe('Node engines', () => {
  it('no installed production package declares an engines.node range excluding this Node', () => {
    const lock = readJson(join(ROOT, 'package-lock.json')) as { packages: Record<string, LockEntry> };
    const refused: string[] = [];
    let checked = 0;
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (!path.includes('node_modules/') || entry.dev || entry.link) continue;
      const manifest = join(ROOT, path, 'package.json');
      if (!existsSync(manifest)) continue; // a foreign-platform optional build, not installed here
      const pkg = readJson(manifest) as Manifest;
      checked++;
      const range = pkg.engines?.node;
      if (range && !satisfies(process.versions.node, range, { includePrerelease: true }))
        refused.push(`${pkg.name}@${pkg.version} (${path}) wants node ${range}`);
    }
    expect(checked).toBeGreaterThan(100);
    expect(refused).toEqual([]);
  });

  it('the project declares the running Node, and the Dockerfile builds and runs the same major', () => {
    const root = readJson(join(ROOT, 'package.json')) as Manifest;
    expect(satisfies(process.versions.node, root.engines!.node!)).toBe(true);
    const dockerfile = readFileSync(join(ROOT, 'docker/Dockerfile'), 'utf8');
    const arg = /^ARG NODE_VERSION=(\d+)/m.exec(dockerfile);
    expect(arg?.[1]).toBe(process.versions.node.split('.')[0]);
    expect(dockerfile).not.toMatch(/FROM node:(?!\$\{NODE_VERSION\})/);
  });
});

describe('packages overridden for Node 20 work through their users', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bp-engines-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('content-disposition: @fastify/static downloads name the file, non-ASCII names included', async () => {
    writeFileSync(join(dir, 'backup.rsc'), '/system identity set name=r1\n');
    const app = Fastify();
    await app.register(fastifyStatic, { root: dir, serve: false });
    app.get('/download', (_req, reply) => reply.download('backup.rsc', 'Zürich router.rsc'));
    try {
      const res = await app.inject({ method: 'GET', url: '/download' });
      expect(res.statusCode).toBe(200);
      expect(res.body).toBe('/system identity set name=r1\n');
      expect(res.headers['content-disposition']).toBe(
        `attachment; filename="Z?rich router.rsc"; filename*=UTF-8''Z%C3%BCrich%20router.rsc`,
      );
    } finally {
      await app.close();
    }
  });

  it('cookie: requests injected with cookies carry them (light-my-request, used by app.inject)', async () => {
    const app = Fastify();
    app.get('/echo', (req) => ({ cookie: req.headers.cookie ?? null }));
    try {
      const res = await app.inject({ method: 'GET', url: '/echo', cookies: { session: 'a b', theme: 'dark' } });
      expect(res.json()).toEqual({ cookie: 'session=a%20b; theme=dark' });
      const set = await Fastify()
        .get('/set', (_req, reply) => reply.header('set-cookie', 'sid=1; Path=/; HttpOnly').send('ok'))
        .inject({ method: 'GET', url: '/set' });
      expect(set.cookies).toEqual([expect.objectContaining({ name: 'sid', value: '1', path: '/', httpOnly: true })]);
    } finally {
      await app.close();
    }
  });

  it("file-type: Nest's FileTypeValidator recognises a PNG by its content and refuses a disguised text file", async () => {
    const png = Buffer.from(
      'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
      'base64',
    );
    const validator = new FileTypeValidator({ fileType: 'image/png' });
    const file = (buffer: Buffer) =>
      ({ fieldname: 'f', originalname: 'x.png', mimetype: 'image/png', size: buffer.length, buffer }) as const;
    expect(await validator.isValid(file(png))).toBe(true);
    const text = file(Buffer.from('not an image at all, just text pretending to be one'));
    expect(await validator.isValid(text)).toBe(false);
    expect(validator.buildErrorMessage(text)).toMatch(/could not be detected from its content/);
  });
});
