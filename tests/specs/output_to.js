// outputTo(stream, pattern): each account's result in 'balance-<key>'.
fromCategory('account').foreachStream().when({
  $init: function () { return { balance: 0 }; },
  Deposited: function (s, e) { s.balance += e.data.amount; }
}).transformBy(function (s) { return { b: s.balance }; })
  .outputTo('balances', 'balance-{0}');
