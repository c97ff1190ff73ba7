import { Logger, Module } from '@nestjs/common';
import { AppConfig } from '../config/config.js';
import { BlindIndexer } from './blind-index.js';
import { BlindIndexRoot } from './blind-index-root.js';
import { BlindIndexRootRepository } from './blind-index-root.repository.js';
import { ClientSealer } from './client-sealer.js';
import { FieldCipher } from './field-cipher.js';
import { KeyRing } from './key-ring.js';
import { KeyRotationService } from './key-rotation.service.js';
import { KeyStore, keySettingsOf } from './key-store.js';
import { createCustodian } from './custody/key-custodian.js';
import { PhiSubscriber } from './phi.subscriber.js';

@Module({
  providers: [
    {
      provide: KeyStore,
      inject: [AppConfig],
      useFactory: async (config: AppConfig) => {
        const custody = config.keyCustody;
        if (!custody && config.isProduction) {
          new Logger('Crypto').warn(
            'PHI master keys are held in plaintext (PHI_MASTER_KEY or an unwrapped key file): set KEY_CUSTODY=pkcs11 to keep them wrapped by an HSM key',
          );
        }
        return new KeyStore(
          keySettingsOf(config, custody ? await createCustodian(custody) : undefined),
        );
      },
    },
    { provide: KeyRing, inject: [KeyStore], useFactory: (store: KeyStore) => store.load() },
    {
      provide: FieldCipher,
      inject: [KeyRing, AppConfig],
      useFactory: (ring: KeyRing, config: AppConfig) => {
        if (config.encryptionSkippedForBenchmark) {
          new Logger('Crypto').warn(
            'PHI_ENCRYPTION_BENCHMARK_SKIP is set: PHI is stored UNENCRYPTED',
          );
        }
        return new FieldCipher(ring, { skipForBenchmark: config.encryptionSkippedForBenchmark });
      },
    },
    {
      provide: BlindIndexer,
      inject: [KeyRing],
      useFactory: (ring: KeyRing) => new BlindIndexer(ring),
    },
    {
      provide: ClientSealer,
      inject: [KeyRing],
      useFactory: (ring: KeyRing) => new ClientSealer(ring),
    },
    PhiSubscriber,
    KeyRotationService,
    BlindIndexRootRepository,
    BlindIndexRoot,
  ],
  exports: [
    ClientSealer,
    FieldCipher,
    BlindIndexer,
    BlindIndexRoot,
    KeyRing,
    KeyStore,
    KeyRotationService,
    PhiSubscriber,
  ],
})
export class CryptoModule {}
