// fromCategories([...]): the streams of each category (also
// fromCategories('bank', 'orders')).
fromCategories(['bank', 'orders']).when({
  $init: function () { return { n: 0, streams: {} }; },
  $any: function (s, e) { s.n++; s.streams[e.streamId] = true; }
});
