// options({biState: true}) without $initShared: the shared state starts {}.
options({ biState: true });
fromStream('bank-1').when({
  $init: function () { return { mine: 0 }; },
  Audit: function (s, e) {
    s[1].seen = (s[1].seen || 0) + 1;
    s[0].mine = s[1].seen * 10;
  }
});
