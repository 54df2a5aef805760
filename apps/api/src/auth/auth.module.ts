import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { AuthController } from './auth.controller';
import { AuthGuard } from './auth.guard';
import { AuthService } from './auth.service';
import { SetupController } from './setup.controller';
import { SetupService } from './setup.service';

/** Sign-in, sessions, MFA, first-owner setup, and the guard every route passes through. */
@Module({
  controllers: [AuthController, SetupController],
  providers: [
    AuthService,
    SetupService,
    { provide: APP_GUARD, useClass: AuthGuard },
    AuthGuard, // also injectable by class: the realtime handshake reuses its tenant rule
  ],
  exports: [AuthGuard],
})
export class AuthModule {}
