// foreachStream().outputState(): each partition's state is its result,
// written to the partition's own result stream.
fromCategory('player').foreachStream().when({
  $init: function () { return { score: 0 }; },
  Scored: function (s, e) { s.score += e.data.points; }
}).outputState();
