import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiResponse, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { ApiError } from '../common/api-error';
import { CurrentPrincipal, GatewayAccess, type Principal } from '../common/request';
import { ApiErrors } from '../common/validation';
import { PkiService } from './pki.service';

const CertificateBody = z.strictObject({
  csr: z
    .string()
    .min(100)
    .max(16_000)
    .regex(/-----BEGIN CERTIFICATE REQUEST-----/, 'a PEM certificate request (PKCS#10)'),
});
const CertificateResponse = z.object({
  certificatePem: z.string(),
  caPem: z.string(),
  crlPem: z.string(),
  serialNumber: z.string(),
  notAfter: z.iso.datetime(),
});

/** The deployment PKI: gateways trade a CSR for their server certificate (the CA and CRL are public under /o). */
@ApiTags('gateway-link')
@ApiErrors()
@Controller('api/v1')
export class PkiController {
  constructor(private readonly pki: PkiService) {}

  /**
   * Signs this gateway's server certificate (the key stays on the gateway). Called at
   * enrollment and when the certificate nears expiry; answers the CA chain and the CRL too.
   */
  @Post('gateway/certificate')
  @GatewayAccess()
  @ApiBearerAuth()
  @HttpCode(201)
  @ApiResponse({ status: 201, standardSchema: CertificateResponse })
  certificate(
    @CurrentPrincipal() p: Principal,
    @Body({ schema: CertificateBody }) body: z.infer<typeof CertificateBody>,
  ) {
    if (p.kind !== 'gateway') throw new ApiError('forbidden', 'gateways only');
    return this.pki.issue(p.gatewayId, body.csr);
  }
}
