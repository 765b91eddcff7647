// $created runs once per new partition, after $init, with its first event.
fromCategory('account').foreachStream().when({
  $init: function () { return { n: 0 }; },
  $created: function (s, e) { s.first = e.eventType; s.at = e.sequenceNumber; },
  $any: function (s, e) { s.n++; }
});
