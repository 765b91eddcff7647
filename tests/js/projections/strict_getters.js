'use strict';
// Strict mode, a getter, map and reduce, per stream of a category.
fromCategory('orders').foreachStream().when({
  OrderPlaced: function (s, e) {
    var o = { get big() { return e.data.total > 8; } };
    s.big = o.big;
    s.skus = e.data.items.map(function (i) { return i.sku; });
    s.qty = e.data.items.reduce(function (a, i) { return a + i.qty; }, 0);
  }
});
