import { Counter, Gauge, type Registry } from 'prom-client';
import type { AutopushCounters, AutopushService } from './host.js';

/** Prometheus series of the autopush endpoint. */
export function registerAutopushMetrics(registry: Registry, service: AutopushService): void {
  const c = service.counters;
  const make = (name: string, help: string, key: keyof AutopushCounters) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(c[key]);
      },
    });
  make('pushwire_autopush_sessions_total', 'Autopush sessions opened (hello answered).', 'sessions');
  make(
    'pushwire_autopush_anonymous_hellos_total',
    'Autopush hellos that were issued a new uaid.',
    'anonymousHellos',
  );
  make(
    'pushwire_autopush_refused_hellos_total',
    'Anonymous autopush hellos refused by the per-address limit.',
    'refusedHellos',
  );
  make(
    'pushwire_autopush_devices_created_total',
    'Devices created by a first autopush register.',
    'devicesCreated',
  );
  make('pushwire_autopush_registrations_total', 'Autopush channels registered.', 'registrations');
  make('pushwire_autopush_unregistrations_total', 'Autopush channels unregistered.', 'unregistrations');
  make('pushwire_autopush_acks_total', 'Notifications acknowledged by autopush clients.', 'acks');
  make('pushwire_autopush_nacks_total', 'Delivery errors reported by autopush clients (nack).', 'nacks');
  make(
    'pushwire_autopush_protocol_errors_total',
    'Autopush sockets closed for a malformed message.',
    'protocolErrors',
  );
  new Gauge({
    name: 'pushwire_autopush_connections',
    help: 'Open autopush sockets.',
    registers: [registry],
    collect() {
      this.set(service.connections.size);
    },
  });
}
