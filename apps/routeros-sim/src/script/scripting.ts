/**
 * Wiring of the script language into the simulator: registers `/import`, `/export` (any
 * exported menu), `/execute`, `/tool/fetch` and a `/system/script/run` that really runs the
 * script with the Engine, plus `runScript()` and `createRouterModel()` for tests.
 */
import { populate, type InitialConfig } from '../model/defaults';
import { maintainConnectedRoutes } from '../model/derived';
import { Engine, type CommandContext, type Running } from '../model/engine';
import { RouterState } from '../model/state';
import { CATEGORY } from '../model/types';
import { EXPORT_SECTIONS } from '../export/export';
import { resetConfiguration } from '../export/reset';
import { hostOf } from './host';
import { Interpreter, type RunOptions, type RunResult } from './interpreter';
import { toStr, type Val } from './values';

/** Every menu directory that may run `export` (`ip`, `ip/firewall`, `ip/firewall/filter`...). */
function exportDirs(): string[] {
  const dirs = new Set<string>(['']);
  for (const path of EXPORT_SECTIONS) {
    const parts = path.split('/');
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  return [...dirs];
}

/**
 * Registers the script commands with an engine: `/import`, `/execute`, `/tool/fetch`,
 * `/system/script/run` (really runs the source), `/system/reset-configuration
 * no-defaults=yes` and `export` in every exported menu.
 * They run asynchronously (fetch, `:delay`) and can be cancelled like streaming commands.
 */
export function installScripting(engine: Engine): void {
  const register = (dir: string, name: string): void => {
    engine.register(dir ? `${dir}/${name}` : name, (ctx) => runScripted(engine, ctx, dir, name));
  };
  register('', 'import');
  register('', 'execute');
  register('tool', 'fetch');
  register('system/script', 'run');
  register('system', 'reset-configuration');
  for (const dir of exportDirs()) register(dir, 'export');
}

function runScripted(engine: Engine, ctx: CommandContext, dir: string, name: string): Running {
  const controller = new AbortController();
  let stopped = false;
  const interp = new Interpreter(hostOf(engine), { session: ctx.session, signal: controller.signal });
  const named = new Map<string, Val>([...ctx.args].filter(([k]) => k !== '.proplist'));
  const out = ctx.sink;
  void interp
    .invoke(dir, name, named)
    .then((value) => {
      if (stopped) return;
      if (name === 'export' && !named.has('file')) {
        out.done(interp.output.join('\n'));
        return;
      }
      if (value instanceof Map) out.row(Object.fromEntries([...value].map(([k, v]) => [k, toStr(v)])));
      if (name === 'execute') out.done(toStr(value));
      else out.done();
    })
    .catch((err: unknown) => {
      if (stopped) return;
      out.trap({ message: err instanceof Error ? err.message : String(err), category: CATEGORY.scripting });
      out.done();
    });
  return {
    stop: () => {
      stopped = true;
      controller.abort();
    },
    rows: 0,
  };
}

/** Boot: scheduler entries with `start-time=startup` run, intervals are armed. */
export function bootScripting(engine: Engine): void {
  hostOf(engine).scheduler.start();
}

/** Router stopped or rebooting: timers off, running scheduler scripts interrupted. */
export function haltScripting(engine: Engine): void {
  hostOf(engine).scheduler.stop();
}

/** Script text for the interpreter: strings are Unicode text (sent as UTF-8), buffers are bytes. */
export function scriptBytes(source: string | Uint8Array): string {
  return typeof source === 'string'
    ? Buffer.from(source, 'utf8').toString('latin1')
    : Buffer.from(source).toString('latin1');
}

/**
 * Runs a script on a router (a SimRouter or `createRouterModel()`), like pasting it into
 * the terminal: never throws for script errors, reports them in the result.
 */
export function runScript(
  router: { readonly engine: Engine },
  source: string | Uint8Array,
  options: RunOptions = {},
): Promise<RunResult> {
  return hostOf(router.engine).run(scriptBytes(source), options);
}

/** Waits until scheduler runs in progress have finished (tests). */
export function schedulerIdle(router: { readonly engine: Engine }): Promise<void> {
  return hostOf(router.engine).scheduler.idle();
}

export interface RouterModelOptions {
  readonly version?: string;
  readonly seed?: number;
  readonly identity?: string;
  readonly users?: InitialConfig['users'];
  readonly groups?: InitialConfig['groups'];
  /** Like `/system reset-configuration no-defaults=yes` (the router an export is imported into). */
  readonly noDefaults?: boolean;
}

/** A router without network listeners: state + scripting engine (fast, for tests). */
export function createRouterModel(options: RouterModelOptions = {}): { state: RouterState; engine: Engine } {
  const state = new RouterState({ version: options.version ?? '7.16', seed: options.seed ?? 1 });
  populate(state, {
    identity: options.identity ?? 'MikroTik',
    users: options.users ?? [],
    groups: options.groups ?? [],
  });
  if (options.noDefaults) resetConfiguration(state);
  maintainConnectedRoutes(state);
  const engine = new Engine(state);
  installScripting(engine);
  return { state, engine };
}
