import { ConfigService } from '@nestjs/config';
import { parseArgs } from 'node:util';
import { AppConfig, readEnv } from '../config/config.js';
import { createCustodian } from './custody/key-custodian.js';
import { KeyConfigError, KeyStore, type KeySettings } from './key-store.js';

/**
 * Key ceremonies that run before there is a key ring (so outside the Nest context, which needs
 * one to start): `keys:init` makes the wrapped key file of a new deployment, `keys:wrap` wraps
 * the keys of a plaintext source (PHI_MASTER_KEY, or a version 1 key file given with --from)
 * into PHI_KEY_FILE. Neither touches the database.
 */
export const KEY_SETUP_COMMANDS = new Set(['keys:init', 'keys:wrap']);

export async function runKeySetup(command: string, args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { 'create-kek': { type: 'boolean' }, from: { type: 'string' } },
  });
  const config = new AppConfig(new ConfigService(readEnv({ requireKeys: false })));
  const custody = config.keyCustody;
  const path = config.phiKeyFile;
  if (!custody || !path) {
    throw new KeyConfigError(
      `${command} needs KEY_CUSTODY and PHI_KEY_FILE (where the wrapped keys go)`,
    );
  }
  const settings: KeySettings = {
    masterKeys: [],
    keyFile: path,
    embedded: false,
    production: config.isProduction,
    dataDir: config.dataDir,
  };
  const custodian = await createCustodian(custody, { createKek: values['create-kek'] === true });
  try {
    const target = new KeyStore({ ...settings, custodian });
    if (command === 'keys:init') {
      const [id] = await target.writeWrapped(path);
      process.stdout.write(
        `Wrote ${path}: PHI key ${id}, wrapped by the ${custody.provider} key ${custodian.description.key}\n`,
      );
      return;
    }
    const source = new KeyStore({
      ...settings,
      masterKeys: values.from ? [] : config.phiMasterKeys,
      keyFile: values.from,
    });
    if (!values.from && config.phiMasterKeys.length === 0) {
      throw new KeyConfigError('keys:wrap reads PHI_MASTER_KEY or the key file given with --from');
    }
    const { ring, keys } = await source.plaintextKeys();
    const ids = await target.writeWrapped(path, ring, keys);
    process.stdout.write(
      `Wrote ${path}: PHI keys ${ids.join(', ')}, wrapped by the ${custody.provider} key ${custodian.description.key}. ` +
        'Remove PHI_MASTER_KEY (or the plaintext file) once the service starts with KEY_CUSTODY\n',
    );
  } finally {
    custodian.close();
  }
}
