import { HL7_MESSAGE_STATUSES } from '../hl7/store/hl7-message.entity.js';
import { Metrics } from './metrics.js';

describe('Metrics', () => {
  it('names in the HELP of the HL7 counter every outcome it counts', async () => {
    const metrics = new Metrics();
    metrics.hl7Messages.inc({ status: 'processed' });
    const help = (await metrics.registry.metrics())
      .split('\n')
      .find((line) => line.startsWith('# HELP carevault_hl7_messages_total '))!;
    // Every stored status but `received` (not an outcome yet) and `dismissed` (an operator's
    // decision after the outcome), and resends answered again.
    const counted = [
      ...HL7_MESSAGE_STATUSES.filter((s) => s !== 'received' && s !== 'dismissed'),
      'duplicate',
    ];
    for (const status of counted) expect(help).toMatch(new RegExp(`\\b${status}\\b`));
  });
});
