// options.$name must be a name of 1..256 bytes
options({ $name: '' });
fromAll().when({ $any: function (s, e) { s.n = (s.n || 0) + 1; } });
