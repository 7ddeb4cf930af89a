import { z } from 'zod';

/**
 * The CSM wire format (csm-protocol.md §4) as zod schemas.
 *
 * Every field is optional except the few without which no span can be named
 * or placed in time. Unknown fields are accepted and ignored (SDKs add
 * fields over time). Integers may arrive as floats (PHP), so numbers are
 * checked for finiteness only and truncated later. `SessionToken` is
 * deliberately absent: zod's default object mode strips unknown keys, so the
 * token never reaches the parsed value.
 */
const str = z.string();
const num = z.number().finite();

const common = {
  Version: num.optional(),
  ClientId: str.optional(),
  Service: z.string().min(1),
  Api: z.string().min(1),
  Timestamp: num.nonnegative(),
  Region: str.optional(),
  UserAgent: str.optional(),
};

export const apiCallSchema = z.object({
  ...common,
  Type: z.literal('ApiCall'),
  AttemptCount: num.nonnegative().optional(),
  Latency: num.nonnegative().optional(),
  MaxRetriesExceeded: num.optional(),
  FinalHttpStatusCode: num.optional(),
  FinalAwsException: str.optional(),
  FinalAwsExceptionMessage: str.optional(),
  FinalSdkException: str.optional(),
  FinalSdkExceptionMessage: str.optional(),
  ApiCallTimeout: num.optional(),
  XAmznRequestId: str.optional(),
  XAmzRequestId: str.optional(),
});

export const apiCallAttemptSchema = z.object({
  ...common,
  Type: z.literal('ApiCallAttempt'),
  AttemptLatency: num.nonnegative().optional(),
  AttemptCount: num.nonnegative().optional(),
  Fqdn: str.optional(),
  AccessKey: str.optional(),
  HttpStatusCode: num.optional(),
  XAmznRequestId: str.optional(),
  XAmzRequestId: str.optional(),
  XAmzId2: str.optional(),
  AwsException: str.optional(),
  AwsExceptionMessage: str.optional(),
  SdkException: str.optional(),
  SdkExceptionMessage: str.optional(),
  DestinationIp: str.optional(),
  ConnectionReused: num.optional(),
  DnsLatency: num.nonnegative().optional(),
  TcpLatency: num.nonnegative().optional(),
  SslLatency: num.nonnegative().optional(),
  ConnectLatency: num.nonnegative().optional(),
  RequestLatency: num.nonnegative().optional(),
  AcquireConnectionLatency: num.nonnegative().optional(),
});

export type RawApiCall = z.infer<typeof apiCallSchema>;
export type RawApiCallAttempt = z.infer<typeof apiCallAttemptSchema>;

/** Fields whose absence makes an event unusable (reported as `missing_field`). */
export const REQUIRED_FIELDS = ['Service', 'Api', 'Timestamp'] as const;

/** .NET spells these with a capital "AWS"; renamed before validation. */
export const FIELD_ALIASES: Readonly<Record<string, string>> = {
  AWSException: 'AwsException',
  AWSExceptionMessage: 'AwsExceptionMessage',
  FinalAWSException: 'FinalAwsException',
  FinalAWSExceptionMessage: 'FinalAwsExceptionMessage',
};
