// transformBy() then filterBy(): the result of each change, or none.
fromStream('bank-1').when({
  $init: function () { return { n: 0 }; },
  Audit: function (s, e) { s.n++; s.last = e.data.note; }
}).transformBy(function (s) {
  return { count: s.n, note: s.last.toUpperCase() };
}).filterBy(function (r) { return r.count !== 2; });
