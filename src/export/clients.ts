/**
 * Which resource a translated call is exported under: one client per ClientId (otel-mapping.md
 * §3.3, option 1), so each monitored application shows up as its own service in
 * Jaeger/Tempo/Honeycomb.
 *
 * Bounded by `maxClients`: beyond it calls share the "aws-csm:other" client (counted in
 * clients.overflowed). With processIdentity a client is a (ClientId, sending process) pair with
 * its own span resource, while its metrics stay with its ClientId's client: metric series stay
 * per service instead of multiplying per process (one per `aws` CLI command) or colliding in
 * Prometheus (same job, no instance). Clients of processes that have exited make room at the cap.
 */
import type { Resource } from '@opentelemetry/resources';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { ProcessIdentity } from '../identity/resolver.js';
import type { Stats } from '../stats.js';
import { prepareResource, type PreparedResource } from './trace-batch.js';

/** service.name shared by every ClientId beyond `maxClients`. */
export const OVERFLOW_SERVICE_NAME = 'aws-csm:other';
/** Exited processes are looked for at most this often, when the cap is reached. */
const EVICT_CHECK_EVERY_MS = 1_000;

export interface Client<M> {
  /** The sending process (processIdentity), part of the resource and of the client's key. */
  identity?: ProcessIdentity;
  /** The span resource, encoded once. */
  resource: PreparedResource;
  /** Shared by every client of one ClientId. */
  metrics: M;
}

export interface ClientRegistryOptions<M> {
  maxClients: number;
  /** service.name of calls with an empty ClientId. */
  defaultServiceName: string;
  serviceNamespace?: string;
  /** Resource attributes every client starts from (telemetry.sdk.*, OTEL_RESOURCE_ATTRIBUTES). */
  baseResource: Resource;
  /** Builds the metrics side of a new ClientId. */
  createMetrics(resource: Resource): M;
}

export class ClientRegistry<M> {
  private readonly clients = new Map<string, Client<M>>();
  /** Clients of a ClientId (or the overflow), not of a process: what stats.clients.active counts. */
  private applications = 0;
  private lastEvictCheck = -Infinity;
  /** The client the last get() found (a removed client is never in it: eviction clears it). */
  private last: { clientId: string; identity: ProcessIdentity | undefined; client: Client<M> } | undefined;

  constructor(
    private readonly opts: ClientRegistryOptions<M>,
    private readonly stats: Stats['clients'],
  ) {}

  /** The client of (ClientId, sending process); resources are immutable per client. */
  get(clientId: string, identity?: ProcessIdentity): Client<M> {
    // The last call's client first: traffic repeats, and the lookup costs a key string.
    const last = this.last;
    if (last !== undefined && last.clientId === clientId && last.identity === identity) return last.client;
    const name = clientId === '' ? this.opts.defaultServiceName : clientId;
    const key = identity ? `${name}\u0000${identity.key}` : name;
    const existing = this.clients.get(key);
    if (existing) {
      this.last = { clientId, identity, client: existing };
      return existing;
    }
    // A process's client records its metrics in its ClientId's own client, which must exist too.
    const needed = identity && !this.clients.has(name) ? 2 : 1;
    const full = () => this.clients.size - (this.clients.has(OVERFLOW_SERVICE_NAME) ? 1 : 0) + needed > this.opts.maxClients;
    if (full() && (!this.evictExited() || full())) {
      this.stats.overflowed++;
      return this.clients.get(OVERFLOW_SERVICE_NAME) ?? this.add(OVERFLOW_SERVICE_NAME, OVERFLOW_SERVICE_NAME);
    }
    return this.add(key, name, identity);
  }

  /** Each ClientId's metrics once (a ClientId's process clients share them). */
  metrics(): M[] {
    return [...new Set([...this.clients.values()].map((c) => c.metrics))];
  }

  /**
   * At the cap: forgets the clients of processes that have exited, e.g. one per `aws` CLI
   * command (spans already in the batch keep their resource). Their metrics live in their
   * ClientId's client, which stays.
   */
  private evictExited(): boolean {
    const now = Date.now();
    if (now - this.lastEvictCheck < EVICT_CHECK_EVERY_MS) return false;
    this.lastEvictCheck = now;
    let evicted = 0;
    for (const [key, c] of this.clients) {
      if (!c.identity || c.identity.alive()) continue;
      this.clients.delete(key);
      evicted++;
    }
    this.stats.evicted += evicted;
    if (evicted > 0) this.last = undefined;
    return evicted > 0;
  }

  private add(key: string, serviceName: string, identity?: ProcessIdentity): Client<M> {
    const resource = this.opts.baseResource.merge(
      resourceFromAttributes({
        'service.name': serviceName,
        ...(this.opts.serviceNamespace ? { 'service.namespace': this.opts.serviceNamespace } : {}),
        ...identity?.attributes,
      }),
    );
    const metrics = identity ? (this.clients.get(serviceName) ?? this.add(serviceName, serviceName)).metrics : this.opts.createMetrics(resource);
    const client: Client<M> = {
      ...(identity ? { identity } : {}),
      resource: prepareResource(resource.attributes as Record<string, string | number | boolean>, resource.schemaUrl),
      metrics,
    };
    this.clients.set(key, client);
    // Applications, not identification outcomes: a process's client is a detail of its ClientId's.
    if (!identity) this.stats.active = ++this.applications;
    return client;
  }
}
