// options({processingLag, reorderEvents}) with fromStreams: accepted;
// Sluice's one ordered log gives the events in commit order.
options({ reorderEvents: true, processingLag: 500 });
fromStreams(['left-1', 'right-1']).when({
  $init: function () { return { order: [] }; },
  $any: function (s, e) {
    s.order.push(e.streamId + '/' + e.sequenceNumber);
  }
});
