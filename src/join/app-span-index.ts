/**
 * The application spans received, by request id, for a short while: the reverse order of the
 * join (the app span arrives before the CSM call is complete: a slow bridge, a long settle, JS
 * v2's 'complete' ordering). In the usual order (CSM first) a waiting call is joined the moment
 * its app span is added (join-stage.ts asks `take` then).
 *
 * Bounded twice, both named and counted: entries live `ttlMs`, and at most MAX_INDEXED_SPANS
 * are held (with their ids and the resources they share). A span that does not fit is refused
 * (the listener answers it as OTLP partial success: rejected spans), never an older one dropped
 * for it: an older span is nearer to its join.
 */
import type { AppResource, AppSpan } from './app-span.js';

/** App spans held at most (0.8 KiB each with their ids, bench/app-spans.mjs: 40 MiB at the bound, within the memory ceiling). */
export const MAX_INDEXED_SPANS = 50_000;
/**
 * How long an app span waits for its CSM call: the reverse order, a call still settling (0.75 s),
 * waiting for late attempts (Ruby, 3 s) or for its sender's identity (2 s). Spans of SDKs without
 * CSM (JS v3, Go v2, Java v2) never meet a call and leave after this: at the bound, 5,000 of them a
 * second can come and go without a refusal.
 */
export const APP_SPAN_TTL_MS = 10_000;
/** Distinct app resources kept (one per service instance; shared by its spans). */
export const MAX_RESOURCES = 1_024;

export interface IndexCounts {
  /** Spans added. */
  indexed: number;
  /** Spans refused because the index was full. */
  refusedFull: number;
  /** Spans whose every id was already indexed under another span (a retransmitted export). */
  duplicate: number;
  /** Spans that left unjoined after ttlMs. */
  expired: number;
  /** Spans now held. */
  held: number;
}

interface Entry {
  span: AppSpan;
  at: number;
}

export class AppSpanIndex {
  private readonly byId = new Map<string, Entry>();
  /** Insertion order = arrival order: expiry pops from the front. */
  private readonly queue: Entry[] = [];
  private head = 0;
  private readonly resources = new Map<string, AppResource>();
  constructor(
    private readonly ttlMs: number,
    readonly counts: IndexCounts = { indexed: 0, refusedFull: 0, duplicate: 0, expired: 0, held: 0 },
  ) {}

  /** Adds a span under each of its ids; false when it was refused (full). */
  add(span: AppSpan, now: number): boolean {
    this.expire(now);
    if (this.counts.held >= MAX_INDEXED_SPANS) {
      this.counts.refusedFull++;
      return false;
    }
    if (span.ids.every((id) => this.byId.has(id))) {
      this.counts.duplicate++;
      return true;
    }
    const entry: Entry = { span: { ...span, resource: this.intern(span.resource) }, at: now };
    for (const id of span.ids) if (!this.byId.has(id)) this.byId.set(id, entry);
    this.queue.push(entry);
    this.counts.indexed++;
    this.counts.held++;
    return true;
  }

  /** The span named by any of `ids`, removed from the index (each app span is joined once). */
  take(ids: readonly string[]): AppSpan | undefined {
    for (const id of ids) {
      const e = this.byId.get(id);
      if (e === undefined) continue;
      this.remove(e);
      return e.span;
    }
    return undefined;
  }

  /** Forgets spans older than ttlMs. */
  expire(now: number): void {
    const q = this.queue;
    while (this.head < q.length) {
      const e = q[this.head]!;
      const held = this.isHeld(e);
      if (held && now - e.at < this.ttlMs) break;
      this.head++;
      if (held) {
        this.remove(e);
        this.counts.expired++;
      }
    }
    if (this.head > 1024 && this.head * 2 > q.length) {
      q.splice(0, this.head);
      this.head = 0;
    }
  }

  private isHeld(e: Entry): boolean {
    for (const id of e.span.ids) if (this.byId.get(id) === e) return true;
    return false;
  }

  private remove(e: Entry): void {
    let held = false;
    for (const id of e.span.ids) {
      if (this.byId.get(id) === e) {
        this.byId.delete(id);
        held = true;
      }
    }
    if (held) this.counts.held--;
  }

  /** One object per distinct resource, so thousands of spans of one service share it. */
  private intern(r: AppResource): AppResource {
    const key = JSON.stringify([r.attributes, r.schemaUrl ?? '']);
    const known = this.resources.get(key);
    if (known !== undefined) return known;
    if (this.resources.size >= MAX_RESOURCES) this.resources.delete(this.resources.keys().next().value!);
    this.resources.set(key, r);
    return r;
  }
}
