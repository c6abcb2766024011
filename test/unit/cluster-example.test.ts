import { strict as assert } from 'assert';
import * as fs from 'fs';
import { clusterExample, EXAMPLE_FILE } from '../../harness/recovery/cluster-example';

describe('the whole-cluster example flow', () => {
  it('is the flow the demo deploys (regenerate: node dist/harness/recovery/cluster-example.js)', () => {
    assert.deepEqual(JSON.parse(fs.readFileSync(EXAMPLE_FILE, 'utf8')), clusterExample());
  });

  it('holds no credential', () => {
    assert.ok(!fs.readFileSync(EXAMPLE_FILE, 'utf8').includes('"credentials"'));
  });
});
