// partitionBy() and foreachStream() both choose the key: refused.
fromAll().foreachStream().partitionBy(function (e) { return e.body.region; })
  .when({ $any: function (s, e) {} });
