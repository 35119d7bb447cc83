import type { Server } from 'node:net';
import { addressGroup } from './client-address.ts';

/**
 * Closes a new connection at once when its client address (IPv6: its /64) already holds `max` open ones, so
 * that one client cannot take every slot of the process's connection cap. The count lives only as long as the
 * connections do. Not for a server behind a proxy: every connection would come from the proxy.
 * @example capConnectionsPerAddress(server, 256)
 */
export function capConnectionsPerAddress(server: Server, max: number): void {
  const open = new Map<string, number>();
  server.on('connection', (socket) => {
    const group = addressGroup(socket.remoteAddress ?? '');
    const count = open.get(group) ?? 0;
    if (count >= max) {
      socket.destroy();
      return;
    }
    open.set(group, count + 1);
    socket.once('close', () => {
      const left = (open.get(group) ?? 1) - 1;
      if (left <= 0) open.delete(group);
      else open.set(group, left);
    });
  });
}
