// fromAll() with a typed handler and $any: the typed one wins for its
// type; $any takes the rest, from every stream.
fromAll().when({
  $init: function () { return { pings: 0, other: [] }; },
  Ping: function (s, e) { s.pings++; },
  $any: function (s, e) { s.other.push(e.eventType + '@' + e.streamId); }
});
