// A handler that throws on one stream: that partition fails.
fromCategory('account').foreachStream().when({
  Deposited: function (s, e) {
    if (e.streamId === 'account-2') throw new Error('no deposits here');
    s.n = (s.n || 0) + 1;
  }
});
