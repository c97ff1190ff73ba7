import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, Length, Matches, MaxLength } from 'class-validator';

// @ApiProperty gives Swagger UI the fields and an example body; class-validator does the checking.
export class LoginDto {
  @ApiProperty({ example: 'dr.lee', maxLength: 100 })
  @IsString()
  @MaxLength(100)
  username!: string;

  @ApiProperty({ example: 'a long doctor passphrase', maxLength: 200, format: 'password' })
  @IsString()
  @MaxLength(200)
  password!: string;
}

export class MfaLoginDto {
  @ApiProperty({ description: 'mfa_token from POST /auth/login' })
  @IsString()
  @MaxLength(2000)
  mfa_token!: string;

  @ApiProperty({ example: '123456', description: 'The TOTP code' })
  @Matches(/^\d{6}$/, { message: 'code must be 6 digits' })
  code!: string;
}

export class MfaCodeDto {
  @ApiProperty({ example: '123456', description: 'The TOTP code' })
  @Matches(/^\d{6}$/, { message: 'code must be 6 digits' })
  code!: string;
}

export class ChangePasswordDto {
  @ApiProperty({ maxLength: 200, format: 'password' })
  @IsString()
  @MaxLength(200)
  current_password!: string;

  @ApiProperty({ minLength: 12, maxLength: 200, format: 'password' })
  @IsString()
  @MaxLength(200)
  new_password!: string;
}

export class RefreshDto {
  @ApiProperty({ minLength: 10, maxLength: 200 })
  @IsString()
  @Length(10, 200)
  refresh_token!: string;
}

export class ScopedTokenDto {
  /** Space-separated SMART scopes, e.g. `patient/*.rs` or `user/Observation.rs`. */
  @ApiProperty({ example: 'patient/*.rs', description: 'Space-separated SMART scopes' })
  @IsString()
  @Length(1, 2000)
  scope!: string;

  @ApiPropertyOptional({ description: 'The Patient id in context, for patient/ scopes' })
  @IsOptional()
  @Matches(/^[A-Za-z0-9.-]{1,64}$/, { message: 'patient must be a Patient id' })
  patient?: string;
}

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  /** An app's granted scope and patient in context (SMART App Launch). */
  scope?: string;
  patient?: string;
}

/** An OAuth 2.0 error (RFC 6749 section 5.2): what OAuth clients read from a token endpoint. */
export interface OAuthError {
  error:
    | 'invalid_request'
    | 'invalid_client'
    | 'invalid_grant'
    | 'unsupported_grant_type'
    | 'invalid_scope';
  error_description: string;
}

export interface MfaRequiredResponse {
  mfa_required: true;
  mfa_token: string;
}
