import { Button, Code, Group, Stack, Text, Textarea, TextInput } from '@mantine/core';
import { useState, type SyntheticEvent } from 'react';
import { api } from '../../api';
import { ErrorAlert, Panel } from '../../components';
import { JobProgress, JobState, TERMINAL, type Job } from '../../jobs';
import { useAction } from '../../util';

/** `name=value` lines to the attribute map of a RouterOS API command. */
export function parseAttributes(text: string): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) return `"${line}" is not name=value`;
    out[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  return out;
}

/**
 * One RouterOS API command as a `run-command` job (operator and above; the api audits it).
 * The answer rows are shown when the job ends; the job list below follows its progress too.
 */
export function CommandConsole({ base, jobs, onJob }: { base: string; jobs: Job[]; onJob: (job: Job) => void }) {
  const [command, setCommand] = useState('/system/resource/print');
  const [attrs, setAttrs] = useState('');
  const { busy, error, setError, run: act } = useAction();
  const [runId, setRunId] = useState<string | null>(null);
  // The live job list of the page keeps this job current.
  const run = jobs.find((j) => j.id === runId) ?? null;

  const submit = async (e: SyntheticEvent) => {
    e.preventDefault();
    const attributes = parseAttributes(attrs);
    if (typeof attributes === 'string') {
      setError(attributes);
      return;
    }
    await act(async () => {
      const job = await api<Job>('POST', `${base}/jobs`, {
        body: { kind: 'run-command', payload: { command, attributes } },
      });
      onJob(job);
      setRunId(job.id);
    });
  };

  return (
    <Panel title="Command console">
      <form onSubmit={(e) => void submit(e)} aria-label="Run a RouterOS command">
        <Stack gap="xs">
          <Group align="end" gap="sm" wrap="wrap">
            <TextInput
              label="Command"
              description="API path, e.g. /ip/address/print"
              value={command}
              onChange={(e) => setCommand(e.currentTarget.value)}
              required
              className="mono"
              style={{ flex: '1 1 260px' }}
            />
            <Textarea
              label="Attributes"
              description="name=value, one a line"
              value={attrs}
              onChange={(e) => setAttrs(e.currentTarget.value)}
              autosize
              minRows={1}
              maxRows={6}
              style={{ flex: '1 1 220px' }}
            />
            <Button type="submit" loading={busy}>
              Run
            </Button>
          </Group>
          <Text size="xs" c="dimmed">
            Runs as a job on the router and is recorded in the audit log.
          </Text>
        </Stack>
      </form>
      <ErrorAlert error={error} mt="xs" />
      {run && (
        <Stack gap={4} mt="sm" aria-live="polite">
          <Group gap="xs">
            <Code>{(run.payload as { command?: string } | null)?.command ?? command}</Code>
            <JobState job={run} />
          </Group>
          {!TERMINAL.has(run.state) ? (
            <JobProgress job={run} />
          ) : run.state === 'succeeded' ? (
            <Code block data-testid="console-output" style={{ maxHeight: 320, overflow: 'auto' }}>
              {JSON.stringify(run.result, null, 2)}
            </Code>
          ) : (
            <Text c="red" size="sm">
              {run.error ?? run.state}
            </Text>
          )}
        </Stack>
      )}
    </Panel>
  );
}
