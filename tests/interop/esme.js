// A third-party ESME for sluice's SMPP server door (tests/interop.rs),
// built on the `smpp` npm package (node-smpp), not on sluice's own code.
//
// Usage: node esme.js <port> <system_id> <password>
//
// 1. Binds a transmitter with a wrong password and reports the status.
// 2. Binds a transceiver with the right one and submits, each asking for a
//    receipt: a short text, a Unicode text (node-smpp picks UCS-2), a long
//    text in message_payload, and a long text in two parts with an 8-bit
//    concatenation UDH.
// 3. Answers every deliver_sm; after one receipt per message, unbinds.
//
// One JSON line per step on stdout:
//   {"step":"badbind","status"}  {"step":"bind","status","system_id"}
//   {"step":"submit","label","status","id"}
//   {"step":"deliver","esm_class","receipted_message_id","message_state","text"}
//   {"step":"unbind","status"}
'use strict';

const smpp = require('smpp');

const [port, systemId, password] = process.argv.slice(2);
const url = 'smpp://127.0.0.1:' + port;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (what) => (e) => {
  out({ step: 'error', what: what, message: String(e) });
  process.exit(1);
};

const LONG = 'Part text for concatenation from node smpp. '.repeat(6).trim();

function submits() {
  const base = {
    source_addr: '12345',
    source_addr_ton: 3,
    dest_addr_ton: 1,
    dest_addr_npi: 1,
    registered_delivery: 1,
  };
  const list = [
    { label: 'short', destination_addr: '14155550200', short_message: 'Hello from node smpp' },
    { label: 'unicode', destination_addr: '14155550201', short_message: 'Привет, 世界 ✓' },
    {
      label: 'payload',
      destination_addr: '14155550202',
      message_payload: 'A long text in message payload. '.repeat(8).trim(),
    },
  ];
  const chunks = [LONG.slice(0, 153), LONG.slice(153)];
  chunks.forEach(function (chunk, i) {
    list.push({
      label: 'part' + (i + 1),
      destination_addr: '14155550203',
      esm_class: 0x40,
      short_message: { udh: Buffer.from([5, 0, 3, 0x2a, 2, i + 1]), message: chunk },
    });
  });
  return list.map((m) => Object.assign({}, base, m));
}

function main() {
  const session = smpp.connect({ url: url, auto_enquire_link_period: 0 });
  session.on('error', fail('session'));
  let receipts = 0;
  session.on('deliver_sm', function (pdu) {
    session.send(pdu.response());
    const sm = pdu.short_message || {};
    out({
      step: 'deliver',
      esm_class: pdu.esm_class,
      receipted_message_id: pdu.receipted_message_id || null,
      message_state: pdu.message_state === undefined ? null : pdu.message_state,
      text: typeof sm.message === 'string' ? sm.message : String(sm.message),
    });
    receipts += 1;
    // short, unicode, payload and the two-part text: four messages.
    if (receipts === 4) {
      session.unbind(function (resp) {
        out({ step: 'unbind', status: resp.command_status });
        session.close();
        process.exit(0);
      });
    }
  });
  session.bind_transceiver({ system_id: systemId, password: password }, function (pdu) {
    out({ step: 'bind', status: pdu.command_status, system_id: pdu.system_id });
    if (pdu.command_status !== 0) {
      process.exit(1);
    }
    submits().forEach(function (m) {
      const label = m.label;
      delete m.label;
      session.submit_sm(m, function (resp) {
        out({ step: 'submit', label: label, status: resp.command_status, id: resp.message_id || '' });
      });
    });
  });
}

const bad = smpp.connect({ url: url, auto_enquire_link_period: 0 });
bad.on('error', fail('bad bind'));
bad.on('close', main);
bad.bind_transmitter({ system_id: systemId, password: 'wrong' }, function (pdu) {
  out({ step: 'badbind', status: pdu.command_status });
  bad.close();
});
setTimeout(fail('timeout'), 30000).unref();
