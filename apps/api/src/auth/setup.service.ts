import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import {
  Database,
  MembershipsRepository,
  SetupRepository,
  TenantScope,
  TenantsRepository,
  UsersRepository,
  type PlatformTx,
} from '@backplane/db';
import { ApiError } from '../common/api-error';
import { AuditService } from '../audit/audit.service';
import { API_DEPS, type ApiDeps } from '../deps';
import { hashPassword, passwordProblem } from './passwords';
import { newSecret, TokenService } from './tokens';

export interface FirstOwner {
  email: string;
  displayName: string;
  password: string;
  tenantName: string;
  tenantSlug: string;
}

function slugify(name: string): string {
  const s = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63);
  return /^[a-z0-9]/.test(s) ? s : `t-${s}`.slice(0, 63);
}

/**
 * No default password: on an empty database the api either creates the first owner from
 * BOOTSTRAP_OWNER_EMAIL / BOOTSTRAP_OWNER_PASSWORD, or prints a one-time setup token
 * that `POST /api/v1/setup` consumes exactly once.
 */
@Injectable()
export class SetupService implements OnApplicationBootstrap {
  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly tokens: TokenService,
    private readonly setup: SetupRepository,
    private readonly users: UsersRepository,
    private readonly tenants: TenantsRepository,
    private readonly memberships: MembershipsRepository,
    private readonly audit: AuditService,
  ) {}

  private get db(): Database {
    return this.deps.db;
  }

  async onApplicationBootstrap(): Promise<void> {
    const { config, logger } = this.deps;
    const empty = (await this.db.inPlatform((tx) => this.users.count(tx))) === 0;
    if (!empty) return;
    if (config.BOOTSTRAP_OWNER_EMAIL && config.BOOTSTRAP_OWNER_PASSWORD) {
      await this.db.inPlatform(async (tx) => {
        if ((await this.users.count(tx)) > 0) return;
        await this.setup.lockFirstOwner(tx);
        if ((await this.users.count(tx)) > 0) return;
        await this.createFirstOwner(tx, {
          email: config.BOOTSTRAP_OWNER_EMAIL!,
          displayName: config.BOOTSTRAP_OWNER_EMAIL!,
          password: config.BOOTSTRAP_OWNER_PASSWORD!,
          tenantName: config.BOOTSTRAP_TENANT_NAME,
          tenantSlug: slugify(config.BOOTSTRAP_TENANT_NAME),
        });
        await this.setup.markConsumed(tx);
      });
      logger.info({ email: config.BOOTSTRAP_OWNER_EMAIL }, 'first owner created from BOOTSTRAP_OWNER_EMAIL');
      return;
    }
    const token = newSecret('bps');
    await this.db.inPlatform((tx) => this.setup.storeToken(tx, this.tokens.hash(token)));
    logger.warn(
      `No users yet. One-time setup token: ${token} - create the first owner with POST /api/v1/setup ` +
        '{ setupToken, email, displayName, password, tenantName, tenantSlug }. It works once; a restart prints a new one.',
    );
  }

  async consume(token: string, owner: FirstOwner): Promise<{ userId: string; tenantId: string }> {
    const tokenHash = this.tokens.hash(token);
    // Cheap check first, so random tokens never cost an argon2 hash; consumed atomically below.
    if (!(await this.db.inPlatform((tx) => this.setup.isOpen(tx, tokenHash)))) {
      throw new ApiError('unauthorized', 'setup token is not valid or was already used');
    }
    const problem = passwordProblem(owner.password, owner.email);
    if (problem) throw new ApiError('validation_failed', `password ${problem}`);
    const passwordHash = await hashPassword(owner.password);
    return this.db.inPlatform(async (tx) => {
      if (!(await this.setup.consume(tx, tokenHash))) {
        throw new ApiError('unauthorized', 'setup token is not valid or was already used');
      }
      return this.createFirstOwner(tx, owner, passwordHash);
    });
  }

  private async createFirstOwner(
    tx: PlatformTx,
    owner: FirstOwner,
    passwordHash?: string,
  ): Promise<{ userId: string; tenantId: string }> {
    const user = await this.users.create(tx, {
      email: owner.email,
      displayName: owner.displayName,
      passwordHash: passwordHash ?? (await hashPassword(owner.password)),
      platformOperator: true,
    });
    const tenant = await this.tenants.create(tx, { slug: owner.tenantSlug, name: owner.tenantName });
    const ttx = await this.db.enterTenant(tx, TenantScope.authenticated(tenant.id));
    await this.memberships.add(ttx, user.id, 'owner');
    await this.audit.record(
      ttx,
      { actorType: 'system', actorId: null, actorLabel: 'first-start setup', sourceIp: null, requestId: null },
      {
        action: 'tenant.created',
        targetType: 'tenant',
        targetId: tenant.id,
        after: { slug: tenant.slug, owner: user.email },
      },
    );
    return { userId: user.id, tenantId: tenant.id };
  }
}
