// A third-party SMSC for sluice's interop test (tests/interop.rs), built on
// the `smpp` npm package (node-smpp), not on sluice's own code.
//
// Listens on 127.0.0.1 (a free port), prints `LISTEN <port>`, then one JSON
// line per submit_sm it accepted, as node-smpp decoded it:
//   {"id", "src", "dst", "data_coding", "udh": [[iei, len, ...]], "text"}
// Binds must use system_id "sluice" and password "pw". Each submit_sm gets
// a hex message id and, 20 ms later, a delivery receipt in the common
// text format on the same session.
'use strict';

const smpp = require('smpp');

let nextId = 0x1000;

const server = smpp.createServer(function (session) {
  let bound = false;
  const bind = function (pdu) {
    if (pdu.system_id !== 'sluice' || pdu.password !== 'pw') {
      session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }));
      session.close();
      return;
    }
    bound = true;
    session.send(pdu.response({ system_id: 'node-smpp' }));
  };
  session.on('bind_transceiver', bind);
  session.on('bind_transmitter', bind);
  session.on('bind_receiver', bind);
  session.on('enquire_link', function (pdu) {
    session.send(pdu.response());
  });
  session.on('unbind', function (pdu) {
    session.send(pdu.response());
    session.close();
  });
  session.on('submit_sm', function (pdu) {
    if (!bound) {
      session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
      return;
    }
    const id = (nextId++).toString(16);
    session.send(pdu.response({ message_id: id }));
    const sm = pdu.short_message || {};
    const udh = (sm.udh || []).map(function (b) { return Array.from(b); });
    process.stdout.write(JSON.stringify({
      id: id,
      src: pdu.source_addr,
      dst: pdu.destination_addr,
      data_coding: pdu.data_coding,
      udh: udh,
      text: typeof sm.message === 'string' ? sm.message : String(sm.message),
    }) + '\n');
    setTimeout(function () {
      session.deliver_sm({
        source_addr: pdu.destination_addr,
        destination_addr: pdu.source_addr,
        esm_class: smpp.ESM_CLASS.MC_DELIVERY_RECEIPT,
        short_message: 'id:' + id + ' sub:001 dlvrd:001 submit date:2611280000 ' +
          'done date:2611280000 stat:DELIVRD err:000 text:',
      });
    }, 20);
  });
  session.on('deliver_sm_resp', function () {});
  session.on('error', function () {});
});

server.listen(0, '127.0.0.1', function () {
  process.stdout.write('LISTEN ' + server.address().port + '\n');
});
