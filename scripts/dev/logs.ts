/**
 * Where `npm start` puts the apps' output: every line in full into `DATA_DIR/logs/<app>.log`
 * (appended across starts), and on the terminal only what needs a person's attention (a
 * warning, an error, or a line that is not a JSON log line, e.g. a crash's stack trace), as
 * one short human line. So the start-up banner stays the last thing on the screen.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';

const LOUD = new Set(['warn', 'error', 'fatal', 40, 50, 60]);

/** The terminal form of one output line of `app`, or null when it only belongs in the file. */
export function terminalLine(app: string, line: string): string | null {
  const text = line.trimEnd();
  if (!text) return null;
  if (!text.startsWith('{')) return `[${app}] ${text}`;
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return `[${app}] ${text}`;
  }
  const level = entry['level'];
  if (!LOUD.has(level as string | number)) return null;
  const label = typeof level === 'number' ? (level >= 60 ? 'fatal' : level >= 50 ? 'error' : 'warn') : String(level);
  const err = entry['err'] as { message?: unknown } | undefined;
  const why = typeof err?.message === 'string' && err.message !== entry['msg'] ? ` (${err.message})` : '';
  return `[${app}] ${label}: ${typeof entry['msg'] === 'string' ? entry['msg'] : text}${why}`;
}

/** One app's output: each line appended to its log file, and echoed when it matters. */
export class AppLog {
  private readonly pending: { rest: string }[] = [];
  private readonly own = this.source();

  constructor(
    readonly app: string,
    readonly path: string,
    private readonly file: WriteStream,
    private readonly echo: (line: string) => void,
  ) {}

  /** pino's DestinationStream (an in-process app logs here directly). */
  write(chunk: string | Buffer): boolean {
    this.own(chunk);
    return true;
  }

  /** A writer for one stream of a child (stdout or stderr), split into lines on its own. */
  source(): (chunk: string | Buffer) => void {
    const state = { rest: '' };
    this.pending.push(state);
    return (chunk) => {
      const lines = (state.rest + chunk.toString()).split('\n');
      state.rest = lines.pop() ?? '';
      for (const line of lines) this.line(line);
    };
  }

  private line(line: string): void {
    this.file.write(`${line}\n`);
    const shown = terminalLine(this.app, line);
    if (shown !== null) this.echo(shown);
  }

  /** Writes what is left of unterminated last lines and closes the file. */
  end(): Promise<void> {
    for (const state of this.pending) {
      if (state.rest) this.line(state.rest);
      state.rest = '';
    }
    return new Promise<void>((resolve) => this.file.end(() => resolve()));
  }
}

/** The log files of one `npm start` under `DATA_DIR/logs/`. */
export class DevLogs {
  readonly dir: string;
  private readonly logs = new Map<string, AppLog>();

  constructor(
    dataDir: string,
    private readonly echo: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
  ) {
    this.dir = join(dataDir, 'logs');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  of(app: string): AppLog {
    let log = this.logs.get(app);
    if (!log) {
      const path = join(this.dir, `${app}.log`);
      log = new AppLog(app, path, createWriteStream(path, { flags: 'a', mode: 0o600 }), this.echo);
      this.logs.set(app, log);
    }
    return log;
  }

  get apps(): string[] {
    return [...this.logs.keys()];
  }

  async close(): Promise<void> {
    await Promise.all([...this.logs.values()].map((l) => l.end()));
  }
}
