fromCategory('account').foreachStream().when({
  Deposited: function (s, e) {
    s.n = (s.n || 0) + 1;
    if (e.streamId === 'account-2')
      emit('elsewhere', 'Nope', {});
  }
});
