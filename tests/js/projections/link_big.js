// linkTo: big deposits of any account into one stream; linkStreamTo: the
// account's stream into an index, each time.
options({ emits: ['big-deposits', 'big-index'] });
fromCategory('account').when({
  Deposited: function (s, e) {
    if (e.data.amount >= 90) {
      linkTo('big-deposits', e);
      linkStreamTo('big-index', e.streamId);
    }
    s.seen = (s.seen || 0) + 1;
  }
});
