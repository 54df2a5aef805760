import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { RealtimeServer } from './realtime.server';

/** socket.io at `/realtime`: tenant events with replay, site streams (handshake through the auth guard). */
@Module({ imports: [AuthModule], providers: [RealtimeServer] })
export class RealtimeModule {}
