// AnswerAuth (lib/sem/pair-key-answer.ts) reads members once per revision of the group file (issue
// 16, the sender's allocation per edit): a changed record is seen as soon as the revision moves,
// and names that are no member (any name a header may carry) are never kept, so what it holds is
// bounded by the group file.
import { strict as assert } from 'assert';
import { AnswerAuth } from '../../lib/sem/pair-key-answer';
import type { RecordFields } from '../../lib/records/files';

describe('AnswerAuth: members read once per group revision', () => {
  const sig = (signer: string) => `${signer} ${'A'.repeat(86)}==`;

  function setup() {
    const group = new Map<string, RecordFields>([
      ['S1', ['S1', '127.0.0.1', 'RS1', '-']],
      ['S2', ['S2', '127.0.0.2', 'RS1', '-']],
    ]);
    let revision = 1;
    let reads = 0;
    const auth = new AnswerAuth({
      hostname: () => 'S1',
      signingKey: () => assert.fail('not signing here'),
      dhKey: () => undefined,
      record: (h) => {
        reads++;
        const r = group.get(h);
        return r ? r.slice() : undefined;
      },
      records: () => [...group.values()].map((r) => r.slice()),
      revision: () => revision,
    });
    return { group, auth, bump: () => revision++, reads: () => reads };
  }

  it('sees a changed record once the revision moves, and reads it once per revision', () => {
    const { group, auth, bump, reads } = setup();
    // S2 publishes no key: its answers are taken on the MAC alone, from its own address only.
    assert.equal(auth.check('127.0.0.2', 'l', 't', sig('S2')), null);
    assert.equal(auth.check('127.0.0.2', 'l', 't', sig('S2')), null);
    assert.equal(reads(), 1, 'one read of S2 for two answers at one revision');
    group.set('S2', ['S2', '127.0.0.9', 'RS1', '-']);
    bump();
    assert.match(auth.check('127.0.0.2', 'l', 't', sig('S2')) ?? '', /whose address is 127\.0\.0\.9/);
    assert.equal(auth.check('127.0.0.9', 'l', 't', sig('S2')), null);
  });

  it('keeps no name that is not a member, however many answers name one', () => {
    const { auth } = setup();
    for (let i = 0; i < 500; i++) auth.check('127.0.0.7', 'l', 't', sig(`X${i}`));
    const held = (auth as unknown as { members: Map<string, unknown> }).members;
    assert.ok(held.size <= 2, `held ${held.size} names`);
    assert.ok([...held.keys()].every((h) => h === 'S1' || h === 'S2'));
  });
});
