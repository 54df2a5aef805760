/**
 * Safe mode as RouterOS 7.18+ offers it to scripts and the API (`/safe-mode/take`,
 * `/safe-mode/release`, `/safe-mode/unroll`, tik4net's API client relies on these; 6.x has
 * no /safe-mode menu and answers `no such command or directory (safe-mode)`, as does 7.x
 * before 7.18 here). While one session holds it, every configuration change (from any
 * session) is undoable; `unroll` or the end of the holding session puts the configuration
 * back as it was at `take`; `release` keeps it. The history holds 100 actions: one more
 * and safe mode is left without reverting anything.
 *
 * The holder's end: a connection that closes normally unrolls at once; one that vanishes
 * (its packets dropped, e.g. by a firewall rule) unrolls when the router's TCP gives up,
 * after `LOST_SESSION_MS` of router time (RouterOS: "TCP timeout is 9 minutes").
 */
import type { ConfigSnapshot, RouterState } from './state';
import { atLeast } from '../version';

export const SAFE_MODE_SINCE = '7.18';
export const HISTORY_LIMIT = 100;
export const LOST_SESSION_MS = 9 * 60_000;

interface Hold {
  readonly owner: object;
  readonly snapshot: ConfigSnapshot;
  actions: number;
  /** Router ms at which a lost holder's changes are undone. */
  unrollAt?: number;
  timer?: NodeJS.Timeout;
}

export class SafeMode {
  private hold: Hold | undefined;
  private offClock: (() => void) | undefined;

  constructor(private readonly state: RouterState) {}

  available(): boolean {
    return atLeast(this.state.version, SAFE_MODE_SINCE);
  }

  /** Who holds safe mode (a session object), if anyone. */
  get owner(): object | undefined {
    return this.hold?.owner;
  }

  /** Undoable actions recorded since take. */
  get actions(): number {
    return this.hold?.actions ?? 0;
  }

  /** Returns an error message when someone else holds it. */
  take(owner: object): string | undefined {
    if (this.hold && this.hold.owner !== owner) return 'failure: safe mode already taken by another session';
    if (this.hold) return undefined;
    this.hold = { owner, snapshot: this.state.snapshot(), actions: 0 };
    this.state.log('system,info', 'safe mode taken');
    return undefined;
  }

  release(owner: object): void {
    if (this.hold?.owner !== owner) return;
    this.clear();
    this.state.log('system,info', 'safe mode released');
  }

  unroll(owner: object): void {
    if (this.hold?.owner !== owner) return;
    this.undo();
  }

  /** One history action (add, set, remove, move...) happened, by anyone. */
  recordAction(): void {
    const h = this.hold;
    if (!h || h.unrollAt !== undefined) {
      if (h) h.actions++;
      return;
    }
    h.actions++;
    if (h.actions > HISTORY_LIMIT) {
      // No room in the history: safe mode ends and nothing will be undone.
      this.clear();
      this.state.log('system,warning', 'safe mode released: too many changes');
    }
  }

  /** The owner's session ended: `lost` = its connection vanished without a close. */
  ended(owner: object, lost: boolean): void {
    const h = this.hold;
    if (!h || h.owner !== owner) return;
    if (!lost) {
      this.undo();
      return;
    }
    h.unrollAt = this.state.now() + LOST_SESSION_MS;
    this.offClock = this.state.onClock(() => this.checkLost());
    this.checkLost();
  }

  private checkLost(): void {
    const h = this.hold;
    if (!h || h.unrollAt === undefined) return;
    if (h.timer) clearTimeout(h.timer);
    const left = h.unrollAt - this.state.now();
    if (left <= 0) {
      this.undo();
      return;
    }
    h.timer = setTimeout(() => this.checkLost(), Math.min(2 ** 31 - 1, Math.ceil(left / this.state.timeScale) + 1));
    h.timer.unref();
  }

  private undo(): void {
    const h = this.hold;
    if (!h) return;
    this.clear();
    this.state.restore(h.snapshot);
    this.state.log('system,info', 'safe mode changes undone');
  }

  private clear(): void {
    if (this.hold?.timer) clearTimeout(this.hold.timer);
    this.hold = undefined;
    this.offClock?.();
    this.offClock = undefined;
  }

  /** Reboot: the holder is gone and RouterOS undoes the floating changes. */
  rebooted(): void {
    this.undo();
  }
}
