import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiProperty, ApiTags } from '@nestjs/swagger';
import { IsString, Length, Matches } from 'class-validator';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { CurrentUser } from '../auth/current-user.decorator.js';
import { RequirePermission, RequireRecentMfa } from '../auth/permission.decorators.js';
import { BreakGlassService, type BreakGlassGrant } from './break-glass.service.js';

export class BreakGlassDto {
  @ApiProperty({ description: 'The Patient id whose restricted records to open' })
  @Matches(/^[A-Za-z0-9.-]{1,64}$/, { message: 'patient must be a Patient id' })
  patient!: string;

  @ApiProperty({ minLength: 10, maxLength: 1000, example: 'Unconscious patient in the ED' })
  @IsString()
  @Length(10, 1000, { message: 'reason must be 10 to 1000 characters' })
  reason!: string;
}

@ApiTags('Authentication')
@ApiBearerAuth()
@Controller('auth/break-glass')
export class BreakGlassController {
  constructor(private readonly breakGlass: BreakGlassService) {}

  @Post()
  @HttpCode(201)
  @RequirePermission('break-glass')
  @RequireRecentMfa()
  @ApiOperation({
    summary: "Emergency access to one patient's restricted records for a limited time",
  })
  grant(
    @CurrentUser() user: AuthenticatedUser,
    @Body() body: BreakGlassDto,
  ): Promise<BreakGlassGrant> {
    return this.breakGlass.grant(user, body.patient, body.reason);
  }
}
