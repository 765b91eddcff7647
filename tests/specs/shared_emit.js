// a bi-state emitting projection (outputState): the shared state is kept
// in its checkpoint and served as get_one "$shared".
fromCategory('account').foreachStream().when({
  $initShared: function () { return { total: 0 }; },
  $init: function () { return { n: 0 }; },
  Deposited: function (s, e) {
    s[0].n++; s[1].total += e.data.amount; s[0].running = s[1].total;
  }
}).outputState();
