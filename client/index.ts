// The browser snippet: filled in by the page-view work.
export {};
