// options({resultStreamName}): the one state's results go there.
options({ resultStreamName: 'bank-notes-result' });
fromStream('bank-1').when({
  $init: function () { return { n: 0 }; },
  Audit: function (s, e) { s.n++; s.last = e.data.note; }
}).outputState();
