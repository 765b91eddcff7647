// linkTo: big deposits of any account into one stream.
options({ emits: ['big-deposits'] });
fromCategory('account').when({
  Deposited: function (s, e) {
    if (e.data.amount >= 90) linkTo('big-deposits', e);
    s.seen = (s.seen || 0) + 1;
  }
});
