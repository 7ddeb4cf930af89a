/**
 * Span naming (otel-mapping.md §1.2), shared by spans and metrics so both use
 * the same normalised service / operation names.
 */

const COMMAND_SUFFIX = 'Command';

/** CSM `Service` with all whitespace removed (`API Gateway` -> `APIGateway`), as instrumentation-aws-sdk does. */
export function normaliseService(service: string): string {
  return service.replace(/\s+/g, '');
}

/** CSM `Api` as is, minus a trailing `Command` (v3-style command names); a bare `Command` is kept. */
export function normaliseApi(api: string): string {
  return api.length > COMMAND_SUFFIX.length && api.endsWith(COMMAND_SUFFIX)
    ? api.slice(0, -COMMAND_SUFFIX.length)
    : api;
}

/** ApiCall span name: `${Service}.${Api}` (both already normalised). */
export function callSpanName(service: string, api: string): string {
  return `${service}.${api}`;
}

/** Attempt span name: `${Service}.${Api} attempt`; the attempt number goes in attributes, not the name. */
export function attemptSpanName(service: string, api: string): string {
  return `${callSpanName(service, api)} attempt`;
}
