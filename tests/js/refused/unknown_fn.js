fromAll().when({ $any: function (s, e) {} });
fromNowhere();
