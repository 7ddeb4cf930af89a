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

/** Everything derived from one (Service, Api) pair alone. */
export interface Names {
  /** Normalised service and api. */
  service: string;
  api: string;
  callSpan: string;
  attemptSpan: string;
  /** `rpc.method` under the stable / dup semconv: `Service/Api`. */
  qualifiedMethod: string;
}

/*
 * Names are cached per raw (Service, Api): normalising and joining them per span costs a regex and
 * three new strings. Service and Api come from any local sender, so the cache is bounded: when it
 * holds NAMES_CACHE_MAX pairs it starts over. The cache never changes an output.
 */
const NAMES_CACHE_MAX = 4096;
let namesCache = new Map<string, Map<string, Names>>();
let namesCached = 0;

export function namesOf(rawService: string, rawApi: string): Names {
  let byApi = namesCache.get(rawService);
  let names = byApi?.get(rawApi);
  if (names !== undefined) return names;
  if (namesCached >= NAMES_CACHE_MAX) {
    namesCache = new Map();
    namesCached = 0;
    byApi = undefined;
  }
  if (byApi === undefined) {
    byApi = new Map();
    namesCache.set(rawService, byApi);
  }
  const service = normaliseService(rawService);
  const api = normaliseApi(rawApi);
  names = { service, api, callSpan: callSpanName(service, api), attemptSpan: attemptSpanName(service, api), qualifiedMethod: `${service}/${api}` };
  byApi.set(rawApi, names);
  namesCached++;
  return names;
}

/** The operation an event is about: its names and Region. Only read once made (it may be shared). */
export interface Operation {
  service: string;
  api: string;
  region: string | undefined;
  names: Names;
}

export function operationOf(e: { service: string; api: string; region?: string }): Operation {
  const names = namesOf(e.service, e.api);
  return { service: names.service, api: names.api, region: e.region === '' ? undefined : e.region, names };
}
