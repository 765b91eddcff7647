fromCategory('account').foreachStream().when({
  Deposited: function (s, e) {
    if (e.streamId === 'account-2') return 42;
    s.n = (s.n || 0) + 1;
  }
});
