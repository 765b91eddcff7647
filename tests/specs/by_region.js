// partitionBy(): one state per region the function returns (a number
// gives its text); null skips the event. e.partition is the key.
fromCategory('order').partitionBy(function (e) {
  return e.data.region === undefined ? null : e.data.region;
}).when({
  $init: function () { return { n: 0, total: 0 }; },
  OrderPlaced: function (s, e) {
    s.n++;
    s.total += e.data.total;
    s.p = e.partition;
  }
});
