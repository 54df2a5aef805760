/**
 * Per-router scripting state: global variables, the PEMs behind imported certificates
 * (for `/tool fetch check-certificate=yes`), the scheduler, and the entry points the
 * interpreter uses to export, write files and fetch.
 */
import { X509Certificate } from 'node:crypto';
import { Engine, type Session } from '../model/engine';
import type { RouterState } from '../model/state';
import { exportConfig, type ExportOptions } from '../export/export';
import { toolFetch } from './fetch';
import { Interpreter, type RunOptions, type RunResult } from './interpreter';
import { Scheduler } from './scheduler';
import type { Val } from './values';

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

export class ScriptHost {
  readonly globals = new Map<string, Val>();
  /** PEM by sha256 fingerprint (lower-case hex, as /certificate shows it). */
  private readonly pems = new Map<string, string>();
  readonly scheduler: Scheduler;

  constructor(readonly engine: Engine) {
    this.scheduler = new Scheduler(this);
  }

  get state(): RouterState {
    return this.engine.state;
  }

  /** A throwaway router with a copy of this one's state (nothing it does reaches this router). */
  sandbox(): ScriptHost {
    const host = new ScriptHost(new Engine(this.state.clone()));
    for (const [k, v] of this.globals) host.globals.set(k, v);
    for (const [k, v] of this.pems) host.pems.set(k, v);
    return host;
  }

  /** Runs script text (a byte string: one char per byte). */
  run(source: string, options: RunOptions = {}): Promise<RunResult> {
    return new Interpreter(this, options).run(source);
  }

  fetch(named: Map<string, Val>, pos: Val[], interp: Interpreter): Promise<Val> {
    return toolFetch(this, named, pos, interp);
  }

  exportText(session: Session, options: ExportOptions): string {
    const sensitive = options.showSensitive === true && session.policies.has('sensitive');
    return exportConfig(this.engine, { ...options, showSensitive: sensitive });
  }

  /** Creates or replaces a /file entry (contents as a byte string). */
  writeFile(name: string, contents: string): void {
    const c = this.state.clock();
    const stamp = `${c.date} ${c.time}`;
    const size = String(contents.length);
    const existing = this.state.find('file', { name });
    if (existing) {
      this.state.update('file', existing, {
        contents,
        size,
        ...(this.state.features.v7 ? { 'last-modified': stamp } : {}),
      });
    } else {
      this.state.insert('file', {
        name,
        type: name.endsWith('.rsc') ? 'script' : 'file',
        contents,
        size,
        'creation-time': stamp,
        ...(this.state.features.v7 ? { 'last-modified': stamp } : {}),
      });
    }
  }

  /** Before `/certificate import`: keeps the PEMs so fetch can verify against them later. */
  rememberCertificates(fileName: string): void {
    const file = this.state.find('file', { name: fileName });
    for (const pem of (file?.values['contents'] ?? '').match(PEM_BLOCK) ?? []) {
      try {
        const cert = new X509Certificate(pem);
        this.pems.set(cert.fingerprint256.replace(/:/g, '').toLowerCase(), pem);
      } catch {
        // Not a certificate: the engine reports it.
      }
    }
  }

  /** PEMs of the router's trusted certificates (the trust store of `check-certificate=yes`). */
  trustedPems(): string[] {
    const out: string[] = [];
    for (const item of this.state.items('certificate')) {
      if (item.values['trusted'] !== 'true') continue;
      const pem = item.values['.pem'] ?? this.pems.get(item.values['fingerprint'] ?? '');
      if (pem) out.push(pem);
    }
    return out;
  }
}

const HOSTS = new WeakMap<Engine, ScriptHost>();

/** The scripting state of a router (created on first use). */
export function hostOf(engine: Engine): ScriptHost {
  let host = HOSTS.get(engine);
  if (!host) {
    host = new ScriptHost(engine);
    HOSTS.set(engine, host);
  }
  return host;
}
