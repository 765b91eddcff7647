// partitionBy() that throws for account-2: its events have no key.
fromCategory('account').partitionBy(function (e) {
  if (e.streamId === 'account-2') throw new Error('no key for ' + e.streamId);
  return 'all';
}).when({ Deposited: function (s, e) { s.n = (s.n || 0) + 1; } });
