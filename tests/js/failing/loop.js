options({ $budgetMs: 20 });
fromCategory('account').foreachStream().when({
  Deposited: function (s, e) {
    while (e.streamId === 'account-2') { s.n = 1; }
    s.n = (s.n || 0) + 1;
  }
});
