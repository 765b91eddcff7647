// fromStreams: the events of the streams named, in log order.
fromStreams(['orders-1', 'orders-2']).when({
  $init: function () { return { seen: [] }; },
  $any: function (s, e) { s.seen.push(e.streamId + ':' + e.eventType); }
});
