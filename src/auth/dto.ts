import { IsOptional, IsString, Length, Matches, MaxLength } from 'class-validator';

export class LoginDto {
  @IsString()
  @MaxLength(100)
  username!: string;

  @IsString()
  @MaxLength(200)
  password!: string;
}

export class MfaLoginDto {
  @IsString()
  @MaxLength(2000)
  mfa_token!: string;

  @Matches(/^\d{6}$/, { message: 'code must be 6 digits' })
  code!: string;
}

export class MfaCodeDto {
  @Matches(/^\d{6}$/, { message: 'code must be 6 digits' })
  code!: string;
}

export class RefreshDto {
  @IsString()
  @Length(10, 200)
  refresh_token!: string;
}

export class ScopedTokenDto {
  /** Space-separated SMART scopes, e.g. `patient/*.rs` or `user/Observation.rs`. */
  @IsString()
  @Length(1, 2000)
  scope!: string;

  @IsOptional()
  @Matches(/^[A-Za-z0-9.-]{1,64}$/, { message: 'patient must be a Patient id' })
  patient?: string;
}

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
}

/** An OAuth 2.0 error (RFC 6749 section 5.2): what OAuth clients read from a token endpoint. */
export interface OAuthError {
  error: 'invalid_request' | 'invalid_grant' | 'unsupported_grant_type' | 'invalid_scope';
  error_description: string;
}

export interface MfaRequiredResponse {
  mfa_required: true;
  mfa_token: string;
}
