// The snippet's entry. `currentScript` is only set while this file first runs, so it is read now.
import { start } from './track.ts';

start(window, document.currentScript as HTMLScriptElement | null);
