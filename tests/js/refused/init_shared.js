fromAll().when({ $initShared: function () { return {}; },
  $any: function (s, e) {} });
