// $deleted with partitionBy(): refused at load, as EventStoreDB does.
fromCategory('account').partitionBy(function (e) { return e.body.region; })
  .when({
    $any: function (s, e) {},
    $deleted: function (s, e) {}
  });
