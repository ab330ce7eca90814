#!/usr/bin/env node
// `npx rhumb …`: the compiled CLI (npm start / npm test build it).
import('../dist/src/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('rhumb is not built yet: run `npm run setup` (or `npm start`) first');
    process.exit(1);
  }
  throw err;
});
