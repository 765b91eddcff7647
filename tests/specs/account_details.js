// fromCategory + foreachStream, typed handlers: one state per account.
fromCategory('account').foreachStream().when({
  $init: function () { return { balance: 0, ops: 0 }; },
  AccountOpened: function (s, e) { s.name = e.data.name; },
  Deposited: function (s, e) { s.balance += e.data.amount; s.ops++; },
  Withdrawn: function (s, e) { s.balance -= e.data.amount; s.ops++; }
});
