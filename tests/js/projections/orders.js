// Two named streams; arrays in the events, forEach and a map of counts.
fromStreams(['orders-1', 'orders-2']).when({
  $init: function () { return { orders: 0, total: 0, qty: {} }; },
  OrderPlaced: function (s, e) {
    s.orders++;
    s.total += e.body.total;
    e.body.items.forEach(function (i) {
      s.qty[i.sku] = (s.qty[i.sku] || 0) + i.qty;
    });
  },
  OrderCancelled: function (s) { s.cancelled = (s.cancelled || 0) + 1; }
});
