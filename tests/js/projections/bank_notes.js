// One stream; the state holds an array.
fromStream('bank-1').when({
  $init: function () { return { notes: [] }; },
  Audit: function (s, e) { s.notes.push(e.body.note); }
});
