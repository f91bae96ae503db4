/**
 * Wires --http_listen: the metrics and the status page's model, both fed from the one container
 * event stream (a single subscriber to Containerizer.watch([])), the engine monitor's observables,
 * the Watch stream count and the checkpoint writes; and the HTTP server serving them.
 */
import type { Logger } from "pino";
import { Subscription, type Observable } from "rxjs";
import type { ContainerCheckpoint } from "../gen/berth/checkpoint/v1/checkpoint_pb.js";
import type { Containerizer } from "../containerizer/containerizer.js";
import type { EventMonitor } from "../docker/event-monitor.js";
import type { TokenStore } from "../rpc/auth.js";
import type { TransportSettings } from "../rpc/transport.js";
import { StatusHttpServer } from "../http/http-server.js";
import { StatusModel } from "../http/status-model.js";
import { BerthMetrics } from "./berth-metrics.js";

/** What the observers subscribe to. */
export interface ObservedParts {
  containerizer: Pick<Containerizer, "watch" | "list">;
  monitor: Pick<EventMonitor, "events$" | "connected$" | "reconnected$">;
  watchStreamsOpen$: Observable<number>;
  diskOk$: Observable<boolean>;
  agentId: string;
  engineAddress: string;
  log: Logger;
}

export class Observability {
  readonly metrics = new BerthMetrics();
  model: StatusModel | undefined;
  http: StatusHttpServer | undefined;
  private readonly subscriptions = new Subscription();

  /** The CheckpointStore's observer: write latency, and each container's image and resources. */
  readonly checkpointObserver = (checkpoint: ContainerCheckpoint | undefined, seconds: number, ok: boolean): void => {
    this.metrics.checkpointWritten(seconds, ok);
    if (checkpoint && ok) this.model?.checkpointed(checkpoint);
  };

  /** Subscribes to every source; call before the containerizer and the monitor start. */
  attach(parts: ObservedParts): void {
    const { metrics } = this;
    const model = new StatusModel(parts.containerizer, parts.agentId, parts.engineAddress);
    this.model = model;
    metrics.watchContainers(parts.containerizer);
    const log = parts.log;
    this.subscriptions.add(
      parts.containerizer.watch([]).subscribe({
        next: (e) => {
          metrics.observe(e);
          model.observe(e);
        },
        error: (err: unknown) => log.warn({ err }, "metrics: the container event stream failed"),
      }),
    );
    this.subscriptions.add(
      parts.monitor.events$.subscribe(() => metrics.engineEventReceived()),
    );
    let reconnects = 0;
    this.subscriptions.add(
      parts.monitor.reconnected$.subscribe(() => {
        metrics.engineReconnected();
        model.setHealth({ reconnects: ++reconnects });
      }),
    );
    this.subscriptions.add(
      parts.monitor.connected$.subscribe((up) => {
        metrics.engineConnected.set(up ? 1 : 0);
        model.setHealth({ connected: up });
      }),
    );
    this.subscriptions.add(parts.diskOk$.subscribe((ok) => model.setHealth({ diskOk: ok })));
    this.subscriptions.add(parts.watchStreamsOpen$.subscribe((n) => metrics.watchStreams.set(n)));
  }

  /** Binds --http_listen (after attach). */
  async listen(options: { listen: string; transport: TransportSettings; tokens?: TokenStore; log: Logger }): Promise<string> {
    if (!this.model) throw new Error("Observability.listen before attach");
    this.http = new StatusHttpServer({ ...options, metrics: this.metrics, model: this.model });
    await this.http.start();
    return this.http.bound;
  }

  /** Closes the HTTP server and every subscription. */
  async stop(): Promise<void> {
    this.subscriptions.unsubscribe();
    await this.http?.stop();
  }
}
