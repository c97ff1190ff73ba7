import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsUUID, Matches } from 'class-validator';

/** An EHR front-end's request to open an app on a patient (SMART EHR launch). */
export class LaunchDto {
  @ApiProperty({ description: "The app's client_id (registered for the launch scope)" })
  @IsUUID()
  client_id!: string;

  @ApiProperty({ description: 'The Patient id open on screen' })
  @Matches(/^[A-Za-z0-9.-]{1,64}$/, { message: 'patient must be a Patient id' })
  patient!: string;

  @ApiPropertyOptional({ description: "The Encounter id open on screen, one of the patient's" })
  @IsOptional()
  @Matches(/^[A-Za-z0-9.-]{1,64}$/, { message: 'encounter must be an Encounter id' })
  encounter?: string;
}
