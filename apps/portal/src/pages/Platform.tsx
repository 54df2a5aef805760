import { Badge, Card, Group, Loader, SimpleGrid, Stack, Table, Text, Title } from '@mantine/core';
import { api, type Gateway, type Page, type Region } from '../api';
import { ErrorAlert, TableHead } from '../components';
import { ago, useLoad, when } from '../util';

const GW_COLOR = { up: 'teal', down: 'red', revoked: 'gray' } as const;

/** Regions and their gateways, for platform operators. */
export function PlatformPage() {
  const data = useLoad(async (signal) => {
    const [regions, gateways] = await Promise.all([
      api<Page<Region>>('GET', '/regions', { query: { limit: 200 }, signal }),
      api<Page<Gateway>>('GET', '/gateways', { signal }),
    ]);
    return { regions: regions.items, gateways: gateways.items };
  }, []);
  if (data.error) return <ErrorAlert error={data.error} />;
  if (!data.data) return <Loader aria-label="Loading regions" />;
  const { regions, gateways } = data.data;

  return (
    <Stack>
      <Title order={2}>Regions and gateways</Title>
      {regions.length === 0 && <Text c="dimmed">No regions yet.</Text>}
      <SimpleGrid cols={{ base: 1, md: 2, xl: 3 }}>
        {regions.map((r) => {
          const gws = gateways.filter((g) => g.regionId === r.id);
          const up = gws.filter((g) => g.status === 'up').length;
          const live = gws.filter((g) => g.status !== 'revoked').length;
          const health = !r.enabled ? 'disabled' : up === 0 ? 'down' : up < live ? 'degraded' : 'healthy';
          const color = { disabled: 'gray', down: 'red', degraded: 'orange', healthy: 'teal' }[health];
          return (
            <Card withBorder key={r.id} component="section" aria-label={`Region ${r.name}`}>
              <Group justify="space-between" mb="xs">
                <div>
                  <Title order={3} size="h4">
                    {r.name}
                  </Title>
                  <Text size="sm" c="dimmed" className="mono">
                    {r.slug} · {r.publicHost}:{r.publicPort}
                  </Text>
                </div>
                <Badge color={color} size="lg" variant="light">
                  {health}
                </Badge>
              </Group>
              <Text size="sm" mb="xs">
                {up} of {live} gateway{live === 1 ? '' : 's'} up
              </Text>
              {gws.length > 0 && (
                <Table>
                  <TableHead columns={['Gateway', 'Status', 'Heartbeat', 'Version']} />
                  <Table.Tbody>
                    {gws.map((g) => (
                      <Table.Tr key={g.id}>
                        <Table.Td>{g.name}</Table.Td>
                        <Table.Td>
                          <Badge color={GW_COLOR[g.status]} variant="light">
                            {g.status}
                          </Badge>
                        </Table.Td>
                        <Table.Td title={when(g.lastHeartbeatAt)}>{ago(g.lastHeartbeatAt)}</Table.Td>
                        <Table.Td>{g.version ?? '—'}</Table.Td>
                      </Table.Tr>
                    ))}
                  </Table.Tbody>
                </Table>
              )}
            </Card>
          );
        })}
      </SimpleGrid>
    </Stack>
  );
}
