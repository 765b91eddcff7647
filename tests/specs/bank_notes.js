// fromStream: only the events of one stream.
fromStream('bank-1').when({
  $init: function () { return { notes: [] }; },
  Audit: function (s, e) { s.notes.push(e.data.note); }
});
