options({ resultStreamName: "r" });
fromAll().when({ $any: function (s, e) {} });
