// outputTo(stream, pattern): each key's result goes to 'balance-<key>'
fromCategory('account').foreachStream().when({
  $init: function () { return { balance: 0 }; },
  Deposited: function (s, e) { s.balance += e.data.amount; },
  Withdrawn: function (s, e) {
    if (s.balance >= e.data.amount) s.balance -= e.data.amount;
  }
}).transformBy(function (s) { return { b: s.balance }; })
  .outputTo('balances', 'balance-{0}');
