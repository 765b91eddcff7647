// fromCategories(): the events of both categories, in log order; a
// handler that returns a new state replaces the old one.
fromCategories(['eu', 'us']).when({
  $init: function () { return { sales: 0, last: null }; },
  Sold: function (s, e) {
    return { sales: s.sales + e.data.qty, last: e.streamId };
  }
});
