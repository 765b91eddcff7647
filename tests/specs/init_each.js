// foreachStream over fromAll: $init runs once per stream.
fromAll().foreachStream().when({
  $init: function () { return { events: 0, first: null }; },
  $any: function (s, e) {
    if (s.first === null) s.first = e.eventType;
    s.events++;
  }
});
