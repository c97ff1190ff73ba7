import { generate } from 'otplib';
import { newTotpSecret, verifyTotp } from './totp.js';

describe('verifyTotp', () => {
  it('takes the current code once, and treats what is not six digits as a wrong code', async () => {
    const secret = newTotpSecret();
    const code = await generate({ secret });
    const step = await verifyTotp(secret, code, null);
    expect(step).toEqual(expect.any(Number));
    expect(await verifyTotp(secret, code, step!)).toBeUndefined();
    for (const typo of ['abcdef', '1234567', '12345', '', ' 123456']) {
      expect([typo, await verifyTotp(secret, typo, null)]).toEqual([typo, undefined]);
    }
  });
});
