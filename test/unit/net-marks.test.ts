/**
 * The node's one packet-mark layout (src/net/marks.ts), shared by the edge and the
 * firewall's state table: neither's bits may change what the other reads.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EDGE_MARK_MASK, EDGE_TAG, EDGE_TAG_MASK, FW_BITS, FW_ESTABLISHED, FW_INVALID, markHex } from '../../src/net/marks.js';
import { edgeMark, vnetOfMark } from '../../src/edge/plan.js';

test('the firewall\'s bits lie outside the edge\'s tag and vnet, and its masks leave them out', () => {
  assert.equal(FW_ESTABLISHED & FW_INVALID, 0);
  assert.equal((EDGE_TAG | 0xffffff) & FW_BITS, 0, 'no edge mark has a firewall bit');
  assert.equal(markHex(EDGE_TAG_MASK), '0xfa000000');
  assert.equal(markHex(EDGE_MARK_MASK), '0xfaffffff');
  for (const vnet of [0, 7, 0xffffff]) {
    for (const bits of [0, FW_ESTABLISHED, FW_INVALID, FW_BITS]) {
      const mark = (edgeMark(vnet) | bits) >>> 0;
      assert.equal((mark & EDGE_MARK_MASK) >>> 0, edgeMark(vnet), 'the edge still names its vnet');
      assert.equal((mark & EDGE_TAG_MASK) >>> 0, EDGE_TAG, 'and knows the mark as its own');
      assert.equal(vnetOfMark(mark), vnet);
      assert.equal(mark & FW_BITS, bits, 'the firewall reads only what it set');
    }
  }
  // A packet carrying only the firewall's bits is not the edge's.
  assert.notEqual((FW_BITS & EDGE_TAG_MASK) >>> 0, EDGE_TAG);
});
