// filterBy() then transformBy(): the result is the transformed state while
// the filter holds; a filtered-out state removes the result.
fromCategory('cart').when({
  $init: function () { return { items: 0, total: 0 }; },
  ItemAdded: function (s, e) { s.items++; s.total += e.data.price; },
  ItemRemoved: function (s, e) { s.items--; s.total -= e.data.price; }
}).filterBy(function (s) { return s.items > 0; })
  .transformBy(function (s) { return { count: s.items, sum: s.total }; });
