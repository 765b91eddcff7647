// $deleted: called with the partition of a stream that was deleted
// (foreachStream: the stream's own partition); Sluice deletes softly.
fromCategory('account').foreachStream().when({
  $init: function () { return { n: 0 }; },
  Deposited: function (s, e) { s.n++; },
  $deleted: function (s, e, isSoftDelete) {
    s.deleted = isSoftDelete;
    s.stream = e.streamId;
    s.p = e.partition;
  }
});
