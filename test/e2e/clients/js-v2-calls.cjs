// Runs many real aws-sdk v2 S3 calls with CSM enabled by the environment, in the mix given on the
// command line: ENDPOINT PLAIN RETRIED FAILED. plain = ListBuckets answered 200; retried =
// GetObject b/retried answered 503 then 200 (one retry); failed = HeadObject b/missing answered
// 404 (not retried). The fake endpoint scripts those answers. Prints one JSON summary line.
const AWS = require('aws-sdk');

const [endpoint, plain, retried, failed] = process.argv.slice(2);
const s3 = new AWS.S3({ endpoint, s3ForcePathStyle: true, region: 'us-west-2', maxRetries: 3, retryDelayOptions: { base: 1 } });

(async () => {
  const out = { plain: 0, retried: 0, failed: 0, unexpected: [] };
  const jobs = [];
  for (let i = 0; i < Number(plain); i++) jobs.push('plain');
  for (let i = 0; i < Number(retried); i++) jobs.push('retried');
  for (let i = 0; i < Number(failed); i++) jobs.push('failed');
  // Interleaved (a fixed shuffle), so every kind is spread over the run.
  let seed = 12345;
  for (let i = jobs.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const j = seed % (i + 1);
    [jobs[i], jobs[j]] = [jobs[j], jobs[i]];
  }
  for (const kind of jobs) {
    try {
      if (kind === 'plain') await s3.listBuckets().promise();
      else if (kind === 'retried') await s3.getObject({ Bucket: 'b', Key: 'retried' }).promise();
      else await s3.headObject({ Bucket: 'b', Key: 'missing' }).promise();
      if (kind === 'failed') out.unexpected.push(`${kind} succeeded`);
      else out[kind]++;
    } catch (e) {
      if (kind === 'failed' && e.statusCode === 404) out.failed++;
      else out.unexpected.push(`${kind}: ${e.code} ${e.statusCode}`);
    }
  }
  console.log(JSON.stringify(out));
  // JS v2 sends CSM datagrams on process.nextTick; give them a moment before exit.
  setTimeout(() => process.exit(0), 300);
})();
