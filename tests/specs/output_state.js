// outputState(): the state is the result, in the root result stream.
fromStream('bank-1').when({
  $init: function () { return { n: 0 }; },
  Audit: function (s, e) { s.n++; s.last = e.data.note; }
}).outputState();
