// $created: once per new partition, after $init, with the partition's
// first event (e.partition is the stream: foreachStream); the event's
// handler runs after it.
fromCategory('account').foreachStream().when({
  $init: function () { return { n: 0 }; },
  $created: function (s, e) {
    s.first = e.eventType;
    s.at = e.sequenceNumber;
    s.p = e.partition;
  },
  $any: function (s, e) { s.n++; }
});
