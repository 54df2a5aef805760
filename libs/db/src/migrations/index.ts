import { Foundation1763800000000 } from './1763800000000-Foundation';
import { ControlPlane1763900000000 } from './1763900000000-ControlPlane';
import { GatewayLink1764000000000 } from './1764000000000-GatewayLink';
import { Jobs1764500000000 } from './1764500000000-Jobs';
import { GatewayPki1765000000000 } from './1765000000000-GatewayPki';
import { Telemetry1765100000000 } from './1765100000000-Telemetry';
import { AppLogin1766100000000 } from './1766100000000-AppLogin';
import { Invitations1766200000000 } from './1766200000000-Invitations';
import { ApiKeyMembership1766301100000 } from './1766301100000-ApiKeyMembership';
import { GatewayRegionBinding1766301200000 } from './1766301200000-GatewayRegionBinding';
import { JobLease1766500000000 } from './1766500000000-JobLease';
import { Idempotency1766600000000 } from './1766600000000-Idempotency';
import { KeyIdsInUse1766610000000 } from './1766610000000-KeyIdsInUse';
import { SelfHeal1766700000000 } from './1766700000000-SelfHeal';
import { MfaRecovery1766800000000 } from './1766800000000-MfaRecovery';
import { CommitConfirm1767050000000 } from './1767050000000-CommitConfirm';
import { SafeChanges1767060000000 } from './1767060000000-SafeChanges';
import { Alerts1767070000000 } from './1767070000000-Alerts';
import { Rollouts1767080000000 } from './1767080000000-Rollouts';
import { FirmwarePolicy1767090000000 } from './1767090000000-FirmwarePolicy';
import { ArmedRollbackIndex1767100000000 } from './1767100000000-ArmedRollbackIndex';
import { AlertEventsMore1767110000000 } from './1767110000000-AlertEventsMore';
import { CertificateExpiry1767110000001 } from './1767110000001-CertificateExpiry';
import { TelemetryHealth1767110000002 } from './1767110000002-TelemetryHealth';
import { RolloutApprovals1767130000000 } from './1767130000000-RolloutApprovals';
import { JobStepsHot1767140000000 } from './1767140000000-JobStepsHot';
import { SiteDegraded1767140000100 } from './1767140000100-SiteDegraded';

/**
 * Every migration, in order. Listed explicitly (not a glob) so the same array works from
 * compiled output, from tests and from the migration CLI.
 */
export const MIGRATIONS = [
  Foundation1763800000000,
  ControlPlane1763900000000,
  GatewayLink1764000000000,
  Jobs1764500000000,
  GatewayPki1765000000000,
  Telemetry1765100000000,
  AppLogin1766100000000,
  Invitations1766200000000,
  ApiKeyMembership1766301100000,
  GatewayRegionBinding1766301200000,
  JobLease1766500000000,
  Idempotency1766600000000,
  KeyIdsInUse1766610000000,
  SelfHeal1766700000000,
  MfaRecovery1766800000000,
  CommitConfirm1767050000000,
  SafeChanges1767060000000,
  Alerts1767070000000,
  Rollouts1767080000000,
  FirmwarePolicy1767090000000,
  ArmedRollbackIndex1767100000000,
  AlertEventsMore1767110000000,
  CertificateExpiry1767110000001,
  TelemetryHealth1767110000002,
  RolloutApprovals1767130000000,
  JobStepsHot1767140000000,
  SiteDegraded1767140000100,
];
