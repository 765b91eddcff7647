// $deleted with partitionBy(): refused, as EventStoreDB refuses it (a
// deleted stream's notice has no partitionBy() key).
fromAll().partitionBy(function (e) { return e.body.region; }).when({
  $any: function (s, e) {},
  $deleted: function (s, e) {}
});
