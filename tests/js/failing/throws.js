fromCategory('account').foreachStream().when({
  Deposited: function (s, e) {
    if (e.streamId === 'account-2')
      throw new Error('no deposits on account-2');
    s.n = (s.n || 0) + 1;
  }
});
