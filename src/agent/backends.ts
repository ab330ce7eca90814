/**
 * The data planes compiled into the agent: importing this module loads each backend
 * module, which registers itself (./backend.ts), in the order `--help` lists them.
 */
import './kernel/backend.js';
import './userspace/backend.js';
