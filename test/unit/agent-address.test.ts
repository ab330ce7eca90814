/** The agent API address: unix socket paths and HOST:PORT, for the agent and its clients. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgentAddressError, DEFAULT_AGENT_SOCKET, describeAgentAddress, parseAgentAddress } from '../../src/agent/address.js';

describe('parseAgentAddress', () => {
  it('takes unix socket paths, with or without a unix: prefix', () => {
    assert.deepEqual(parseAgentAddress(DEFAULT_AGENT_SOCKET), { socketPath: '/run/rhumb/agent.sock' });
    assert.deepEqual(parseAgentAddress('unix:/tmp/a.sock'), { socketPath: '/tmp/a.sock' });
    assert.deepEqual(parseAgentAddress('unix:///tmp/a.sock'), { socketPath: '/tmp/a.sock' });
  });

  it('takes HOST:PORT, [v6]:PORT and http://HOST:PORT', () => {
    assert.deepEqual(parseAgentAddress('127.0.0.1:8090'), { host: '127.0.0.1', port: 8090 });
    assert.deepEqual(parseAgentAddress('[::1]:8090'), { host: '::1', port: 8090 });
    assert.deepEqual(parseAgentAddress('http://localhost:8090/'), { host: 'localhost', port: 8090 });
  });

  it('port 0 only for a listener', () => {
    assert.throws(() => parseAgentAddress('127.0.0.1:0'), AgentAddressError);
    assert.deepEqual(parseAgentAddress('127.0.0.1:0', { listening: true }), { host: '127.0.0.1', port: 0 });
  });

  it('refuses everything else with a clear message', () => {
    for (const bad of ['', '   ', 'agent.sock', 'host', '1.2.3.4:70000', 'a b:1', `/${'x'.repeat(200)}`, '/tmp/a\0b', 42, undefined]) {
      assert.throws(() => parseAgentAddress(bad), (err: Error) => err instanceof AgentAddressError && /unix socket|at most|NUL/.test(err.message), String(bad));
    }
  });

  it('describes addresses the way the agent prints them', () => {
    assert.equal(describeAgentAddress({ socketPath: '/run/x.sock' }), 'unix:/run/x.sock');
    assert.equal(describeAgentAddress({ host: '::1', port: 1 }), '[::1]:1');
    assert.equal(describeAgentAddress({ host: '10.0.0.1', port: 2 }), '10.0.0.1:2');
  });
});
