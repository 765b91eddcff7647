// emit(stream, type, body, metadata) to a declared stream, per account.
options({ emits: ['audit-*'] });
fromCategory('account').foreachStream().when({
  Deposited: function (s, e) {
    emit('audit-' + e.streamId, 'Seen', { amount: e.data.amount },
         { source: e.streamId });
    s.n = (s.n || 0) + 1;
  }
});
