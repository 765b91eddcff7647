// undefined properties and functions vanish from the stored state; Date.
fromStream('bank-1').when({
  Audit: function (s, e) {
    s.gone = undefined;
    s.fn = function () {};
    s.kept = e.data.note;
    s.epoch = new Date(0).toISOString();
  }
});
