// bench_js_host: Account Details, one state per account stream.
fromCategory('account').foreachStream().when({
  $init: function () { return { balance: 0, ops: 0 }; },
  AccountOpened: function (s, e) { s.name = e.data.name; s.open = true; },
  Deposited: function (s, e) { s.balance += e.data.amount; s.ops++; },
  Withdrawn: function (s, e) {
    if (s.balance >= e.data.amount) s.balance -= e.data.amount;
    else s.rejected = (s.rejected || 0) + 1;
    s.ops++;
  }
});
