import { plainToInstance, Transform } from 'class-transformer';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
  MinLength,
  validateSync,
} from 'class-validator';

export const NODE_ENVS = ['development', 'production', 'test'] as const;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Variables whose values must never be echoed back, even in a validation error. */
const SECRET_VARIABLES = new Set(['DATABASE_URL', 'PHI_MASTER_KEY']);

const toBoolean = ({ value }: { value: unknown }): unknown => {
  if (typeof value !== 'string') {
    return value;
  }
  const normalized = value.trim().toLowerCase();
  if (['true', '1', 'yes'].includes(normalized)) {
    return true;
  }
  if (['false', '0', 'no', ''].includes(normalized)) {
    return false;
  }
  return value;
};

const toInteger = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value.trim()) : value;

/**
 * Every environment variable CareVault reads. Defaults live here so that the documented
 * configuration table (README) and the code cannot drift apart.
 */
export class EnvironmentVariables {
  @IsIn(NODE_ENVS, { message: `NODE_ENV must be one of ${NODE_ENVS.join(', ')}` })
  NODE_ENV: (typeof NODE_ENVS)[number] = 'development';

  @Transform(toInteger)
  @IsInt({ message: 'PORT must be an integer between 0 and 65535' })
  @Min(0, { message: 'PORT must be an integer between 0 and 65535' })
  @Max(65535, { message: 'PORT must be an integer between 0 and 65535' })
  PORT = 3000;

  @IsString()
  @MinLength(1, { message: 'HOST must not be empty' })
  HOST = '127.0.0.1';

  @IsOptional()
  @Matches(/^postgres(ql)?:\/\/\S+$/, {
    message: 'DATABASE_URL must be a postgres:// or postgresql:// connection URL',
  })
  DATABASE_URL?: string;

  @IsString()
  @MinLength(1, { message: 'DATA_DIR must not be empty' })
  DATA_DIR = './.data';

  @Transform(toBoolean)
  @IsBoolean({ message: 'MIGRATIONS_RUN must be true or false' })
  MIGRATIONS_RUN = false;

  @IsIn(LOG_LEVELS, { message: `LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}` })
  LOG_LEVEL: (typeof LOG_LEVELS)[number] = 'info';

  @IsOptional()
  @Matches(/^\s*[A-Za-z0-9+/]{43}=\s*(,\s*[A-Za-z0-9+/]{43}=\s*)*$/, {
    message:
      'PHI_MASTER_KEY must be one or more comma-separated base64 keys of 32 bytes (openssl rand -base64 32)',
  })
  PHI_MASTER_KEY?: string;

  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'PHI_KEY_FILE must not be empty' })
  PHI_KEY_FILE?: string;

  @Transform(toInteger)
  @IsInt({ message: 'BODY_LIMIT must be a number of bytes between 1024 and 104857600' })
  @Min(1024, { message: 'BODY_LIMIT must be a number of bytes between 1024 and 104857600' })
  @Max(104_857_600, { message: 'BODY_LIMIT must be a number of bytes between 1024 and 104857600' })
  BODY_LIMIT = 1_048_576;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Validates raw environment values. Throws a ConfigError whose message is one line naming the
 * first offending variable, without echoing secret values. `requirePhiKey: false` is for tools
 * that never touch PHI, such as the migration CLI.
 */
export function validateEnv(
  raw: Record<string, unknown>,
  options: { requirePhiKey: boolean } = { requirePhiKey: true },
): EnvironmentVariables {
  // Unset and empty-string variables both mean "use the default".
  const present = Object.fromEntries(
    Object.keys(new EnvironmentVariables())
      .concat(['DATABASE_URL', 'PHI_MASTER_KEY', 'PHI_KEY_FILE'])
      .filter((key) => raw[key] !== undefined && raw[key] !== '')
      .map((key) => [key, raw[key]]),
  );
  const env = plainToInstance(EnvironmentVariables, present);
  const errors = validateSync(env, { skipMissingProperties: false });
  const first = errors[0];
  if (first) {
    const message = Object.values(first.constraints ?? {})[0] ?? `${first.property} is invalid`;
    const shown = SECRET_VARIABLES.has(first.property) ? '' : ` (got "${String(first.value)}")`;
    throw new ConfigError(`Invalid configuration: ${message}${shown}`);
  }
  // Without a configured key the service would generate one, which only makes sense for a
  // developer's embedded database: elsewhere a lost generated key means lost records.
  if (options.requirePhiKey && !env.PHI_MASTER_KEY && !env.PHI_KEY_FILE) {
    if (env.NODE_ENV === 'production') {
      throw new ConfigError(
        'Invalid configuration: PHI_MASTER_KEY or PHI_KEY_FILE must be set when NODE_ENV=production',
      );
    }
    if (env.DATABASE_URL) {
      throw new ConfigError(
        'Invalid configuration: PHI_MASTER_KEY or PHI_KEY_FILE must be set when DATABASE_URL is set',
      );
    }
  }
  return env;
}
