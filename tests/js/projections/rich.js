// per key: filterBy() first, then transformBy(); outputState() too.
fromCategory('account').foreachStream().when({
  $init: function () { return { balance: 0 }; },
  Deposited: function (s, e) { s.balance += e.data.amount; },
  Withdrawn: function (s, e) {
    if (s.balance >= e.data.amount) s.balance -= e.data.amount;
  }
}).filterBy(function (s) { return s.balance >= 100; })
  .transformBy(function (s) { return { rich: s.balance }; })
  .outputState();
