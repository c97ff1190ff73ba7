import { parseArgs } from 'node:util';
import { appConfigOf, readEnv } from '../config/config.js';
import { createCustodian } from './custody/key-custodian.js';
import { KeyConfigError, KeyStore, type KeySettings } from './key-store.js';

/**
 * Key ceremonies that run before there is a key ring (so outside the Nest context, which needs
 * one to start): `keys:init` makes the wrapped key file of a new deployment, `keys:wrap` wraps
 * the keys of a plaintext source (PHI_MASTER_KEY, or a version 1 key file given with --from)
 * into PHI_KEY_FILE. Neither touches the database.
 */
export const KEY_SETUP_COMMANDS = new Set(['keys:init', 'keys:wrap']);

const USAGE: Record<string, string> = {
  'keys:init':
    'Usage: cli keys:init [--create-kek]\n\n' +
    'With KEY_CUSTODY: write a new PHI_KEY_FILE holding a new PHI key wrapped by the KEK.\n\n' +
    'Options:\n' +
    '  --create-kek  create the KEK in the HSM first\n' +
    '  -h, --help    display help for command\n',
  'keys:wrap':
    'Usage: cli keys:wrap [--from <file>] [--create-kek]\n\n' +
    'With KEY_CUSTODY: wrap the keys of PHI_MASTER_KEY (or of a plaintext key file) into a new\n' +
    'PHI_KEY_FILE.\n\n' +
    'Options:\n' +
    '  --from <file>  the plaintext (version 1) key file to wrap instead of PHI_MASTER_KEY\n' +
    '  --create-kek   create the KEK in the HSM first\n' +
    '  -h, --help     display help for command\n',
};

/** The lines the CLI's own --help adds for these commands, which nest-commander does not list. */
export const KEY_SETUP_HELP =
  '\nKey set-up (before there is a key ring; see `<command> --help`):\n' +
  '  keys:init [--create-kek]            A new PHI_KEY_FILE: a new PHI key wrapped by the KEK\n' +
  '  keys:wrap [--from <file>] [--create-kek]\n' +
  '                                      Wrap PHI_MASTER_KEY (or a plaintext key file) into\n' +
  '                                      PHI_KEY_FILE\n';

export async function runKeySetup(command: string, args: string[]): Promise<void> {
  let values: { 'create-kek'?: boolean; from?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        'create-kek': { type: 'boolean' },
        from: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    // parseArgs throws a TypeError for an unknown option or a missing value: a usage mistake,
    // said in one line like nest-commander's commands say theirs.
    process.stderr.write(`error: ${(error as Error).message} (see ${command} --help)\n`);
    process.exitCode = 1;
    return;
  }
  if (values.help) {
    process.stdout.write(USAGE[command] ?? '');
    return;
  }
  const config = appConfigOf(readEnv({ requireKeys: false }));
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
      keyFileVariable: '--from',
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
