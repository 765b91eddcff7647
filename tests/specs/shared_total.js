// Bi-state ($initShared): s is [the partition's state, the shared state];
// $created and the handlers change both in place.
fromCategory('account').foreachStream().when({
  $initShared: function () { return { total: 0, accounts: 0 }; },
  $init: function () { return { n: 0 }; },
  $created: function (s, e) { s[1].accounts++; },
  Deposited: function (s, e) {
    s[0].n++;
    s[1].total += e.data.amount;
    s[0].running = s[1].total;
    s[0].accounts = s[1].accounts;
  }
});
