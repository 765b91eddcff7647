// linkTo() from fromAll(): a "$>" link to each deposit whose metadata
// marks it vip; typed handler without $init (the state starts as {}).
options({ emits: ['vip-deposits'] });
fromAll().when({
  Deposited: function (s, e) {
    s.n = (s.n || 0) + 1;
    if (e.metadata.vip) linkTo('vip-deposits', e);
  }
});
