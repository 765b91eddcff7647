// emit() from fromStreams, each notice with metadata, to a stream per
// customer; the emitted streams checked after each event.
options({ emits: ['notify-*'] });
fromStreams(['orders-1', 'orders-2']).when({
  $init: function () { return { n: 0 }; },
  OrderPlaced: function (s, e) {
    s.n++;
    emit('notify-' + e.data.customer, 'OrderNoted',
         { order: e.streamId, total: e.data.total },
         { seq: e.sequenceNumber });
  }
});
