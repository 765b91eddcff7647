// fromCategory without foreachStream: one state over the category.
fromCategory('account').when({
  $init: function () { return { total: 0, streams: {} }; },
  Deposited: function (s, e) {
    s.total += e.data.amount;
    s.streams[e.streamId] = (s.streams[e.streamId] || 0) + 1;
  }
});
