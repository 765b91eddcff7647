// $deleted without foreachStream(): refused, as EventStoreDB refuses it.
fromCategory('account').when({
  $any: function (s, e) {},
  $deleted: function (s, e) {}
});
