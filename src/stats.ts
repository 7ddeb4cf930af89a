import type { AdminStats } from './admin/server.js';
import type { SettleCounts } from './correlate/types.js';
import type { RejectReason } from './decode/types.js';
import { newPolicyCounters } from './policy/observer.js';
import type { PolicyStats } from './policy/policy-service.js';
import { newAppListenerCounts, type AppListenerCounts } from './join/app-listener.js';
import type { IndexCounts } from './join/app-span-index.js';
import { newJoinCounts, type JoinCounts } from './join/join-stage.js';

/**
 * Every counter the bridge keeps, in one plain object: `/stats` serves it
 * as is and the self-metrics read it. Stages increment fields directly
 * (cheap on the hot path); nothing else holds counts.
 */
export interface Stats {
  startedAt: number;
  /** received = accepted + Σ rejected + Σ dropped. */
  datagrams: {
    received: number;
    accepted: number;
    rejected: Record<RejectReason, number>;
    /** Not decoded at all: `source_not_allowed` = sender outside --allow-source. */
    dropped: { source_not_allowed: number };
    /**
     * Lost before the bridge could read them: the socket receive buffer was full
     * (the kernel's `drops` for the listening sockets, read from /proc/net/udp*).
     * Not part of `received`.
     */
    kernelDropped: number;
    /**
     * Read from the socket but dropped because the recvmmsg receiver's ring was full (the JS
     * thread was more than the ring behind: RING_BYTES / RING_DATAGRAMS in native/udp_batch.c).
     * Not part of `received`; 0 with node:dgram.
     */
    ringDropped: number;
  };
  events: { calls: number; attempts: number };
  correlation: {
    /** Attempts exported under their ApiCall. */
    matched: number;
    /** Attempts exported without a call, by reason. */
    orphaned: { ttl_expired: number; buffer_full: number; shutdown: number };
    /** Calls exported with fewer attempts than their AttemptCount, and how many were missing in all. */
    callsIncomplete: number;
    missingAttempts: number;
    pendingAttempts: number;
    pendingCalls: number;
    /** Correlation groups (source, ClientId, Service, Api, Region) holding pending state. */
    pendingGroups: number;
    /**
     * Concurrent identical calls decided together (src/correlate/): calls that waited for
     * competitors (at most matchSettleMs), how many until their settle time ran out, how long
     * (ms, total and longest), attempts exported with csm.match.ambiguous and their calls,
     * searches that may have missed the most probable assignment, calls with more candidate
     * attempts than the search holds, calls decided early because their group was full or the
     * search had used its work budget for the second.
     */
    joint: SettleCounts;
  };
  /** The RSS ceiling (memoryCeilingMb): what it is, where RSS is, and what was shed to stay under it. */
  memory: {
    ceilingBytes: number;
    rssBytes: number;
    peakRssBytes: number;
    /** Serialized export requests the spools hold in memory (bounded at a quarter of the ceiling; shedding cannot free it). */
    spoolBytes: number;
    /** Times RSS was found above the ceiling and pending state was shed. */
    sheds: number;
    /** Pending attempts exported early as orphans (also in correlation.orphaned.buffer_full). */
    shedAttempts: number;
    /** Pending calls exported early, without their late attempts. */
    shedCalls: number;
    /** RSS readings that failed (EMFILE: out of file descriptors); the ceiling was not checked then. */
    readErrors: number;
  };
  /**
   * Spans, from creation to their end. Every span is in exactly one place:
   * created + spool.recoveredSpans (from an earlier run) = exported + queued + lost.
   */
  spans: {
    created: number;
    exported: number;
    /** Waiting now: in the export spool (memory or spoolDir) or in the batch being filled. */
    queued: number;
    /** Given up: lost = failed + dropped. */
    lost: number;
    /** Refused by the endpoint (4xx, a 5xx it kept answering, a partial success's rejected spans). */
    failed: number;
    /** Dropped: spool full, disk full, unreadable, or undelivered at shutdown and not on disk (spool.lostSpans). */
    dropped: number;
    /** Send attempts that failed (endpoint down, timed out, 429/5xx) and will be retried: nothing is lost by them, the spans stay queued. */
    failedAttempts: number;
  };
  /**
   * Trace sampling (OTEL_TRACES_SAMPLER, --sample-keep), per call: kept = keptBy.* summed; a call
   * sampled out has no span at all. Metrics count every call whatever this says. All 0 without a
   * traces exporter (OTEL_TRACES_EXPORTER=none).
   */
  sampling: { kept: number; sampledOut: number; keptBy: { sampled: number; error: number; retry: number; slow: number; joined: number } };
  /**
   * OTLP metric export requests (one per collection), the same way as spans:
   * created + spool.recoveredMetricExports = succeeded + queued + lost.
   */
  metricExports: {
    created: number;
    succeeded: number;
    queued: number;
    /** lost = failed + dropped. */
    lost: number;
    /** Refused by the endpoint, or could not be serialized. */
    failed: number;
    /** Dropped: spool full, disk full, unreadable, or undelivered at shutdown and not on disk (spool.lostMetricExports). */
    dropped: number;
    failedAttempts: number;
  };
  /** Metric points folded into a series with otel.metric.overflow=true: the instrument had its 500 series for that ClientId. */
  metricPoints: { overflowed: number; rejected: number };
  /** The export spool between the batches and the OTLP endpoint (src/export/spool.ts). */
  spool: {
    /** Waiting for the endpoint now (spans / metric export requests), and their serialized size. */
    queuedSpans: number;
    queuedMetricExports: number;
    queuedBytes: number;
    /** Dropped oldest-first because the spool was full (spans are also in spans.dropped). */
    droppedSpans: number;
    droppedMetricExports: number;
    /** Sends that failed (endpoint down, timed out, 429/5xx) and will be retried after a backoff: spans.failedAttempts + metricExports.failedAttempts. */
    retries: number;
    /** Found in spoolDir at start, left by an earlier run. */
    recoveredSpans: number;
    recoveredMetricExports: number;
    /** spoolDir write/read/delete failures (a batch that cannot be written stays in memory and is written when space frees). */
    diskErrors: number;
    /** Of the queued: in spoolDir files now (kept for the next start); the rest is in memory. */
    onDiskSpans: number;
    onDiskMetricExports: number;
    onDiskBytes: number;
    /** Undelivered at shutdown and not on disk: lost (spans are also in spans.dropped). */
    lostSpans: number;
    lostMetricExports: number;
    /** Sends that failed in the TLS handshake or a certificate check (also in retries). */
    tlsErrors: number;
  };
  /** Newest failed export per signal (epoch ms, exporter message cut to 300 chars); null until one fails. */
  lastExportError: { traces: ExportError | null; metrics: ExportError | null };
  /** Newest successful export per signal, epoch ms. A signal is failing while its error is newer. */
  lastExportOkAt: { traces: number | null; metrics: number | null };
  /**
   * active: applications (ClientIds, and aws-csm:other once used) known, however many of their
   * processes were identified; evicted: clients of exited processes forgotten to stay under maxClients.
   */
  clients: { active: number; overflowed: number; evicted: number };
  /** processIdentity: sources (address:port) resolved to a process or not, and scans of /proc/*\/fd. */
  identity: { resolved: number; unresolved: number; scans: number };
  /** IAM policy observation (src/policy): subjects kept, what the bounds dropped, policy file writes. */
  policy: PolicyStats;
  /**
   * Applications' spans received for the join (--app-otlp-http / --app-otlp-grpc; all 0 when off):
   * requests and spans, what was kept, refused and rejected (by reason); `index`: app spans held
   * for the join, added, refused (full), duplicates, expired unjoined.
   */
  appSpans: AppListenerCounts & { index: IndexCounts };
  /** CSM calls and the applications' traces: joined, expired unjoined, not waited for (and why), waiting now. */
  join: JoinCounts;
  /** The admin listener: what its bounds (connections, timeouts, Host names) refused. */
  admin: AdminStats;
  /** The web view's live updates (GET / on the admin listener; src/admin/web/). */
  web: WebCounts;
  /** The Prometheus endpoint: scrapes answered 421, their Host not a loopback name (DNS rebinding), without --allow-remote-http. */
  prometheus: { rejectedHosts: number };
  /** Calls that failed inside the bridge (a bug): logged and counted, never fatal. */
  internalErrors: number;
}

export interface WebCounts {
  /** Pages connected to the live updates now. */
  viewers: number;
  /** Connections refused because MAX_VIEWERS were connected. */
  viewersRefused: number;
  /** Viewers dropped because they did not read their updates (more than VIEWER_MAX_BUFFERED_BYTES waited). */
  slowViewersDropped: number;
  /** Updates written to viewers, and their bytes. */
  updatesSent: number;
  bytesSent: number;
}

export interface ExportError {
  at: number;
  message: string;
}

export function newStats(now: number): Stats {
  return {
    startedAt: now,
    datagrams: {
      received: 0,
      accepted: 0,
      rejected: { oversize: 0, malformed_json: 0, not_object: 0, unknown_type: 0, missing_field: 0, bad_field: 0 },
      dropped: { source_not_allowed: 0 },
      kernelDropped: 0,
      ringDropped: 0,
    },
    events: { calls: 0, attempts: 0 },
    correlation: {
      matched: 0,
      orphaned: { ttl_expired: 0, buffer_full: 0, shutdown: 0 },
      callsIncomplete: 0,
      missingAttempts: 0,
      pendingAttempts: 0,
      pendingCalls: 0,
      pendingGroups: 0,
      joint: { calls: 0, deadlines: 0, waitMsTotal: 0, waitMsMax: 0, ambiguousAttempts: 0, ambiguousCalls: 0, searchesCut: 0, candidatesCut: 0, crowded: 0, overBudget: 0, filled: 0 },
    },
    memory: { ceilingBytes: 0, rssBytes: 0, peakRssBytes: 0, spoolBytes: 0, sheds: 0, shedAttempts: 0, shedCalls: 0, readErrors: 0 },
    spans: { created: 0, exported: 0, queued: 0, lost: 0, failed: 0, dropped: 0, failedAttempts: 0 },
    sampling: { kept: 0, sampledOut: 0, keptBy: { sampled: 0, error: 0, retry: 0, slow: 0, joined: 0 } },
    metricExports: { created: 0, succeeded: 0, queued: 0, lost: 0, failed: 0, dropped: 0, failedAttempts: 0 },
    metricPoints: { overflowed: 0, rejected: 0 },
    spool: {
      queuedSpans: 0,
      queuedMetricExports: 0,
      queuedBytes: 0,
      droppedSpans: 0,
      droppedMetricExports: 0,
      retries: 0,
      recoveredSpans: 0,
      recoveredMetricExports: 0,
      diskErrors: 0,
      onDiskSpans: 0,
      onDiskMetricExports: 0,
      onDiskBytes: 0,
      lostSpans: 0,
      lostMetricExports: 0,
      tlsErrors: 0,
    },
    lastExportError: { traces: null, metrics: null },
    lastExportOkAt: { traces: null, metrics: null },
    clients: { active: 0, overflowed: 0, evicted: 0 },
    identity: { resolved: 0, unresolved: 0, scans: 0 },
    policy: { ...newPolicyCounters(), fileWrites: 0, fileErrors: 0, reportBytes: 0 },
    appSpans: { ...newAppListenerCounts(), index: { indexed: 0, refusedFull: 0, duplicate: 0, expired: 0, held: 0 } },
    join: newJoinCounts(),
    admin: { rejectedHosts: 0, evictedConnections: 0, refusedConnections: 0, acceptErrors: 0, timedOut: 0, badRequests: 0, errors: 0 },
    web: { viewers: 0, viewersRefused: 0, slowViewersDropped: 0, updatesSent: 0, bytesSent: 0 },
    prometheus: { rejectedHosts: 0 },
    internalErrors: 0,
  };
}
