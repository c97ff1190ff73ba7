import { Test } from '@nestjs/testing';
import { AppConfigModule } from './config.module.js';
import { AppConfig, appConfigOf } from './config.js';
import { validateEnv } from './env.schema.js';

describe('AppConfig', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  async function configOf(env: Record<string, string>): Promise<AppConfig> {
    Object.assign(process.env, env);
    const module = await Test.createTestingModule({
      imports: [await AppConfigModule.register()],
    }).compile();
    return module.get(AppConfig);
  }

  it('takes an empty variable for an unset one: its default applies', async () => {
    const config = await configOf({ NODE_ENV: 'development', HL7_PROCESSING_IDS: '' });
    expect([...config.hl7ProcessingIds]).toEqual(['P', 'T', 'D']);
  });

  it('takes an empty variable for an unset one outside Nest too (preflight, key set-up)', () => {
    process.env['HL7_PROCESSING_IDS'] = '';
    const config = appConfigOf(validateEnv({ NODE_ENV: 'development', HL7_PROCESSING_IDS: '' }));
    expect([...config.hl7ProcessingIds]).toEqual(['P', 'T', 'D']);
  });

  it('reads a variable that is set', async () => {
    const config = await configOf({ NODE_ENV: 'development', HL7_PROCESSING_IDS: 't' });
    expect([...config.hl7ProcessingIds]).toEqual(['T']);
  });
});
