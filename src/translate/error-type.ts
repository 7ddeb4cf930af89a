/**
 * `error.type`, exception and status-message rules (otel-mapping.md §1.6, §1.7).
 */
import { ATTR_EXCEPTION_MESSAGE, ATTR_EXCEPTION_TYPE, ERROR_TYPE_VALUE_OTHER } from './semconv.js';
import { EXCEPTION_EVENT_NAME } from './keys.js';
import type { Attributes, SpanEventRecord, SpanRecord } from './types.js';

export const ERROR_TYPE_MAX_LENGTH = 64;
export const STATUS_MESSAGE_MAX_LENGTH = 256;

/**
 * Keep `error.type` low-cardinality and safe: every code point outside
 * `[A-Za-z0-9_.:-]` becomes `_`, then the result is cut to 64 chars.
 * A value that ends up empty becomes `_OTHER`.
 *
 * Only the first 2 × 64 UTF-16 units are read: they hold the first 64 code points, and each
 * code point becomes one character (a pair cut at the end lies beyond them). Replacing all of a
 * 64 KiB exception name first cost 12 ms per call (a sender's choice, per datagram).
 */
export function sanitiseErrorType(raw: string): string {
  const cleaned = raw.slice(0, 2 * ERROR_TYPE_MAX_LENGTH).replace(/[^A-Za-z0-9_.:-]/gu, '_').slice(0, ERROR_TYPE_MAX_LENGTH);
  return cleaned === '' ? ERROR_TYPE_VALUE_OTHER : cleaned;
}

/** Cut to at most `max` UTF-16 units without splitting a surrogate pair. */
export function truncate(s: string, max: number): string {
  if (s.length <= max) return s;
  let end = max;
  const last = s.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return s.slice(0, end);
}

/** The error-related fields of an attempt, or the `Final*` fields of an ApiCall. */
export interface ErrorFields {
  awsException?: string | undefined;
  awsExceptionMessage?: string | undefined;
  sdkException?: string | undefined;
  sdkExceptionMessage?: string | undefined;
  httpStatusCode?: number | undefined;
}

/** The exception chosen by §1.6 rules 1–2 (service error first, then client-side error). */
export interface ChosenException {
  /** Raw exception name/code as the SDK sent it (for `exception.type`). */
  type: string;
  message?: string;
}

export interface ErrorClassification {
  /** Some error evidence exists: an exception, or a status code ≥ 400. */
  failed: boolean;
  /** Sanitised `error.type`, when `failed`. */
  errorType?: string;
  exception?: ChosenException;
}

function nonEmpty(s: string | undefined): s is string {
  return s !== undefined && s !== '';
}

/**
 * Classify one outcome by §1.6: 1. AwsException, 2. SdkException,
 * 3. status ≥ 400 as a string. Rule 4 (`_OTHER`) is the caller's job, since
 * only the caller knows whether the outcome is failed for another reason.
 *
 * Ruby swaps the two exception families (modelled errors under
 * SdkException, network errors under AwsException); that is not undone here,
 * the value is used as sent.
 */
export function classifyError(f: ErrorFields): ErrorClassification {
  return classifyOutcome(f.awsException, f.awsExceptionMessage, f.sdkException, f.sdkExceptionMessage, f.httpStatusCode);
}

/** `classifyError` on the fields themselves (no argument object per event on the hot path). */
export function classifyOutcome(
  awsException: string | undefined,
  awsExceptionMessage: string | undefined,
  sdkException: string | undefined,
  sdkExceptionMessage: string | undefined,
  httpStatusCode: number | undefined,
): ErrorClassification {
  let exception: ChosenException | undefined;
  if (nonEmpty(awsException)) {
    exception = withMessage(awsException, awsExceptionMessage);
  } else if (nonEmpty(sdkException)) {
    exception = withMessage(sdkException, sdkExceptionMessage);
  }
  if (exception !== undefined) {
    return { failed: true, errorType: sanitiseErrorType(exception.type), exception };
  }
  if (httpStatusCode !== undefined && httpStatusCode >= 400) {
    return { failed: true, errorType: String(httpStatusCode) };
  }
  return { failed: false };
}

function withMessage(type: string, message: string | undefined): ChosenException {
  return nonEmpty(message) ? { type, message } : { type };
}

/** Span status description: the exception message cut to 256 chars, absent when only a status code is known. */
export function statusMessage(exception: ChosenException | undefined): string | undefined {
  return exception?.message === undefined ? undefined : truncate(exception.message, STATUS_MESSAGE_MAX_LENGTH);
}

/** The `exception` span event of a failed outcome (§1.7), at `timeMs`; undefined without an exception. */
export function exceptionEvent(cls: ErrorClassification, timeMs: number): SpanEventRecord | undefined {
  if (cls.exception === undefined) return undefined;
  const attributes: Attributes = { [ATTR_EXCEPTION_TYPE]: cls.exception.type };
  if (cls.exception.message !== undefined) attributes[ATTR_EXCEPTION_MESSAGE] = cls.exception.message;
  return { name: EXCEPTION_EVENT_NAME, timeMs, attributes };
}

/** The span status of an outcome: ERROR with the cut message when failed, else UNSET. */
export function spanStatus(cls: ErrorClassification): SpanRecord['status'] {
  if (!cls.failed) return { code: 'unset' };
  const message = statusMessage(cls.exception);
  return message === undefined ? { code: 'error' } : { code: 'error', message };
}
