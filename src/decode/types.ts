/**
 * Normalised CSM events: what `decode` hands to `correlate`.
 *
 * Every SDK quirk from csm-protocol.md §4 is already resolved here:
 * `AWSException*` renamed, floats truncated to integers where the field is an
 * integer, Go/Ruby `""` / `0` "absent" markers removed, `Fqdn` split into
 * host and port. `SessionToken` does not exist in these types on purpose: it
 * is dropped before an event is built, so no later stage can leak it.
 */

import type { Source } from '../net/address.js';
import type { Principal } from './access-key.js';

/**
 * Which SDK family sent an event, from its UserAgent. Correlation uses it:
 * JS v2 and Ruby change source port per datagram; Go stamps ends.
 */
export type SdkFamily = 'botocore' | 'js-v2' | 'go-v1' | 'java-v1' | 'ruby-v3' | 'php-v3' | 'dotnet' | 'unknown';

/** Fields common to both event types. */
export interface CsmCommon {
  /** "" when the SDK sent none (CSM's own "unset" value). */
  clientId: string;
  service: string;
  api: string;
  /** Epoch milliseconds, as sent; see `timestampMarksEnd`. */
  timestamp: number;
  region?: string;
  userAgent?: string;
  /**
   * True when `timestamp` marks the end of the call/attempt (Go v1) rather
   * than its start; decided at decode time from config + UserAgent.
   */
  timestampMarksEnd: boolean;
  sdk: SdkFamily;
  source: Source;
  /** Bridge receive time, epoch ms (used for hold timers and ordering). */
  receivedAt: number;
}

export interface CsmApiCall extends CsmCommon {
  type: 'ApiCall';
  attemptCount?: number;
  /** Whole-call latency in ms. */
  latency?: number;
  maxRetriesExceeded?: boolean;
  finalHttpStatusCode?: number;
  finalAwsException?: string;
  finalAwsExceptionMessage?: string;
  finalSdkException?: string;
  finalSdkExceptionMessage?: string;
  apiCallTimeout?: boolean;
  /** Go v1 only: the last attempt's request id. */
  xAmznRequestId?: string;
  /** Should an SDK ever send it on the ApiCall. */
  xAmzRequestId?: string;
}

export interface CsmAttempt extends CsmCommon {
  type: 'ApiCallAttempt';
  /** Attempt latency in ms. */
  attemptLatency?: number;
  /** Some Go v1 releases: 1-based attempt number. */
  attemptNumber?: number;
  /** Host part of `Fqdn`. */
  serverAddress?: string;
  /** Port part of `Fqdn` when it had one. */
  serverPort?: number;
  /** Already redacted per config (suffix / salted hash); absent unless opted in. */
  accessKey?: string;
  /** For IAM policies only, never exported: a salted hash of AccessKey and the account it encodes (src/policy/access-key.ts). */
  principal?: Principal;
  httpStatusCode?: number;
  xAmznRequestId?: string;
  xAmzRequestId?: string;
  xAmzId2?: string;
  awsException?: string;
  awsExceptionMessage?: string;
  sdkException?: string;
  sdkExceptionMessage?: string;
  destinationIp?: string;
  connectionReused?: boolean;
  dnsLatency?: number;
  tcpLatency?: number;
  sslLatency?: number;
  connectLatency?: number;
  requestLatency?: number;
  acquireConnectionLatency?: number;
}

export type CsmEvent = CsmApiCall | CsmAttempt;

/** Why a datagram was rejected; also the `csm.outcome` label values. */
export type RejectReason =
  | 'oversize'
  | 'malformed_json'
  | 'not_object'
  | 'unknown_type'
  | 'missing_field'
  | 'bad_field';

export type DecodeResult =
  | { ok: true; event: CsmEvent }
  | { ok: false; reason: RejectReason; detail: string };
