// Runs real aws-sdk v2 calls with CSM enabled by the environment
// (AWS_CSM_ENABLED, AWS_CSM_PORT, AWS_CSM_CLIENT_ID), then prints one JSON
// line per call with its outcome so the test knows the ground truth.
const AWS = require('aws-sdk');

const [endpoint, closedEndpoint] = process.argv.slice(2);
const s3 = new AWS.S3({ endpoint, s3ForcePathStyle: true, region: 'us-west-2', maxRetries: 3, retryDelayOptions: { base: 10 } });
const dead = new AWS.S3({ endpoint: closedEndpoint, s3ForcePathStyle: true, region: 'us-west-2', maxRetries: 2, retryDelayOptions: { base: 10 }, httpOptions: { connectTimeout: 500 } });

async function call(name, fn) {
  try {
    await fn();
    console.log(JSON.stringify({ name, ok: true }));
  } catch (e) {
    console.log(JSON.stringify({ name, ok: false, code: e.code, statusCode: e.statusCode, retryCount: e.retryCount }));
  }
}

(async () => {
  await call('ListBuckets', () => s3.listBuckets().promise());
  await call('CreateBucket', () => s3.createBucket({ Bucket: 'taken' }).promise());
  await call('HeadObject', () => s3.headObject({ Bucket: 'b1', Key: 'missing' }).promise());
  await call('DeadListBuckets', () => dead.listBuckets().promise());
  // JS v2 sends CSM datagrams on process.nextTick; give them a moment before exit.
  setTimeout(() => process.exit(0), 300);
})();
