fromAll().when({ $any: function (s, e) {} });
while (true) {}
