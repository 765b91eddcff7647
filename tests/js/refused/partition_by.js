fromAll().partitionBy(function (e) { return e.body.region; })
  .when({ $any: function (s, e) {} });
