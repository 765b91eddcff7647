// $initShared (EventStoreDB's bi-state): handlers get [state, shared];
// shared is one state for every account, in log order.
fromCategory('account').foreachStream().when({
  $initShared: function () { return { total: 0, accounts: 0 }; },
  $init: function () { return { n: 0 }; },
  AccountOpened: function (s, e) {
    s[1].accounts++;
    s[0].no = s[1].accounts;
  },
  Deposited: function (s, e) {
    s[0].n++;
    s[1].total += e.data.amount;
    s[0].running = s[1].total;
  },
  // a handler may return a new [state, shared]
  Withdrawn: function (s, e) {
    var w = (s[1].withdrawals || 0) + 1;
    return [{ n: s[0].n, no: s[0].no, running: s[0].running, w: w },
      { total: s[1].total, accounts: s[1].accounts, withdrawals: w }];
  }
});
