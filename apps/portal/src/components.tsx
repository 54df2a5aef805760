import { Alert, Button, Card, Code, CopyButton, Group, Loader, Select, Table, Text, Title } from '@mantine/core';
import type { ReactNode } from 'react';
import type { Role } from './api';

/** A two-column list of facts (`dl`, so screen readers pair each label with its value). */
export function Facts({ rows }: { rows: [string, ReactNode][] }) {
  return (
    <dl className="facts">
      {rows.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v ?? '—'}</dd>
        </div>
      ))}
    </dl>
  );
}

/** A secret or command with a copy button (the text stays selectable). */
export function Copyable({ value, label }: { value: string; label: string }) {
  return (
    <Group gap="xs" wrap="nowrap" align="start">
      <Code
        block
        style={{ flex: 1, whiteSpace: 'pre-wrap', wordBreak: 'break-all' }}
        aria-label={label}
        data-testid="copyable"
      >
        {value}
      </Code>
      <CopyButton value={value}>
        {({ copied, copy }) => (
          <Button variant="default" onClick={copy} aria-label={`Copy ${label}`} miw={80}>
            {copied ? 'Copied' : 'Copy'}
          </Button>
        )}
      </CopyButton>
    </Group>
  );
}

/** A red `role="alert"` box for an error text; nothing at all when there is none. */
export function ErrorAlert({
  error,
  title,
  mt,
  mb,
}: {
  error: string | null | undefined;
  title?: string;
  mt?: string;
  mb?: string;
}) {
  if (!error) return null;
  return (
    <Alert color="red" role="alert" title={title} mt={mt} mb={mb}>
      {error}
    </Alert>
  );
}

/** A table row's destructive action (revoke, remove): small, subtle and red; `name` is what a screen reader says. */
export function RowDangerButton({ label, name, onClick }: { label: string; name: string; onClick: () => void }) {
  return (
    <Button size="xs" variant="subtle" color="red" onClick={onClick} aria-label={name}>
      {label}
    </Button>
  );
}

/** The role picker of a form that grants a role (an invitation, an API key): only `roles` are offered. */
export function RoleSelect({ roles, value, onChange }: { roles: Role[]; value: Role; onChange: (r: Role) => void }) {
  return (
    <Select label="Role" data={roles} value={value} allowDeselect={false} onChange={(v) => v && onChange(v as Role)} />
  );
}

/** A table's header row, one cell a column (a column may be a node, e.g. a screen-reader-only label). */
export function TableHead({ columns }: { columns: readonly ReactNode[] }) {
  return (
    <Table.Thead>
      <Table.Tr>
        {columns.map((c, i) => (
          <Table.Th key={i}>{c}</Table.Th>
        ))}
      </Table.Tr>
    </Table.Thead>
  );
}

/**
 * A bordered card with a horizontally scrolling table: the header row from `columns`, the body
 * rows as `children`, and `footer` (e.g. an {@link EmptyNote}) below the table.
 */
export function CardTable(props: {
  minWidth: number;
  columns: readonly ReactNode[];
  striped?: boolean;
  highlightOnHover?: boolean;
  footer?: ReactNode;
  children: ReactNode;
}) {
  return (
    <Card withBorder padding={0}>
      <Table.ScrollContainer minWidth={props.minWidth}>
        <Table striped={props.striped} highlightOnHover={props.highlightOnHover}>
          <TableHead columns={props.columns} />
          <Table.Tbody>{props.children}</Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {props.footer}
    </Card>
  );
}

/** The dimmed line under (or instead of) an empty list. */
export function EmptyNote({ children }: { children: ReactNode }) {
  return (
    <Text p="md" c="dimmed">
      {children}
    </Text>
  );
}

/** A bordered card with a section heading, optionally with controls at the heading's right. */
export function Panel({ title, actions, children }: { title: ReactNode; actions?: ReactNode; children: ReactNode }) {
  const heading = (
    <Title order={3} size="h4" mb={actions ? undefined : 'xs'}>
      {title}
    </Title>
  );
  return (
    <Card withBorder>
      {actions ? (
        <Group justify="space-between" mb="xs">
          {heading}
          {actions}
        </Group>
      ) : (
        heading
      )}
      {children}
    </Card>
  );
}

/** What a page shows while its main record is not there: why it failed, or a loader. */
export function NotLoaded({
  loaded,
  title,
  label,
}: {
  loaded: { error: string | null };
  title: string;
  label: string;
}) {
  return loaded.error ? (
    <Alert color="red" title={title}>
      {loaded.error}
    </Alert>
  ) : (
    <Loader aria-label={label} />
  );
}
