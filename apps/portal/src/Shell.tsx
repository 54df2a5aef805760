import {
  Alert,
  AppShell,
  Badge,
  Burger,
  Button,
  Group,
  NavLink,
  Select,
  Text,
  Title,
  VisuallyHidden,
} from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import { useEffect, useMemo, useRef } from 'react';
import { logout, type Me } from './api';
import { AlertsPage } from './pages/Alerts';
import { ApiKeysPage } from './pages/ApiKeys';
import { AuditPage } from './pages/Audit';
import { ApprovalsPage, PlanPage, PlansPage } from './pages/Changes';
import { ChannelsPage } from './pages/Channels';
import { FleetPage } from './pages/Fleet';
import { BatchPage, JobsPage } from './pages/Jobs';
import { MembersPage } from './pages/Members';
import { RolloutPage, RolloutsPage } from './pages/Rollouts';
import { OnboardPage } from './pages/Onboard';
import { PlatformPage } from './pages/Platform';
import { SecurityPage } from './pages/Security';
import { SitePage } from './pages/Site';
import { RealtimeProvider, useLinkState } from './realtime';
import { Link, match, navigate } from './router';
import { SessionContext, sessionFor, tenantPath } from './session';

interface Props {
  me: Me;
  path: string;
  reloadMe: () => Promise<void>;
  onSignedOut: () => void;
}

export function Shell({ me, path, reloadMe, onSignedOut }: Props) {
  const [opened, { toggle, close }] = useDisclosure();
  const slug = /^\/t\/([^/]+)/.exec(path)?.[1];
  const inTenant = me.tenants.find((t) => t.slug === (slug ? decodeURIComponent(slug) : undefined));
  const first = me.tenants[0];
  // Pages outside a tenant (regions and gateways) keep the last tenant's navigation and switcher.
  const lastTenant = useRef(inTenant);
  if (inTenant) lastTenant.current = inTenant;
  const stillMember = me.tenants.find((t) => t.id === lastTenant.current?.id);
  const tenant = inTenant ?? (slug ? undefined : (stillMember ?? first));

  useEffect(() => {
    if (path === '/' || (slug && !inTenant)) {
      if (first) navigate(tenantPath(first), { replace: true });
      else if (me.platformOperator) navigate('/platform', { replace: true });
    }
  }, [path, slug, inTenant, first, me.platformOperator]);
  useEffect(close, [path, close]);

  const session = useMemo(() => (tenant ? sessionFor(me, tenant, reloadMe) : null), [me, tenant, reloadMe]);
  const signOut = async () => {
    await logout();
    onSignedOut();
  };

  const nav: { href: string; label: string; show: boolean; active: boolean }[] = session
    ? [
        {
          href: tenantPath(session.tenant),
          label: 'Fleet',
          show: true,
          active: path === tenantPath(session.tenant) || path.startsWith(tenantPath(session.tenant, '/sites')),
        },
        {
          href: tenantPath(session.tenant, '/jobs'),
          label: 'Jobs',
          show: true,
          active: path.startsWith(tenantPath(session.tenant, '/jobs')),
        },
        {
          href: tenantPath(session.tenant, '/plans'),
          label: 'Plans',
          show: true,
          active: path.startsWith(tenantPath(session.tenant, '/plans')),
        },
        {
          href: tenantPath(session.tenant, '/approvals'),
          label: 'Approvals',
          show: true,
          active: path === tenantPath(session.tenant, '/approvals'),
        },
        {
          href: tenantPath(session.tenant, '/rollouts'),
          label: 'Rollouts',
          show: true,
          active: path.startsWith(tenantPath(session.tenant, '/rollouts')),
        },
        {
          href: tenantPath(session.tenant, '/onboard'),
          label: 'Add a site',
          show: session.can('operator'),
          active: path === tenantPath(session.tenant, '/onboard'),
        },
        {
          href: tenantPath(session.tenant, '/members'),
          label: 'Users and roles',
          show: true,
          active: path === tenantPath(session.tenant, '/members'),
        },
        {
          href: tenantPath(session.tenant, '/api-keys'),
          label: 'API keys',
          show: session.can('admin'),
          active: path === tenantPath(session.tenant, '/api-keys'),
        },
        {
          href: tenantPath(session.tenant, '/alerts'),
          label: 'Alerts',
          show: true,
          active: path === tenantPath(session.tenant, '/alerts'),
        },
        {
          href: tenantPath(session.tenant, '/channels'),
          label: 'Notification channels',
          show: session.can('operator'),
          active: path === tenantPath(session.tenant, '/channels'),
        },
        {
          href: tenantPath(session.tenant, '/audit'),
          label: 'Audit log',
          show: session.can('admin'),
          active: path === tenantPath(session.tenant, '/audit'),
        },
      ]
    : [];
  if (me.platformOperator)
    nav.push({ href: '/platform', label: 'Regions and gateways', show: true, active: path === '/platform' });

  let page = null;
  let m: Record<string, string> | null;
  if (path === '/platform' && me.platformOperator) page = <PlatformPage />;
  else if (path === '/account/security') page = <SecurityPage me={me} reloadMe={reloadMe} />;
  else if (session) {
    if ((m = match('/t/:tenant/sites/:siteId', path))) page = <SitePage siteId={m['siteId']!} key={m['siteId']} />;
    else if (match('/t/:tenant/onboard', path)) page = <OnboardPage />;
    else if (match('/t/:tenant/jobs', path)) page = <JobsPage />;
    else if ((m = match('/t/:tenant/jobs/batches/:batchId', path)))
      page = <BatchPage batchId={m['batchId']!} key={m['batchId']} />;
    else if ((m = match('/t/:tenant/plans/:planId', path))) page = <PlanPage planId={m['planId']!} key={m['planId']} />;
    else if (match('/t/:tenant/plans', path)) page = <PlansPage />;
    else if (match('/t/:tenant/approvals', path)) page = <ApprovalsPage />;
    else if (match('/t/:tenant/rollouts', path)) page = <RolloutsPage />;
    else if ((m = match('/t/:tenant/rollouts/:rolloutId', path)))
      page = <RolloutPage rolloutId={m['rolloutId']!} key={m['rolloutId']} />;
    else if (match('/t/:tenant/members', path)) page = <MembersPage />;
    else if (match('/t/:tenant/api-keys', path)) page = <ApiKeysPage />;
    else if (match('/t/:tenant/audit', path)) page = <AuditPage />;
    else if (match('/t/:tenant/alerts', path)) page = <AlertsPage />;
    else if (match('/t/:tenant/channels', path)) page = <ChannelsPage />;
    else if (match('/t/:tenant', path)) page = <FleetPage />;
  }
  if (!page && me.tenants.length === 0 && !me.platformOperator)
    page = <Alert title="No workspace">Your account is not a member of any tenant yet. Ask an owner to add you.</Alert>;
  if (!page) page = <Alert title="Not found">There is nothing at this address.</Alert>;

  const shell = (
    <AppShell
      header={{ height: 60 }}
      navbar={{ width: 240, breakpoint: 'sm', collapsed: { mobile: !opened } }}
      padding="md"
      className="app-root"
    >
      <a href="#main" className="skip-link">
        Skip to content
      </a>
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="Toggle navigation" />
            <Title order={1} size="h4">
              Backplane
            </Title>
          </Group>
          <Group gap="xs" wrap="nowrap">
            {me.tenants.length > 0 && (
              <Select
                aria-label="Tenant"
                data={me.tenants.map((t) => ({ value: t.slug, label: t.name }))}
                value={tenant?.slug ?? null}
                onChange={(v) => {
                  const t = me.tenants.find((x) => x.slug === v);
                  if (t) navigate(tenantPath(t));
                }}
                allowDeselect={false}
                w={{ base: 112, sm: 220 }}
                comboboxProps={{ withinPortal: true }}
              />
            )}
            {session && <LinkBadge />}
            <Text size="sm" visibleFrom="md" c="dimmed" data-testid="whoami">
              {me.displayName}
              {tenant ? ` · ${tenant.role}` : ''}
            </Text>
            <Button component={Link} href="/account/security" variant="subtle" size="xs">
              Two-factor
            </Button>
            <Button variant="default" size="xs" onClick={() => void signOut()}>
              Sign out
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" component="nav" aria-label="Main" className="app-navbar">
        <div className="app-navbar-links">
          <VisuallyHidden>
            <h2>Navigation</h2>
          </VisuallyHidden>
          {nav
            .filter((n) => n.show)
            .map((n) => (
              <NavLink
                key={n.href}
                component={Link}
                href={n.href}
                label={n.label}
                active={n.active}
                aria-current={n.active ? 'page' : undefined}
              />
            ))}
        </div>
      </AppShell.Navbar>
      <AppShell.Main id="main" tabIndex={-1}>
        <SessionContext.Provider value={session}>{page}</SessionContext.Provider>
      </AppShell.Main>
    </AppShell>
  );
  return session ? (
    <RealtimeProvider tenantId={session.tenant.id} key={session.tenant.id}>
      {shell}
    </RealtimeProvider>
  ) : (
    shell
  );
}

const LINK_LABEL = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', offline: 'Not live' };

/** Whether status changes arrive live (announced politely to screen readers when it changes). */
function LinkBadge() {
  const state = useLinkState();
  return (
    <Badge
      variant="dot"
      color={state === 'live' ? 'teal' : state === 'offline' ? 'red' : 'yellow'}
      role="status"
      aria-live="polite"
      data-testid="link-state"
      visibleFrom="xs"
    >
      {LINK_LABEL[state]}
    </Badge>
  );
}
