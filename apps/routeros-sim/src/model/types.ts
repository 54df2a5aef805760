import type { VersionFeatures } from '../version';

/** A `!trap` as the router sends it: message plus optional category (docs/protocols §1). */
export interface Trap {
  readonly message: string;
  readonly category?: number;
}

export const CATEGORY = {
  missing: 0,
  argument: 1,
  interrupted: 2,
  scripting: 3,
  general: 4,
  api: 5,
} as const;

/** Thrown by the state engine; the transport turns it into one or more `!trap` sentences. */
export class RosError extends Error {
  readonly traps: readonly Trap[];
  constructor(message: string, category?: number, more: readonly Trap[] = []) {
    super(message);
    this.name = 'RosError';
    this.traps = [category === undefined ? { message } : { message, category }, ...more];
  }
}

export const POLICIES = [
  'local',
  'telnet',
  'ssh',
  'ftp',
  'reboot',
  'read',
  'write',
  'policy',
  'test',
  'winbox',
  'password',
  'web',
  'sniff',
  'sensitive',
  'api',
  'romon',
  'rest-api',
] as const;
export type Policy = (typeof POLICIES)[number];

/** How a property's input is checked and normalised. Values are stored as strings. */
export type PropType =
  | { readonly t: 'str'; readonly max?: number }
  | { readonly t: 'bool' }
  | { readonly t: 'int'; readonly min?: number; readonly max?: number }
  | { readonly t: 'enum'; readonly values: readonly string[] | ((f: VersionFeatures) => readonly string[]) }
  /** Must name an existing item of another menu (by its `name`), or one of `extra`. */
  | { readonly t: 'ref'; readonly menu: string; readonly extra?: readonly string[]; readonly negatable?: boolean }
  | { readonly t: 'ip' }
  | { readonly t: 'prefix'; readonly defaultLength?: number }
  | { readonly t: 'time' }
  | { readonly t: 'mac' }
  | { readonly t: 'list'; readonly of: PropType }
  | { readonly t: 'policy' };

export interface PropDef {
  readonly name: string;
  readonly type: PropType;
  /** Value when not set (omitted from print when undefined). */
  readonly default?: string | ((f: VersionFeatures) => string | undefined);
  /** Computed or router-owned: cannot be set. */
  readonly readonly?: boolean;
  /** `add` fails without it. */
  readonly required?: boolean;
  /** Shown only to a group with the `sensitive` policy. */
  readonly sensitive?: boolean;
  /** Never printed (user passwords). */
  readonly writeOnly?: boolean;
  /** First version that has the property. */
  readonly since?: string;
  /** First version that no longer has it. */
  readonly until?: string;
}

export interface MenuDef {
  /** CLI path with `/`, no leading slash: `ip/address`. */
  readonly path: string;
  /** `list` menus hold items with `.id`s; `single` menus are one settings object. */
  readonly kind: 'list' | 'single';
  /** Id space shared by views (e.g. /interface and /interface/vlan). Defaults to `path`. */
  readonly store?: string;
  /** For a view over a shared store: only items with these values (and `add` sets them). */
  readonly filter?: Readonly<Record<string, string>>;
  readonly props: readonly PropDef[];
  /** The property that names an item: `.id=ether1` finds it, references use it, must be unique. */
  readonly nameProp?: string;
  /** Extra uniqueness rules: property tuples and the trap message. */
  readonly unique?: readonly { readonly props: readonly string[]; readonly message: string }[];
  readonly canAdd?: boolean;
  readonly canRemove?: boolean;
  /** Read-only menu (no set). */
  readonly readOnly?: boolean;
  /** Policy needed for changes (default `write`). */
  readonly writePolicy?: Policy;
  readonly since?: string;
  /** Message when removing an item the router protects (builtin items). */
  readonly protect?: (values: Readonly<Record<string, string>>) => string | undefined;
}
