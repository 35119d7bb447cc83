import type { Store } from '../store/store.ts';
import type { SessionStore } from './session.ts';

/** Admin sessions kept in the store, so a logout holds across restarts and processes. */
export function storeSessions(store: Store): SessionStore {
  return {
    add: (idHash, expiresAt, now) => store.addSession(idHash, expiresAt, now),
    has: (idHash, now) => store.hasSession(idHash, now),
    remove: (idHash) => store.removeSession(idHash),
  };
}
